"""The Stage page and the page routes in Chromium: /search opens the Search page; /stage opens on the shipped
recording with its heatmaps, cells and curves inside a 1920x1080 viewport and its numbers and labels measured at
24 px or more on screen; the keyboard (Space, S) steers a live smoke search from the stage.

One server for the session (tests/e2e/conftest.py). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.figures.stage import STAGE
from app.screens.stage import RUN_PARAM
from engine.runs import catalog, examples

pytestmark = pytest.mark.e2e

LOAD_MS = 120_000
STATE_MS = 60_000
ROOT = Path(__file__).resolve().parents[2]
MIN_PX = 24   # the floor for numbers and labels at 1080p
NUMBERS = "svg g.mark-text.role-mark text"   # a heatmap's numbers (its title and axis labels are other marks)


@pytest.fixture
def screen(browser):
    """`screen(width, height)`: a fresh page (a new session) with that viewport."""
    contexts = []

    def make(width: int, height: int) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        return context.new_page()
    yield make
    for context in contexts:
        context.close()


def stage_value(page: Page, name: str):
    return page.locator(f".stage-item[data-stage={name}] .stage-value")


# Every box and text the stage draws, as [x, y, width, height] on screen (getBoundingClientRect).
BOXES_JS = """() => {
  const box = e => { const b = e.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; };
  const all = s => Array.from(document.querySelectorAll(s)).filter(e => e.getBoundingClientRect().width > 0);
  return {
    heatmaps: all('.st-key-stage-heatmap-normal, .st-key-stage-heatmap-reduce').map(box),
    cells: all('[data-testid=stGraphVizChart]').map(box),
    curves: all('.st-key-stage-curve-loss, .st-key-stage-curve-accuracy').map(box),
    numbers: all('.st-key-stage-top [data-testid=stVegaLiteChart] svg g.mark-text.role-mark text')
      .filter(e => e.closest('[class*=st-key-stage-heatmap-]')).map(box),
    heatmap_labels: all('.st-key-stage-top [data-testid=stVegaLiteChart] svg g.role-axis-label text').map(box),
    graph_labels: all('[data-testid=stGraphVizChart] svg text').map(box),
    status: all('.stage-value').map(box),
  };
}"""


def test_search_route_opens_the_search_page(server: str, screen):
    page = screen(1400, 900)
    page.goto(f"{server}/search")
    expect(page.get_by_role("heading", name="DARTS search")).to_be_visible(timeout=LOAD_MS)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    for name, heading in (("replay", "Replay"), ("learn", None), ("runs", None), ("train", None), ("sweeps", "Sweeps")):
        page.goto(f"{server}/{name}")
        expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning",
                                                                timeout=LOAD_MS)
        expect(page.get_by_text("Page not found")).to_have_count(0)
        if heading:
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def test_stage_fits_one_1080p_screen_in_large_type(server: str, screen, artifacts: Path):
    page = screen(1920, 1080)
    page.goto(f"{server}/stage")
    demo = examples.example(examples.DEFAULT_EXAMPLE)
    expect(stage_value(page, "step")).to_have_text(f"{demo.step}/{demo.step}", timeout=LOAD_MS)
    expect(page.locator(f".st-key-stage-heatmap-reduce {NUMBERS}").first).to_be_visible(timeout=LOAD_MS)
    expect(page.get_by_test_id("stGraphVizChart").locator("svg")).to_have_count(2, timeout=LOAD_MS)
    expect(page.locator(".st-key-stage-curve-accuracy svg.marks")).to_be_visible(timeout=LOAD_MS)
    assert f"{RUN_PARAM}={demo.run_id}" in page.url   # the choice is in the address: a reload keeps it
    page.screenshot(path=str(artifacts / "stage-1920x1080.png"))
    found = page.evaluate(BOXES_JS)
    print(json.dumps({k: len(v) for k, v in found.items()}))
    assert [len(found[k]) for k in ("heatmaps", "cells", "curves")] == [2, 2, 2], found
    assert len(found["numbers"]) == 2 * 14 * 8
    for kind in ("heatmaps", "cells", "curves", "status"):
        for x, y, w, h in found[kind]:
            assert x >= 0 and y >= 0 and x + w <= 1920 + 0.5 and y + h <= 1080 + 0.5, (kind, x, y, w, h)
    # rendered heights: a text box is its font's ascent and descent, a little taller than the font size
    heights = {kind: min(h for *_, h in found[kind]) for kind in ("numbers", "heatmap_labels", "graph_labels",
                                                                   "status")}
    print("smallest rendered text heights (px):", heights)
    assert all(h >= MIN_PX for h in heights.values()), heights
    # and the heatmap's numbers are drawn at the stage's font size, unscaled
    size = page.evaluate("() => getComputedStyle(document.querySelector("
                         f"'.st-key-stage-heatmap-normal {NUMBERS}')).fontSize")
    assert float(size.rstrip("px")) >= STAGE["cell_text"] >= MIN_PX

    # 1280x800: the same stage, the curves under the heatmaps, numbers just as large
    small = screen(1280, 800)
    small.goto(page.url)
    expect(small.locator(f".st-key-stage-heatmap-normal {NUMBERS}").first).to_be_visible(timeout=LOAD_MS)
    expect(small.get_by_test_id("stGraphVizChart").locator("svg")).to_have_count(2, timeout=LOAD_MS)
    boxes = small.evaluate(BOXES_JS)
    for x, y, w, h in boxes["heatmaps"]:
        assert x >= 0 and x + w <= 1280 + 0.5 and y + h <= 800 + 0.5, ("heatmap", x, y, w, h)
    assert min(h for *_, h in boxes["numbers"]) >= MIN_PX
    small.screenshot(path=str(artifacts / "stage-1280x800.png"))


def test_keyboard_steers_a_live_smoke_search_from_the_stage(server: str, screen, e2e_runs: Path,
                                                            artifacts: Path):
    """A smoke search of another process, followed live by the stage: Space pauses it, S takes one step
    ("stepping" meanwhile), Space resumes it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = {r.run_id for r in catalog.list_runs(e2e_runs)}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "search", "-q", "--preset", "smoke", "--set",
                             "epochs=500", "--runs-dir", str(e2e_runs)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            new = [r for r in catalog.list_runs(e2e_runs) if r.run_id not in before and r.state == "running"]
            if new:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the smoke search did not start"
            time.sleep(0.25)
        run_id = new[0].run_id
        page = screen(1920, 1080)
        page.goto(f"{server}/stage?{RUN_PARAM}={run_id}")
        state = stage_value(page, "state")
        expect(state).to_have_text("running", timeout=LOAD_MS)
        page.locator(".stage-bar").click()   # the page has the keyboard focus, no widget has
        page.keyboard.press("Space")
        expect(state).to_have_text("paused", timeout=STATE_MS)
        step = int(stage_value(page, "step").inner_text().split("/")[0])
        page.keyboard.press("s")
        expect(stage_value(page, "step")).to_have_text(re.compile(rf"^{step + 1}/"), timeout=STATE_MS)
        expect(state).to_have_text("paused", timeout=STATE_MS)
        page.keyboard.press("Space")
        expect(state).to_have_text("running", timeout=STATE_MS)
        page.screenshot(path=str(artifacts / "stage-live.png"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_collapse_film_advances_the_three_runs_together(server: str, screen):
    page = screen(1600, 1200)
    page.goto(f"{server}/learn")
    page.locator(".st-key-learn-collapse_lesson-open button").click(timeout=LOAD_MS)
    play = page.locator(".st-key-learn-film-play button")
    expect(play).to_be_visible(timeout=LOAD_MS)
    heads = page.locator("[class*=st-key-learn-film-cell-] [data-testid=stMarkdownContainer] strong")
    expect(heads).to_have_count(3, timeout=LOAD_MS)

    def steps() -> list[int]:
        texts = page.locator("[class*=st-key-learn-film-cell-] [data-testid=stMarkdownContainer]").all_inner_texts()
        return [int(m.group(1)) for t in texts if (m := re.search(r"· step (\d+)$", t.strip()))]

    first = steps()
    assert len(first) == 3 and len(set(first)) == 1
    play.click()
    page.wait_for_function("""s => { const t = Array.from(document.querySelectorAll(
        '[class*=st-key-learn-film-cell-] [data-testid=stMarkdownContainer]')).map(e => e.innerText.trim())
        .map(x => (x.match(/· step (\\d+)$/) || [])[1]).filter(Boolean).map(Number);
        return t.length === 3 && t.every(v => v === t[0]) && t[0] > s; }""", arg=first[0], timeout=STATE_MS)
    later = steps()
    assert len(set(later)) == 1 and later[0] > first[0]

"""Shareable views and figure files in Chromium: the run shown on the Runs page, the searches compared and the
Replay step live in the URL, so a link opened in another browser session shows the same view; a figure of a run
downloads as a real PNG and SVG.

The runs are copies of recordings shipped with the app, under names that sort after every run the other browser
tests make (the runs directory is the session's). One server for the session (tests/e2e/conftest.py).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Locator, Page, expect

from engine.runs import examples, rundir

pytestmark = pytest.mark.e2e

LOAD_MS = 120_000
STATE_MS = 60_000
LINKED = ("19991231T000000Z-linked-demo", "19991231T000000Z-linked-collapse")


@pytest.fixture(scope="module")
def linked_runs(e2e_runs: Path) -> tuple[str, str]:
    """Two finished searches in the server's runs directory: the shipped demo and plain-DARTS collapse runs."""
    e2e_runs.mkdir(parents=True, exist_ok=True)
    for name, example in zip(LINKED, ("demo", "collapse-darts"), strict=True):
        source = examples.example(example)
        assert source is not None, f"the shipped recording {example} is missing"
        if not (e2e_runs / name).exists():
            shutil.copytree(source.path, e2e_runs / name)
    return LINKED


@pytest.fixture
def session(browser):
    """`session()`: a page in a fresh browser context, that is a new Streamlit session with no state of its own."""
    contexts = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1400, "height": 2000}, accept_downloads=True)
        contexts.append(context)
        return context.new_page()
    yield make
    for context in contexts:
        context.close()


def keyed(page: Page, key: str, inner: str = "") -> Locator:
    css = f".st-key-{key.replace('.', '-')}"
    return page.locator(f"{css} {inner}:visible" if inner else f"{css}:visible")


def settled(page: Page) -> None:
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning",
                                                            timeout=STATE_MS)


def no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def query(page: Page) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_a_runs_link_opens_the_same_run_and_comparison(server: str, session, linked_runs):
    demo, collapse = linked_runs
    first = session()
    first.goto(f"{server}/runs?run={demo}")
    expect(first.get_by_role("heading", name=demo)).to_be_visible(timeout=LOAD_MS)
    settled(first)

    # pick the other run in the page, as a user does: type into the picker, click the option; the URL follows.
    # (Typing first: the list shows a window of the options, and the session's other browser tests add runs.)
    picker = keyed(first, "runs.selected").get_by_role("combobox")
    expect(picker).to_be_visible(timeout=STATE_MS)
    picker.fill(collapse)
    first.get_by_role("option", name=re.compile(re.escape(collapse))).click()
    expect(first.get_by_role("heading", name=collapse)).to_be_visible(timeout=STATE_MS)
    expect(first).to_have_url(re.compile(f"run={re.escape(collapse)}"), timeout=STATE_MS)
    settled(first)
    assert query(first).get("compare"), "the searches compared are not in the URL"

    # the same URL in a new session: the same run; a comparison named in the URL, in its order
    second = session()
    second.goto(f"{server}/runs?run={collapse}&compare={collapse},{demo}")
    expect(second.get_by_role("heading", name=collapse)).to_be_visible(timeout=LOAD_MS)
    picker = keyed(second, "runs.compare_searches")
    expect(picker).to_contain_text(collapse, timeout=STATE_MS)
    expect(picker).to_contain_text(demo)
    settled(second)
    assert query(second)["compare"] == f"{collapse},{demo}"

    # a setting bound to the URL (the table's toggle) does not stop a button from opening another page
    keyed(second, "runs.differ").get_by_text("Only the settings that differ").click()
    expect(second).to_have_url(re.compile(r"runs\.differ=true"), timeout=STATE_MS)
    settled(second)
    keyed(second, "runs.replay", "button").click()
    expect(second.get_by_role("heading", name="Replay", exact=True)).to_be_visible(timeout=STATE_MS)
    no_exception(second)


def test_a_replay_link_opens_the_same_step(server: str, session, linked_runs):
    demo, _ = linked_runs
    first = session()
    first.goto(f"{server}/replay?run={demo}")
    slider = first.get_by_test_id("stSlider").get_by_role("slider")
    expect(slider).to_be_visible(timeout=LOAD_MS)
    low, high = slider.get_attribute("min"), slider.get_attribute("max")
    expect(slider).to_have_value(high, timeout=STATE_MS)
    settled(first)
    slider.focus()
    slider.press("Home")
    expect(slider).to_have_value(low, timeout=STATE_MS)
    expect(first).to_have_url(re.compile(f"step={low}(&|$)"), timeout=STATE_MS)

    second = session()
    second.goto(first.url)
    slider = second.get_by_test_id("stSlider").get_by_role("slider")
    expect(slider).to_have_value(low, timeout=LOAD_MS)
    expect(second.get_by_text("Record 1 of")).to_be_visible(timeout=STATE_MS)
    assert query(second)["run"] == demo


def _download(page: Page, key: str) -> tuple[str, bytes]:
    settled(page)  # a redraw registers a new deferred download and drops the old one
    with page.expect_download(timeout=STATE_MS) as download:
        keyed(page, key, "button").click()
    return download.value.suggested_filename, Path(download.value.path()).read_bytes()


def test_a_runs_figures_download_as_png_and_svg(server: str, session, linked_runs, e2e_runs: Path, artifacts: Path):
    demo, _ = linked_runs
    page = session()
    page.goto(f"{server}/runs?run={demo}")
    expect(page.get_by_role("heading", name=demo)).to_be_visible(timeout=LOAD_MS)

    name, png = _download(page, "runs.download.figure")
    assert name == f"{demo}-heatmaps.png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    (artifacts / "e2e-figure-heatmaps.png").write_bytes(png)

    keyed(page, "runs.figure_format").get_by_role("radio", name="SVG").click()
    expect(keyed(page, "runs.download.figure", "button")).to_contain_text("SVG", timeout=STATE_MS)
    name, svg = _download(page, "runs.download.figure")
    text = svg.decode()
    assert name == f"{demo}-heatmaps.svg" and "<svg" in text
    assert "Normal cell" in text and "Reduction cell" in text and "skip_connect" in text

    name, csv = _download(page, "runs.download.metrics")
    lines = csv.decode().splitlines()
    assert name == f"{demo}-metrics.csv" and "step" in lines[0].split(",") and "valid_acc" in lines[0].split(",")
    assert len(lines) - 1 == len(rundir.read_metrics(e2e_runs / demo))   # a row per logged step
    page.screenshot(path=artifacts / "e2e-runs-figures.png")

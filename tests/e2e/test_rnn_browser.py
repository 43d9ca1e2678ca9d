"""The recurrent search in Chromium: the `rnn-demo` preset started from the sidebar, its 36 x 5 heatmap redrawn
as the alphas move, and Derive now showing a recurrent cell. The run is deleted at the end, so the browser tests
after this file see the runs directory as they expect it (one server for the session: tests/e2e/conftest.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from engine.runs import catalog, rundir
from engine.space import get_space

pytestmark = pytest.mark.e2e

LOAD_MS = 120_000
STATE_MS = 60_000
CHANGE_MS = 60_000
EPOCHS = 10   # rnn-demo's own: 2,380 steps, far more than the test waits for (it stops the run)
_WEIGHT = re.compile(r"^(.+), (\S+): weight (\S+), change since start (\S+)$")
HEATMAP = ".st-key-live-heatmap-recurrent [data-testid=stVegaLiteChart] svg"
CELLS_JS = (f"Array.from(Array.from(document.querySelectorAll('{HEATMAP}'))"
            ".find(e => e.getBoundingClientRect().width > 0).querySelectorAll('g.role-mark.mark-rect path'))"
            ".map(p => p.getAttribute('aria-label'))")


def eventually(page: Page, cond, timeout_s: float = 60.0, what: str = "condition") -> None:
    """Poll `cond` until it holds (files the server writes have no DOM event to wait on)."""
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, f"{what} not met within {timeout_s:.0f} s"
        page.wait_for_timeout(250)


def keyed(page: Page, key: str, inner: str = "") -> Locator:
    css = f".st-key-{key.replace('.', '-')}"
    return page.locator(f"{css} {inner}:visible" if inner else f"{css}:visible")


def metric(page: Page, label: str) -> Locator:
    label_el = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=label_el).get_by_test_id("stMetricValue")


def _guarded(condition: str, arg: str = "") -> str:
    """A JS predicate that is false (not an error) while the chart is being redrawn."""
    return f"{arg} => {{ try {{ return {condition}; }} catch (e) {{ return false; }} }}" if arg else \
        f"() => {{ try {{ return {condition}; }} catch (e) {{ return false; }} }}"


def heatmap_cells(page: Page) -> list[tuple[str, str, float]] | None:
    """(edge, op, weight) of every cell of the recurrent heatmap as drawn; None while it is not drawn."""
    try:
        labels = page.evaluate(f"() => {CELLS_JS}")
    except PlaywrightError:
        return None
    parsed = [_WEIGHT.match(label or "") for label in labels or []]
    if not parsed or not all(parsed):
        return None
    return [(m.group(1), m.group(2), float(m.group(3))) for m in parsed]


def test_recurrent_search_live_in_the_browser(server: str, page: Page, e2e_runs: Path, artifacts: Path):
    page.goto(server)
    start = page.get_by_role("button", name="Start search")
    expect(start).to_be_enabled(timeout=LOAD_MS)
    before = {r.run_id for r in catalog.list_runs(e2e_runs)}

    keyed(page, "setup.preset").click()
    page.get_by_role("option", name="rnn-demo (recurrent)", exact=True).click()
    expect(keyed(page, "setup.rnn-demo.epochs", "input")).to_have_value(str(EPOCHS), timeout=STATE_MS)
    expect(keyed(page, "setup.rnn-demo.nhid", "input")).to_have_value("32")
    expect(start).to_be_enabled(timeout=STATE_MS)
    start.click()

    expect(metric(page, "State")).to_have_text("running", timeout=STATE_MS)
    new = [r for r in catalog.list_runs(e2e_runs) if r.run_id not in before]
    assert len(new) == 1 and new[0].space == "rnn" and new[0].config["epochs"] == EPOCHS
    run_id = new[0].run_id
    try:
        # the heatmap: 36 edges x 5 ops, in the space's row and column order, and it changes as steps go by
        expect(page.locator(HEATMAP).first).to_be_visible(timeout=CHANGE_MS)
        space = get_space("rnn")
        page.wait_for_function(_guarded(f"({CELLS_JS}).length === 180"), timeout=CHANGE_MS, polling=250)
        first = heatmap_cells(page)
        assert first is not None and len(first) == 36 * 5
        assert list(dict.fromkeys(e for e, _, _ in first)) == space.edge_labels(8)
        assert [op for _, op, _ in first[:5]] == list(space.primitives)
        page.wait_for_function(_guarded(f"({CELLS_JS}).join('|') !== old", "old"),
                               arg="|".join(page.evaluate(f"() => {CELLS_JS}")), timeout=CHANGE_MS, polling=250)
        moved = heatmap_cells(page)
        assert moved is not None and [w for *_, w in moved] != [w for *_, w in first]
        # the live cell: the recurrent chain with h_t, and the perplexity curve beside the loss
        expect(page.locator("[data-testid=stGraphVizChart] svg").first).to_be_visible(timeout=CHANGE_MS)
        expect(page.get_by_test_id("stGraphVizChart").first.locator("g.node title", has_text="h_t")).to_have_count(1)
        page.screenshot(path=artifacts / "e2e-rnn-running.png")

        # Derive now: the recurrent cell of this moment, 8 nodes each with one op, drawn beside the text
        keyed(page, "control.derive_now", "button").click()
        derived = page.locator(".st-key-control-derived_cell")
        expect(derived.get_by_text("Derived now, at step")).to_be_visible(timeout=STATE_MS)
        expect(derived.get_by_text("Genotype(recurrent=[")).to_be_visible()
        graph = derived.get_by_test_id("stGraphVizChart")
        expect(graph.locator("g.node title", has_text="h_t")).to_have_count(1, timeout=STATE_MS)
        labelled = graph.locator("g.edge text")
        expect(labelled).to_have_count(8)
        ops = labelled.evaluate_all("els => els.map(e => e.textContent)")
        assert len(ops) == 8 and set(ops) <= set(space.primitives) - {"none"}
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.screenshot(path=artifacts / "e2e-rnn-derived.png")
        # the page shows the cell at the click; the loop writes its `derive` row at its next step boundary
        eventually(page, lambda: any(r.get("kind") == "derive" for r in rundir.read_genotypes(e2e_runs / run_id)),
                   what="a derive row in genotypes.jsonl")
    finally:
        keyed(page, "control.stop", "button").click()
        expect(metric(page, "State")).to_have_text("stopped", timeout=STATE_MS)
    expect(page.get_by_role("button", name="Start search")).to_be_enabled(timeout=STATE_MS)
    catalog.delete_run(e2e_runs / run_id, e2e_runs)

"""The dashboard in a real headless Chromium against `streamlit run`: a `smoke` search started, watched and
steered from the page, then found again after reloads, on the Runs page and in Replay.

Selectors are the stable names of docs/dashboard.md: button labels, widget keys (Streamlit renders key
`a.b` as the class `st-key-a-b`) and Streamlit's data-testid values. Waiting is Playwright's auto-waiting
(`expect`, `wait_for_function`); the only timed waits are the bounded holds that check a paused counter
does not move across several refreshes of the live panel.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from app.figures import replay
from app.screens.search import DEFAULT_REFRESH_S
from engine.runs import catalog, rundir
from engine.space.cnn.cell import source_name
from engine.space.cnn.genotype import Genotype, derive_genotype

pytestmark = pytest.mark.e2e

LOAD_MS = 120_000      # first page load: the server imports torch and builds the page on a loaded machine
STATE_MS = 60_000      # a state change requested by a button (the loop honours it between steps)
CHANGE_MS = 60_000     # a live figure redrawn with new data
REFRESH_S = DEFAULT_REFRESH_S   # the live panel's default refresh, which the page keeps
ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 500           # smoke has 2 steps an epoch: long enough that the run never ends before Stop


def metric(page: Page, label: str) -> Locator:
    """The value of an `st.metric` of the status strip, by its exact label (Step is not Steps/s)."""
    label_el = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=label_el).get_by_test_id("stMetricValue")


def step_of(page: Page) -> int:
    return int(metric(page, "Step").inner_text().split("/")[0])


def keyed(page: Page, key: str, inner: str = "") -> Locator:
    """The element of widget key `key` (or `inner` inside it). While a keyed element is redrawn Streamlit
    briefly keeps the old copy beside it, hidden: only the visible one counts."""
    css = f".st-key-{key.replace('.', '-')}"
    return page.locator(f"{css} {inner}:visible" if inner else f"{css}:visible")


def control(page: Page, name: str) -> Locator:
    return keyed(page, f"control.{name}", "button")


def settled(page: Page) -> None:
    """No script run in flight (Streamlit marks the app root with its script state)."""
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning",
                                                            timeout=STATE_MS)


def rerun_done(page: Page, since: int) -> None:
    """The rerun requested after websocket message `since` has been answered and the app is idle: a message
    sent, a reply, the script state back to notRunning and 300 ms without a message."""
    page.wait_for_function("""k => {
        const w = window.__ws.slice(k), o = w.findIndex(e => e[1] === 'out');
        const replies = o < 0 ? [] : w.slice(o + 1).filter(e => e[1] === 'in');
        const state = document.querySelector('[data-testid=stApp]').dataset.testScriptState;
        return replies.length > 0 && state === 'notRunning' && performance.now() - w[w.length - 1][0] > 300;
    }""", arg=since, timeout=STATE_MS, polling=100)


def ws_count(page: Page) -> int:
    return page.evaluate("window.__ws.length")


def no_exception_box(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def hold_step(page: Page, step: int, cycles: float = 2.5) -> None:
    """The Step counter stays at `step` across `cycles` refreshes of the live panel (a bounded poll)."""
    end = time.monotonic() + cycles * REFRESH_S
    while time.monotonic() < end:
        assert step_of(page) == step, "the step counter moved while paused"
        page.wait_for_timeout(250)


def wait_js_change(page: Page, expr: str, before: str | int, timeout_ms: int = CHANGE_MS) -> None:
    """Wait until the JS expression (evaluated in the page) differs from `before`."""
    page.wait_for_function(f"old => {{ try {{ return ({expr}) !== old; }} catch (e) {{ return false; }} }}",
                           arg=before, timeout=timeout_ms, polling=250)


def eventually(page: Page, cond, timeout_s: float = 60.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, f"{what} not met within {timeout_s:.0f} s"
        page.wait_for_timeout(250)


def chart_js(key: str) -> str:
    """JS for the visible Vega-Lite chart (its SVG) in the container of key `key`."""
    css = f".st-key-{key.replace('.', '-')} [data-testid=stVegaLiteChart] svg"
    return f"Array.from(document.querySelectorAll('{css}')).find(e => e.getBoundingClientRect().width > 0)"


def cells_js(key: str) -> str:
    """JS for the ARIA labels of a heatmap's cells, in the order drawn (edge by edge, op by op), each
    "<edge>, <op>: weight <w>, change since start <d>" with six decimals."""
    return (f"Array.from({chart_js(key)}.querySelectorAll('g.role-mark.mark-rect path'))"
            ".map(p => p.getAttribute('aria-label'))")


# What the live figures hold, read from the page: the normal heatmap's cell labels (they change when any
# weight does); the points of the loss curve's lines (an SVG path `M x,y L x,y ...` per segment).
HEATMAP_Z = f"({cells_js('live.heatmap.normal')}).join('|')"
CURVE_POINTS = (f"Array.from({chart_js('live.curve.loss')}.querySelectorAll('g.role-mark.mark-line path'))"
                ".reduce((n, p) => n + (p.getAttribute('d').match(/L/g) || []).length + 1, 0)")
_WEIGHT = re.compile(r"^(.+), (\S+): weight (\S+), change since start (\S+)$")


def heatmap_z(page: Page, key: str) -> np.ndarray | None:
    """The (edges, ops) weights a heatmap of the page shows (from its cells' labels); None while not drawn."""
    try:
        labels = page.evaluate(f"() => {cells_js(key)}")
    except PlaywrightError:
        return None
    parsed = [_WEIGHT.match(label or "") for label in labels]
    if not labels or not all(parsed):
        return None
    edges = list(dict.fromkeys(m.group(1) for m in parsed))
    return np.array([float(m.group(3)) for m in parsed]).reshape(len(edges), -1)


def shows_weights(page: Page, prefix: str, weights: dict[str, np.ndarray]) -> bool:
    """Both heatmaps (`prefix`.heatmap.normal / .reduce) hold exactly these op weights."""
    zs = {cell: heatmap_z(page, f"{prefix}.heatmap.{cell}") for cell in ("normal", "reduce")}
    return all(z is not None and z.shape == weights[cell].shape and np.allclose(z, weights[cell], rtol=0, atol=1e-6)
               for cell, z in zs.items())


# The graph of each cell as drawn: (source, node, label) of every edge of the SVG (graphviz puts the edge's
# "a->b" in its <title> and the op in its label).
DAG_EDGES = """() => Array.from(document.querySelectorAll('[data-testid=stGraphVizChart]')).map(chart =>
  Array.from(chart.querySelectorAll('g.edge')).map(e => [e.querySelector('title').textContent,
                                                        (e.querySelector('text') || {}).textContent || '']))"""

# Armed while nothing changes: watches the charts' and graphs' element containers for any change (a rerun that
# re-sends an element marks it stale, and a new chart or graph replaces it) and counts the live ticks (rerun
# requests) after it. UNTOUCHED: no mutation, and every watched container still in the page.
WATCH_JS = """() => {
  const box = '[data-testid=stElementContainer]';
  const w = window.__watch = {mutations: 0, since: window.__ws.length, nodes: Array.from(document.querySelectorAll(
    `${box}:has([data-testid=stVegaLiteChart]), ${box}:has([data-testid=stGraphVizChart])`))};
  const obs = new MutationObserver(m => { w.mutations += m.length; });
  w.nodes.forEach(n => obs.observe(n, {subtree: true, childList: true, attributes: true, characterData: true}));
  return w.nodes.length;
}"""
TICKS_SINCE_WATCH = "() => window.__ws.slice(window.__watch.since).filter(e => e[1] === 'out').length"
UNTOUCHED = "() => window.__watch.mutations === 0 && window.__watch.nodes.every(n => n.isConnected)"
# The same watch on the graphs of the Derive now panel alone (its own fragment: a step must not re-send it;
# a re-sent element's container flips Streamlit's stale mark even where the graph itself is not redrawn)
DERIVED_GRAPHS = ".st-key-control-derived_cell [data-testid=stGraphVizChart]"
WATCH_DERIVED_JS = """() => {
  const box = '.st-key-control-derived_cell [data-testid=stElementContainer]:has([data-testid=stGraphVizChart])';
  const w = window.__dwatch = {mutations: 0, nodes: Array.from(document.querySelectorAll(box))};
  const obs = new MutationObserver(m => { w.mutations += m.length; });
  w.nodes.forEach(n => obs.observe(n, {subtree: true, childList: true, attributes: true, characterData: true}));
  return w.nodes.length;
}"""
DERIVED_UNTOUCHED = "() => window.__dwatch.mutations === 0 && window.__dwatch.nodes.every(n => n.isConnected)"


def cell_edges(genotype: Genotype, cell: str) -> set[tuple[str, str]]:
    nodes = genotype.cell_nodes(cell)
    return {(f"{source_name(j)}->{node}", op) for node, pairs in enumerate(nodes) for op, j in pairs}


def test_search_session_live_and_steered(server: str, page: Page, e2e_runs: Path, artifacts: Path):
    page.goto(server)
    start = page.get_by_role("button", name="Start search")
    expect(start).to_be_enabled(timeout=LOAD_MS)
    expect(page.get_by_text("No search yet")).to_be_visible()

    # Run setup: the smoke preset, with enough epochs that it runs until we stop it
    keyed(page, "setup.preset").click()
    page.get_by_role("option", name="smoke", exact=True).click()
    epochs = keyed(page, "setup.smoke.epochs", "input")
    expect(epochs).to_have_value("2", timeout=STATE_MS)
    sent = ws_count(page)
    epochs.fill(str(EPOCHS))
    epochs.press("Enter")
    expect(epochs).to_have_value(str(EPOCHS))
    # Start's config is the one of the page's last finished run: wait for the rerun Enter caused
    rerun_done(page, sent)
    expect(start).to_be_enabled(timeout=STATE_MS)
    start.click()

    # Running: the status strip, heatmaps, cells and curves, all redrawn with new data as steps go by
    expect(metric(page, "State")).to_have_text("running", timeout=STATE_MS)
    runs = catalog.list_runs(e2e_runs)
    assert len(runs) == 1
    assert runs[0].config["epochs"] == EPOCHS, "the search started with another config than the sidebar shows"
    run_id = runs[0].run_id
    expect(page.get_by_text(run_id).first).to_be_visible()
    expect(metric(page, "Device")).to_have_text("cpu")
    plots = page.locator("[data-testid=stVegaLiteChart]:visible")
    # 2 heatmaps + 3 curves + 2 collapse indicators (entropy, counts) + 2 costs (params, mult-adds)
    expect(plots).to_have_count(9, timeout=CHANGE_MS)
    expect(page.get_by_test_id("stGraphVizChart")).to_have_count(2)
    expect(keyed(page, "live.heatmap.normal", "[data-testid=stVegaLiteChart] svg")).to_be_visible(timeout=CHANGE_MS)
    first_step = metric(page, "Step").inner_text()  # read first: the figures below are as new or newer
    heatmap, points = (page.evaluate(e) for e in (HEATMAP_Z, CURVE_POINTS))
    wait_js_change(page, HEATMAP_Z, heatmap)
    wait_js_change(page, CURVE_POINTS, points)
    assert page.evaluate(CURVE_POINTS) > points
    expect(metric(page, "Step")).not_to_have_text(first_step)
    assert step_of(page) > int(first_step.split("/")[0])
    no_exception_box(page)
    page.wait_for_function(f"() => {{ try {{ return ({CURVE_POINTS}) >= 8; }} catch (e) {{ return false; }} }}",
                           timeout=CHANGE_MS, polling=250)  # curves with a few points for the screenshot
    page.screenshot(path=artifacts / "e2e-running.png")

    # Pause: the counter stops
    expect(control(page, "step_once")).to_be_disabled()
    control(page, "pause").click()
    expect(metric(page, "State")).to_have_text("paused", timeout=STATE_MS)
    paused_at = step_of(page)
    hold_step(page, paused_at)
    expect(control(page, "pause")).to_be_disabled()
    page.screenshot(path=artifacts / "e2e-paused.png")

    # Step once: exactly one step, then paused again
    expect(control(page, "step_once")).to_be_enabled()
    control(page, "step_once").click()
    total = metric(page, "Step").inner_text().split("/")[1]
    expect(metric(page, "Step")).to_have_text(f"{paused_at + 1}/{total}", timeout=STATE_MS)
    expect(metric(page, "State")).to_have_text("paused", timeout=STATE_MS)
    hold_step(page, paused_at + 1)

    # The numbers are this step's: the heatmaps hold the softmax of the alphas recorded at the step shown, and
    # the cells are the genotype derived from them (normal and reduction each in its own chart)
    record = next(r for r in rundir.read_alphas(e2e_runs / run_id) if r["step"] == paused_at + 1)
    weights = replay.record_weights(record, runs[0].config.get("variant", "darts"))
    eventually(page, lambda: shows_weights(page, "live", weights), timeout_s=30,
               what=f"the heatmaps showing the alphas of step {paused_at + 1}")
    assert step_of(page) == paused_at + 1
    shown = genotype_at(e2e_runs / run_id, paused_at + 1)
    eventually(page, lambda: [{tuple(e) for e in edges if e[1]} for edges in page.evaluate(DAG_EDGES)]
               == [cell_edges(shown, "normal"), cell_edges(shown, "reduce")], timeout_s=30,
               what="the cells' graphs drawing the derived genotype's edges")

    # Nothing changes while paused: the live ticks go on, and re-send nothing (no chart is touched)
    assert page.evaluate(WATCH_JS) == 11  # 9 charts, 2 graphs
    page.wait_for_function(f"() => ({TICKS_SINCE_WATCH})() >= 3", timeout=STATE_MS, polling=100)
    settled(page)
    assert page.evaluate(UNTOUCHED), "an unchanged chart was re-rendered"

    # Derive now (while paused): genotypes.jsonl gets the genotype of exactly these alphas
    control(page, "derive_now").click()

    def derived() -> list[dict]:
        return [r for r in rundir.read_genotypes(e2e_runs / run_id) if r.get("kind") == "derive"]

    eventually(page, lambda: derived(), what="a derive row in genotypes.jsonl")
    assert derived()[-1]["step"] == paused_at + 1
    assert Genotype.from_dict(derived()[-1]["genotype"]) == genotype_at(e2e_runs / run_id, paused_at + 1)
    expect(page.locator(DERIVED_GRAPHS)).to_have_count(2, timeout=STATE_MS)  # the derived cells, shown at once
    settled(page)

    # Resume: the counter moves again, and new steps redraw the charts (the watch above sees redraws) but not
    # the Derive now panel, which shows the cell of the click until it is hidden
    page.evaluate(WATCH_JS)
    assert page.evaluate(WATCH_DERIVED_JS) == 2
    control(page, "resume").click()
    expect(metric(page, "State")).to_have_text("running", timeout=STATE_MS)
    page.wait_for_function(f"() => !({UNTOUCHED})()", timeout=CHANGE_MS, polling=100)
    expect(metric(page, "Step")).not_to_have_text(f"{paused_at + 1}/{total}", timeout=STATE_MS)
    assert step_of(page) > paused_at + 1
    expect(metric(page, "Step")).not_to_have_text(f"{step_of(page)}/{total}", timeout=STATE_MS)  # one more step
    assert page.evaluate(DERIVED_UNTOUCHED), "the Derive now panel was redrawn by a status update"

    # A reload (a new session) shows the same search, still running: closing a tab does not stop it
    page.reload()
    expect(metric(page, "State")).to_have_text("running", timeout=LOAD_MS)
    expect(page.get_by_text(run_id).first).to_be_visible()
    assert step_of(page) > paused_at + 1

    # Stop: the loop finishes its step, checkpoints and ends stopped
    control(page, "stop").click()
    expect(metric(page, "State")).to_have_text("stopped", timeout=STATE_MS)
    # the run ended: one full rerun redraws the page (Start enabled again) and the panel stops polling
    expect(page.get_by_role("button", name="Start search")).to_be_enabled(timeout=STATE_MS)
    settled(page)
    for name in ("pause", "resume", "step_once", "stop", "derive_now"):
        expect(control(page, name)).to_be_disabled()
    stopped_at = step_of(page)
    assert rundir.read_status(e2e_runs / run_id)["state"] == "stopped"
    assert rundir.read_status(e2e_runs / run_id)["step"] == stopped_at
    no_exception_box(page)
    page.screenshot(path=artifacts / "e2e-stopped.png")

    # Download the genotype JSON (made at click time: the genotype of the stopped alphas) and parse it.
    # Done once the panel no longer polls: see download_json() for why.
    genotype = Genotype.parse(download_json(page, run_id))
    assert genotype == genotype_at(e2e_runs / run_id, stopped_at)
    assert len(genotype.normal) == len(genotype.reduce) == 8

    # Reload once more: the same run, stopped, at the same step
    page.reload()
    expect(metric(page, "State")).to_have_text("stopped", timeout=LOAD_MS)
    expect(page.get_by_text(run_id).first).to_be_visible()
    expect(metric(page, "Step")).to_have_text(f"{stopped_at}/{total}")


def genotype_at(run_dir: Path, step: int) -> Genotype:
    """The genotype of the alphas recorded at `step` (alphas.jsonl holds every step of a smoke run)."""
    record = next(r for r in rundir.read_alphas(run_dir) if r["step"] == step)
    return derive_genotype(np.asarray(record["normal"]), np.asarray(record["reduce"]))


def download_json(page: Page, run_id: str) -> str:
    """Click `Genotype JSON` and return the downloaded text.

    Clicked only while no script run is in flight: each redraw of the export piece registers a new deferred
    download and drops the previous one, so a click that lands during one (when the genotype appears, or in
    the full rerun after Stop) asks for a dropped id: the server logs "Deferred file ... not found" and
    nothing downloads. Live ticks do not redraw it."""
    settled(page)
    with page.expect_download(timeout=STATE_MS) as download:
        keyed(page, "live.download.json", "button").click()
    assert download.value.suggested_filename == f"{run_id}-genotype.json"
    return Path(download.value.path()).read_text()


def _ensure_run(runs_dir: Path) -> str:
    """The newest ended run (the one the test above stopped); without one (this test alone, or the test above
    failed) a smoke search from the command line makes one (40 steps: Replay's Play runs for a while)."""
    runs = [r for r in catalog.list_runs(runs_dir) if r.state in ("stopped", "finished")]
    if not runs:
        subprocess.run([sys.executable, "-m", "engine", "search", "--preset", "smoke", "--set", "epochs=20",
                        "--runs-dir", str(runs_dir)],
                       cwd=ROOT, check=True, capture_output=True, timeout=300)
        runs = catalog.list_runs(runs_dir)
    return runs[0].run_id


def test_runs_page_and_replay(server: str, page: Page, e2e_runs: Path, artifacts: Path):
    run_id = _ensure_run(e2e_runs)
    page.goto(server)
    nav_runs = page.get_by_test_id("stSidebarNavLink").filter(has_text="Runs")
    expect(nav_runs).to_be_visible(timeout=LOAD_MS)
    nav_runs.click()

    # Runs: the table, the picked run (newest first) with its cells, curves and exports
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible(timeout=LOAD_MS)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_role("heading", name=run_id)).to_be_visible()
    expect(page.get_by_test_id("stGraphVizChart").first).to_be_visible()
    expect(page.get_by_test_id("stDownloadButton").first).to_be_visible()
    no_exception_box(page)
    page.screenshot(path=artifacts / "e2e-runs.png")

    # Replay: a slider over the recorded alphas that redraws heatmaps and cells at any step
    keyed(page, "runs.replay", "button").click()
    expect(page.get_by_role("heading", name="Replay", exact=True)).to_be_visible(timeout=LOAD_MS)
    slider = page.get_by_test_id("stSlider").get_by_role("slider")
    expect(slider).to_be_visible(timeout=CHANGE_MS)
    # 2 heatmaps and the 3 curves drawn up to the step shown
    expect(page.locator("[data-testid=stVegaLiteChart]:visible")).to_have_count(5, timeout=CHANGE_MS)
    expect(page.get_by_test_id("stGraphVizChart")).to_have_count(2)
    first, last = slider.get_attribute("min"), slider.get_attribute("max")
    assert int(last) > int(first)
    expect(slider).to_have_value(last)  # opens at the latest record
    heatmap_z = f"({cells_js(f'replay.{run_id}.heatmap.normal')}).join('|')"
    page.wait_for_function(f"() => {{ try {{ return ({heatmap_z}).length > 0; }} catch (e) {{ return false; }} }}",
                           timeout=CHANGE_MS, polling=250)
    z_last = page.evaluate(heatmap_z)

    # Play rewinds to the start and advances on its timer; Stop replay holds the frame
    page.get_by_role("button", name="Play", exact=True).click()
    expect(page.get_by_role("button", name="Stop replay")).to_be_enabled(timeout=STATE_MS)
    expect(slider).not_to_have_value(last, timeout=CHANGE_MS)
    played = slider.input_value()
    expect(slider).not_to_have_value(played, timeout=CHANGE_MS)
    assert int(slider.input_value()) > int(played)
    page.get_by_role("button", name="Stop replay").click()
    expect(page.get_by_role("button", name="Play", exact=True)).to_be_enabled(timeout=STATE_MS)

    # Dragging to the first record (keyboard: Home) redraws the heatmaps at that step
    slider.focus()
    slider.press("Home")
    expect(slider).to_have_value(first, timeout=STATE_MS)
    wait_js_change(page, heatmap_z, z_last)
    expect(page.get_by_text("Record 1 of")).to_be_visible(timeout=STATE_MS)
    records = rundir.read_alphas(e2e_runs / run_id)
    variant = rundir.read_config(e2e_runs / run_id)["config"].get("variant", "darts")
    eventually(page, lambda: shows_weights(page, f"replay.{run_id}", replay.record_weights(records[0], variant)),
               timeout_s=30, what="Replay showing the first record's weights")
    assert not shows_weights(page, f"replay.{run_id}", replay.record_weights(records[-1], variant))
    no_exception_box(page)
    page.screenshot(path=artifacts / "e2e-replay.png")


def test_learn_collapse_lesson_in_one_click(server: str, page: Page, artifacts: Path):
    """The Learn page's button opens the collapse lesson from the shipped recordings: two Plotly charts of the
    three runs' counts and their three normal cells, then how often each variant collapsed over the seeds of the
    shipped sweep, which opens on the Sweeps page; on a server whose runs root may be empty."""
    from app.screens import learn, sweeps
    from engine.runs import examples

    page.goto(server)
    nav_learn = page.get_by_test_id("stSidebarNavLink").filter(has_text="Learn")
    expect(nav_learn).to_be_visible(timeout=LOAD_MS)
    nav_learn.click()
    button = page.get_by_role("button", name=learn.LESSON_LABEL)
    expect(button).to_be_visible(timeout=LOAD_MS)
    button.click()
    body = keyed(page, "learn.collapse_lesson.body")
    # the three runs' two count charts, and how often each variant collapsed over the shipped sweep's seeds
    expect(body.locator("[data-testid=stPlotlyChart]")).to_have_count(3, timeout=CHANGE_MS)
    expect(keyed(page, "learn.collapse_seeds.band")).to_be_visible()
    expect(body.get_by_text("seeds ended with a collapsed normal cell").first).to_be_visible()
    # each run's final normal cell, and each run's cell in the film (app/panels/collapse_film.py)
    expect(body.locator("[data-testid=stGraphVizChart]")).to_have_count(2 * len(learn.COLLAPSE_LESSON))
    expect(body.locator("[class*=st-key-learn-film-cell-] [data-testid=stGraphVizChart]")).to_have_count(
        len(learn.COLLAPSE_LESSON))
    no_exception_box(page)
    body.screenshot(path=artifacts / "e2e-learn-collapse.png")
    # each run's Replay it opens that recording on the Replay page
    darts = examples.example("collapse-darts")
    keyed(page, f"learn.collapse_lesson.replay.{darts.run_id}", "button").click()
    expect(page.get_by_role("heading", name="Replay", exact=True)).to_be_visible(timeout=LOAD_MS)
    expect(page.get_by_role("combobox", name="Run")).to_have_value(darts.run_id, timeout=STATE_MS)
    no_exception_box(page)
    # back on Learn the lesson is still open; the sweep behind its counts opens on the Sweeps page
    nav_learn.click()
    keyed(page, "learn.collapse_lesson.sweep", "button").click(timeout=LOAD_MS)
    expect(page.get_by_role("heading", name="Sweeps", exact=True)).to_be_visible(timeout=LOAD_MS)
    expect(page.get_by_text(sweeps.SHIPPED_CAPTION)).to_be_visible(timeout=STATE_MS)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=LOAD_MS)
    no_exception_box(page)

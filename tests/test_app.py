"""The dashboard under streamlit.testing's AppTest: layout, inline validation, a smoke search steered by
the control buttons, and the Runs / Replay / Learn pages on the run it leaves behind.

AppTest never fires `run_every`, so a test calls `run()` again to redraw; the registry lives in
`st.cache_resource`, shared by every AppTest of this process, so a fixture clears it and stops leftover
searches.
"""

import re
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import state
from app.figures import curves, heatmaps, replay
from engine.runs import catalog, rundir
from engine.search.config import PRESETS
from engine.search.loop import run_search
from engine.space.cnn.cell import PRIMITIVES, source_name
from tests.charts import chart as _chart
from tests.charts import title as _title
from tests.waiting import wait_for

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
TIMEOUT = 60




def _app() -> AppTest:
    return AppTest.from_file(MAIN, default_timeout=TIMEOUT)


def _button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}; buttons: {[b.label for b in at.button]}"
    return found[0]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _heatmap(at: AppTest, key: str) -> tuple[str, np.ndarray]:
    """A heatmap's title and the (edges, ops) values its colours and texts show, with its rows and columns
    checked to be the edges and ops in order."""
    spec, data = _chart(at, key)
    edges, ops = spec["encoding"]["y"]["sort"], spec["encoding"]["x"]["sort"]
    assert (edges, ops) == (list(heatmaps.weights_frame(np.zeros((14, 8))).index), list(PRIMITIVES))
    assert data["edge"].tolist() == [e for e in edges for _ in ops] and data["op"].tolist() == ops * len(edges)
    assert spec["layer"][0]["encoding"]["color"]["field"] == spec["layer"][1]["encoding"]["text"]["field"] == "value"
    return _title(spec), data["value"].to_numpy().reshape(len(edges), len(ops))


_EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[label="([^"]+)"', re.M)


def _dot_edges(dot: str) -> set[tuple[str, str, str]]:
    """(source, node, op) of every labelled edge of a cell's DOT source (the output edges carry no label)."""
    return {(src, dst, label.split()[0]) for src, dst, label in _EDGE.findall(dot)}


def _genotype_edges(genotype, cell: str) -> set[tuple[str, str, str]]:
    return {(source_name(j), str(node), op) for node, pairs in enumerate(genotype.cell_nodes(cell)) for op, j in pairs}


def test_layout_renders_with_no_run(app_runs):
    at = _app().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["DARTS search"]
    assert any("No search yet" in i.value for i in at.info)
    start = _button(at, "Start search")
    assert not start.disabled
    assert at.selectbox(key="setup.preset").value == "demo"
    assert at.number_input(key="setup.demo.epochs").value == PRESETS["demo"].epochs
    assert not at.error
    # the instant option is on the first screen, beside a one-click start: no field to fill first
    assert not _button(at, "Replay a recorded search now").disabled
    assert not _button(at, "Start a demo search").disabled


@pytest.mark.parametrize("field, value, text", [
    ("epochs", 0, "Epochs: 0 is not valid"),                 # the sidebar's labels, not the config's names
    ("w_lr", -0.1, "Weight lr: -0.1 is not valid"),
    ("init_channels", 3, "Channels (C): 3 is not valid: an even integer"),
])
def test_bad_sidebar_value_shows_an_inline_message(app_runs, field, value, text):
    at = _app().run()
    at.number_input(key=f"setup.demo.{field}").set_value(value).run()
    assert not at.exception
    errors = [e.value for e in at.sidebar.error]
    assert any(text in e for e in errors), errors
    assert _button(at, "Start search").disabled


def test_preset_choice_fills_the_fields(app_runs):
    at = _app().run()
    at.selectbox(key="setup.preset").set_value("smoke").run()
    assert at.selectbox(key="setup.smoke.dataset").value == "fake"
    assert at.number_input(key="setup.smoke.init_channels").value == 4
    assert not at.sidebar.error


def test_smoke_search_steered_by_the_controls(app_runs, page):
    at = _app().run()
    at.selectbox(key="setup.preset").set_value("smoke").run()
    at.number_input(key="setup.smoke.epochs").set_value(200).run()
    _button(at, "Start search").click().run()
    assert not at.exception
    job = state.registry().current()
    assert job is not None and Path(job.run_dir).parent == app_runs
    assert _button(at, "Start search").disabled        # one search at a time
    assert _button(at, "Step once").disabled           # only while paused

    # pause at once (the loop stops at its first gate), so the test costs a handful of steps
    _button(at, "Pause").click().run()
    wait_for(lambda: job.snapshot().state == "paused")
    at.run()
    assert _metric(at, "State") == "paused"
    assert not _button(at, "Resume").disabled and _button(at, "Pause").disabled
    s0 = job.snapshot().step
    time.sleep(0.3)
    assert job.snapshot().step == s0                   # paused: the counter stands still

    _button(at, "Step once").click().run()
    wait_for(lambda: job.snapshot().step == s0 + 1)
    time.sleep(0.3)
    assert job.snapshot().step == s0 + 1 and job.snapshot().state == "paused"
    at.run()
    assert _metric(at, "Step").startswith(f"{s0 + 1}/")
    # 2 heatmaps + 3 curves + collapse indicators (entropy, counts) + the cells' costs (params, mult-adds)
    assert len(at.get("vega_lite_chart")) == 9
    assert len(at.get("graphviz_chart")) == 2          # normal + reduction cell
    # what the page shows is this step's: the heatmaps hold the op weights that alphas.jsonl recorded at it
    snap = job.snapshot()
    record = next(r for r in rundir.read_alphas(job.run_dir) if r["step"] == s0 + 1)
    recorded = replay.record_weights(record, job.config.variant)
    for cell in ("normal", "reduce"):
        _, z = _heatmap(at, f"live.heatmap.{cell}")
        np.testing.assert_allclose(z, snap.weights[cell], rtol=0, atol=1e-12)
        np.testing.assert_allclose(z, recorded[cell], rtol=0, atol=1e-6)
    derived = replay.record_genotype(record, job.config.variant)
    for graph, cell in zip(at.get("graphviz_chart"), ("normal", "reduce"), strict=True):
        assert _dot_edges(graph.proto.spec) == _genotype_edges(derived, cell)

    _button(at, "Derive now").click().run()
    assert any(f"Derived now, at step {s0 + 1}" in m.value for m in at.markdown)   # shown in the click's rerun
    assert any(c.value == snap.genotype.to_darts() for c in at.code)
    wait_for(lambda: any(r.get("kind") == "derive" for r in rundir.read_genotypes(job.run_dir)))
    written = [r for r in rundir.read_genotypes(job.run_dir) if r.get("kind") == "derive"][-1]
    assert written["genotype"] == snap.genotype.to_dict()    # the cell shown is the one recorded (paused)
    _button(at, "Resume").click().run()
    wait_for(lambda: job.snapshot().state == "running")
    at.run()
    assert _metric(at, "State") == "running"

    _button(at, "Stop").click().run()
    wait_for(lambda: not job.alive)
    at.run()
    assert _metric(at, "State") == "stopped"
    assert _button(at, "Stop").disabled and not _button(at, "Start search").disabled
    assert not at.exception

    # a second session (a reload, another tab) sees the same run
    again = _app().run()
    assert any(job.run_id in c.value for c in again.caption)

    # the run it left behind, on the other pages
    runs = page("runs").run()
    assert not runs.exception
    assert job.run_id in runs.dataframe[0].value["run"].tolist()
    assert not _button(runs, "Resume run").disabled   # stopped runs resume from their checkpoint
    runs.number_input(key=f"runs.{job.run_id}.w_lr").set_value(0.0125).run()
    _button(runs, "Resume run").click().run()           # resumed with a lower weight lr
    assert not runs.exception
    resumed = state.registry().get(job.run_id)
    assert resumed is not job and resumed.config.w_lr == 0.0125
    resumed.stop()
    wait_for(lambda: not resumed.alive)
    assert rundir.read_config(job.run_dir)["config"]["w_lr"] == 0.0125
    runs = page("runs").run()
    replay_at = page("replay")
    replay_at.query_params["run"] = job.run_id      # Replay opens on the shipped recording otherwise
    replay_at.run()
    assert not replay_at.exception and replay_at.slider(key=f"replay.{job.run_id}.step").value >= 1
    learn = page("learn").run()
    assert not learn.exception and len(learn.get("plotly_chart")) + len(learn.get("vega_lite_chart")) >= 4

    _button(runs, "Delete run").click().run()
    _button(runs, "Yes, delete it").click().run()
    assert not runs.exception
    assert not Path(job.run_dir).exists()
    assert any("Deleted" in s.value for s in runs.success)


def _panel_script(state_name, error, message):
    """The live panel on a hand-made snapshot and a stand-in job (views run on fixture data)."""
    import numpy as np

    from app.panels import live
    from engine.runs.snapshot import Snapshot
    from engine.space.cnn.genotype import KNOWN_GENOTYPES

    rng = np.random.default_rng(0)
    weights = {cell: rng.dirichlet(np.ones(8), size=14) for cell in ("normal", "reduce")}
    snap = Snapshot(
        run_id="fixture", state=state_name, epoch=1, epochs=2, step=3, total_steps=8, steps_per_s=1.5, eta_s=4.0,
        device="cpu", weights=weights, initial_weights={c: np.full((14, 8), 1 / 8) for c in weights},
        genotype=KNOWN_GENOTYPES["DARTS_V2"], epoch_genotype=KNOWN_GENOTYPES["DARTS_V1"],
        metrics=tuple({"step": s, "train_loss": 2.0 / s, "valid_loss": 2.1 / s, "train_acc": 0.1 * s,
                       "valid_acc": 0.1 * s, "w_lr": 0.025} for s in (1, 2, 3)),
        message=message, error=error, config={"dataset": "fake", "num_classes": 4})

    class Job:
        def snapshot(self):
            return snap

        def pause(self): ...
        def resume(self): ...
        def step_once(self): ...
        def stop(self): ...
        def derive_now(self): ...

    live.panel(Job(), snap)


def _panel(state_name, error=None, message=None) -> AppTest:
    return AppTest.from_function(_panel_script, args=(state_name, error, message), default_timeout=TIMEOUT).run()


def test_failed_run_shows_its_error_in_the_page(app_runs):
    at = _panel("failed", error="RuntimeError: CUDA out of memory")
    assert not at.exception
    assert any("The search failed: RuntimeError: CUDA out of memory" in e.value for e in at.error)
    assert all(b.disabled for b in at.button if b.label in ("Pause", "Resume", "Step once", "Stop", "Derive now"))


def test_nan_pause_message_is_a_warning_and_paused_controls_are_enabled(app_runs):
    at = _panel("paused", message="Paused: the loss became NaN at step 3")
    assert not at.exception and not at.error
    assert any("loss became NaN" in w.value for w in at.warning)
    assert _button(at, "Pause").disabled
    assert not _button(at, "Resume").disabled and not _button(at, "Step once").disabled
    assert _metric(at, "Step") == "3/8" and _metric(at, "State") == "paused"
    assert _metric(at, "Parameters (C=36, 20 cells, 4 classes)").endswith("M")
    assert len(at.get("vega_lite_chart")) == 5 and len(at.get("graphviz_chart")) == 2
    changes = "\n".join(c.value for c in at.code)
    assert "normal node 3: skip_connect from 0 -> dil_conv_3x3 from 0" in changes


def _replay_of(page, run_id: str) -> AppTest:
    """The Replay page opened on `run_id` through its URL (?run=), as a bookmark would."""
    at = page("replay")
    at.query_params["run"] = run_id
    return at.run()


def test_replay_play_advances_stop_keeps_the_frame_and_the_end_stops(app_runs, smoke, page):
    run_dir = app_runs / "replayed"
    run_dir.mkdir()
    assert run_search(smoke.replace(epochs=3), run_dir) == "finished"
    steps = replay.replay_steps(rundir.read_alphas(run_dir))
    assert len(steps) >= 4
    at = _replay_of(page, catalog.list_runs(app_runs)[0].run_id)
    key = f"replay.{catalog.list_runs(app_runs)[0].run_id}"
    assert at.slider(key=f"{key}.step").value == steps[-1]            # opens at the latest record
    _button(at, "Play").click().run()                                   # at the end: plays from the start
    assert not at.exception and _button(at, "Play").disabled and not _button(at, "Stop replay").disabled
    shown = [at.slider[0].value]
    at.run()                                                            # a tick (AppTest never fires run_every)
    shown.append(at.slider[0].value)
    assert shown == steps[1:3] and at.slider[0].disabled                # one record a tick, slider locked
    _button(at, "Stop replay").click().run()
    assert at.slider(key=f"{key}.step").value == steps[2] and not at.slider[0].disabled
    # the frame at a step shows that step's record, not the latest one
    records = rundir.read_alphas(run_dir)
    variant = rundir.read_config(run_dir)["config"].get("variant", "darts")
    assert any(c.value.startswith(f"Record 3 of {len(records)} · step {steps[2]} ·") for c in at.caption)
    for cell in ("normal", "reduce"):
        _, z = _heatmap(at, f"{key}.heatmap.{cell}")
        np.testing.assert_allclose(z, replay.record_weights(records[2], variant)[cell], rtol=0, atol=1e-12)
        assert not np.allclose(z, replay.record_weights(records[-1], variant)[cell], rtol=0, atol=1e-9)
    for graph, cell in zip(at.get("graphviz_chart"), ("normal", "reduce"), strict=True):
        assert _dot_edges(graph.proto.spec) == _genotype_edges(replay.record_genotype(records[2], variant), cell)
    _button(at, "Play").click().run()                                   # resumes from the frame shown
    assert at.slider[0].value == steps[3]
    for _ in range(len(steps)):
        at.run()
    assert not _button(at, "Play").disabled and _button(at, "Stop replay").disabled
    assert at.slider(key=f"{key}.step").value == steps[-1]              # the end stops the replay there


def test_replay_draws_the_curves_up_to_the_step_shown_and_plays_at_the_chosen_speed(app_runs, smoke, page):
    from app.screens.replay import stride

    run_dir = app_runs / "replayed"
    run_dir.mkdir()
    assert run_search(smoke.replace(epochs=4, log_every=1), run_dir) == "finished"
    steps = replay.replay_steps(rundir.read_alphas(run_dir))
    at = _replay_of(page, catalog.list_runs(app_runs)[0].run_id)
    key = f"replay.{catalog.list_runs(app_runs)[0].run_id}"
    at.slider(key=f"{key}.step").set_value(steps[3]).run()
    for curve in curves.SPACE_CURVES["cnn"]:  # the curves stop at the step the heatmaps show, not at the run's end
        _, data = _chart(at, f"{key}.curve.{curve}")
        assert data["x"].max() == steps[3], curve
    assert stride(250, "1x") == 5 and stride(250, "4x") == 17 and stride(250, "0.25x") == 2 and stride(8, "4x") == 1
    at.button_group(key=f"{key}.speed").set_value("4x").run()
    at.slider(key=f"{key}.step").set_value(steps[0]).run()
    _button(at, "Play").click().run()
    assert not at.exception, at.exception
    big = stride(len(steps), "4x")
    assert at.slider[0].value == steps[min(len(steps) - 1, big)]  # 4x: several records a tick
    _, data = _chart(at, f"{key}.curve.{next(iter(curves.CURVES))}")
    assert data["x"].max() == at.slider[0].value


def test_replay_derives_with_the_runs_options_and_skip_cap_as_the_run_did(app_runs, smoke, page):
    """beta-DARTS on PC-DARTS ranks edges by op weight x edge weight, and a run with max_skip caps its cells;
    Replay must draw the run's own genotype, not the one the variant's bare name would derive."""
    run_dir = app_runs / "regularised"
    run_dir.mkdir()
    config = smoke.replace(epochs=2, variant="beta_darts", beta_base="pc_darts", pc_k=2, max_skip=0, a_lr=0.5)
    assert run_search(config, run_dir) == "finished"
    final = rundir.latest_genotype(run_dir)
    assert not any(op == "skip_connect" for op, _ in final.normal)  # the run capped its cell at 0 skips
    at = _replay_of(page, catalog.list_runs(app_runs)[0].run_id)
    assert not at.exception
    for graph, cell in zip(at.get("graphviz_chart"), ("normal", "reduce"), strict=True):
        assert _dot_edges(graph.proto.spec) == _genotype_edges(final, cell)


# ---------------------------------------------------------------- the numbers on the page are the run's numbers
def _values_script(mode):
    """The live panel on a snapshot whose normal and reduction weights, cells and metric rows all differ."""
    import numpy as np
    import streamlit as st

    from app.panels import live
    from engine.runs.snapshot import Snapshot
    from engine.space.cnn.genotype import KNOWN_GENOTYPES

    rng = np.random.default_rng(7)
    weights = {cell: rng.dirichlet(np.ones(8) * a, size=14) for cell, a in (("normal", 0.5), ("reduce", 2.0))}
    metrics = tuple({"step": s, "train_loss": 2.3 - 0.1 * s, "valid_loss": 2.4 - 0.09 * s, "train_acc": 0.1 + 0.05 * s,
                     "valid_acc": 0.08 + 0.04 * s, "w_lr": 0.025 - 0.001 * s} for s in (2, 4, 6, 9))
    snap = Snapshot(
        run_id="values", state="paused", epoch=1, epochs=4, step=9, total_steps=20, device="cpu", weights=weights,
        initial_weights={c: rng.dirichlet(np.ones(8) * 50, size=14) for c in weights},
        genotype=KNOWN_GENOTYPES["DARTS_V2"], epoch_genotype=KNOWN_GENOTYPES["DARTS_V1"], metrics=metrics,
        config={"dataset": "cifar100"})
    st.session_state["snap"] = snap
    if mode != "softmax":
        st.session_state.setdefault("live.mode", mode)

    class Job:
        run_id = "values"

        def snapshot(self):
            return snap

    live.panel(Job(), snap)


@pytest.mark.parametrize("mode", ["softmax", "uniform", "change"])
def test_heatmaps_show_the_snapshots_op_weights_each_in_its_own_chart(app_runs, mode):
    at = AppTest.from_function(_values_script, args=(mode,), default_timeout=TIMEOUT).run()
    assert not at.exception
    snap = at.session_state["snap"]
    assert not np.allclose(snap.weights["normal"], snap.weights["reduce"])
    for cell, title in (("normal", "Normal cell"), ("reduce", "Reduction cell")):
        shown_title, z = _heatmap(at, f"live.heatmap.{cell}")
        assert shown_title == title
        want = {"softmax": snap.weights[cell], "uniform": snap.weights[cell] - 1 / len(PRIMITIVES),
                "change": snap.weights[cell] - snap.initial_weights[cell]}[mode]   # centred: op weight - 1/8
        np.testing.assert_allclose(z, want, rtol=0, atol=1e-12)


def test_cells_graphs_draw_exactly_the_genotypes_edges(app_runs):
    at = AppTest.from_function(_values_script, args=("softmax",), default_timeout=TIMEOUT).run()
    genotype = at.session_state["snap"].genotype
    graphs = at.get("graphviz_chart")
    assert len(graphs) == 2                           # the normal cell's column, then the reduction cell's
    for graph, cell in zip(graphs, ("normal", "reduce"), strict=True):
        assert _dot_edges(graph.proto.spec) == _genotype_edges(genotype, cell)
    assert _genotype_edges(genotype, "normal") != _genotype_edges(genotype, "reduce")


def test_parameter_count_is_the_network_the_label_names(app_runs):
    import torch

    from engine.nn.network import NetworkCIFAR, count_parameters

    at = AppTest.from_function(_values_script, args=("softmax",), default_timeout=TIMEOUT).run()
    snap = at.session_state["snap"]
    metric = next(m for m in at.metric if m.label.startswith("Parameters"))
    size = re.fullmatch(r"Parameters \(C=(\d+), (\d+) cells, (\d+) classes\)", metric.label)
    assert size, metric.label
    C, layers, classes = map(int, size.groups())
    assert (C, layers) == (36, 20)                      # the paper's CIFAR evaluation network
    assert classes == state.num_classes_of(snap.config) == 100
    with torch.device("meta"):                          # shapes only: no memory, no initialisation
        want = count_parameters(NetworkCIFAR(C, classes, layers, False, snap.genotype))
    assert metric.value == f"{want / 1e6:.2f}M"
    assert metric.proto.help.startswith(f"{want:,} parameters of NetworkCIFAR({C}, {classes}, {layers})")


def test_curves_end_at_the_last_metrics_row(app_runs):
    at = AppTest.from_function(_values_script, args=("softmax",), default_timeout=TIMEOUT).run()
    rows = at.session_state["snap"].metrics
    for curve in curves.SPACE_CURVES["cnn"]:
        _, _, keys = curves.CURVES[curve]
        spec, data = _chart(at, f"live.curve.{curve}")
        assert _title(spec) == curves.CURVES[curve][0]
        lines = data[data["kind"] == "line"]
        assert lines["series"].unique().tolist() == [name for _, name in keys]
        for key, name in keys:
            line = lines[lines["series"] == name]
            assert line["x"].tolist() == [r["step"] for r in rows]
            np.testing.assert_allclose(line["y"], [r[key] for r in rows], rtol=0, atol=1e-12)
            assert line["x"].iloc[-1] == rows[-1]["step"] and line["y"].iloc[-1] == rows[-1][key]

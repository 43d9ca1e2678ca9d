"""The recurrent search space in the dashboard and the run directory: Start from the sidebar's recurrent presets,
the live 36 x 5 heatmap, the recurrent cell drawn and derived, perplexity curves, and the same run read back by
follow mode, the Runs page, Replay and the exports. Tiny configs (the rnn-smoke preset, a few steps)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import state
from app.figures import tables
from engine.jobs.controller import Registry, resume_config
from engine.runs import export, rundir
from engine.runs.catalog import run_info
from engine.runs.control import Control
from engine.runs.follow import snapshot_from_dir
from engine.runs.hooks import Callback
from engine.search.rnn_config import RNNSearchConfig, from_rnn_preset
from engine.space import get_space, space_of_genotype, space_of_kinds
from engine.space.rnn.genotype import KNOWN_GENOTYPES, Genotype
from tests.charts import chart as _chart
from tests.charts import title as _title

EDGES, OPS = 36, 5


def _search_page():
    from app.screens import search

    search.page()


def _wait_steps(job, steps: int, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while job.snapshot().step < steps:
        assert job.snapshot().state in ("queued", "running"), job.snapshot().error
        assert time.monotonic() < end, f"{steps} steps not reached in {timeout} s"
        time.sleep(0.05)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class _StopAt(Callback):
    def __init__(self, control: Control, step: int):
        self.control, self.at = control, step

    def on_step_end(self, event) -> None:
        if event.step >= self.at:
            self.control.stop()


@pytest.fixture(scope="module")
def rnn_run(tmp_path_factory):
    """A recurrent search of 6 steps, stopped, with a Derive now row: (run_dir)."""
    from engine.runtime.threads import apply_threads
    from engine.search.rnn_loop import run_rnn_search

    apply_threads(1)
    run_dir = tmp_path_factory.mktemp("rnn") / "runs" / "20260101T000000Z-rnn"
    run_dir.mkdir(parents=True)
    control = Control()

    class Derive(Callback):
        def on_step_end(self, event) -> None:
            if event.step == 3:
                control.derive_now()

    assert run_rnn_search(from_rnn_preset("rnn-smoke"), run_dir, control=control,
                          callbacks=[Derive(), _StopAt(control, 6)]) == "stopped"
    return run_dir


def test_a_run_directory_says_its_search_space(rnn_run):
    record = rundir.read_config(rnn_run)
    assert record["kind"] == "rnn_search" and rundir.space_name(record) == "rnn"
    assert rundir.run_space(rnn_run).name == "rnn"
    assert rundir.space_name({"kind": "search"}) == rundir.space_name({"kind": "train"}) == "cnn"
    assert rundir.space_name("not a record") == "cnn"
    assert run_info(rnn_run).space == "rnn"


def test_recurrent_alphas_lines_are_read_and_damaged_ones_skipped(rnn_run, tmp_path):
    rows = rundir.read_alphas(rnn_run)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert all(np.asarray(r["recurrent"]).shape == (EDGES, OPS) for r in rows)
    broken = tmp_path / "broken"
    broken.mkdir()
    good = {"step": 1, "epoch": 0, "recurrent": rows[0]["recurrent"]}
    lines = [good, {"step": 2, "recurrent": "not a matrix"}, {"step": 3, "normal": rows[0]["recurrent"]},
             {"epoch": 0, "recurrent": rows[0]["recurrent"]}]
    (broken / rundir.ALPHAS).write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert [r["step"] for r in rundir.read_alphas(broken)] == [1]


def test_space_of_kinds_and_of_genotype():
    assert space_of_kinds({"normal": 0, "reduce": 0, "normal_beta": 0}).name == "cnn"
    assert space_of_kinds({"recurrent": 0, "step": 1}).name == "rnn"
    assert space_of_kinds({"normal": 0}) is None
    assert space_of_genotype(KNOWN_GENOTYPES["DARTS_RNN"]).name == "rnn"
    from engine.space.cnn.genotype import KNOWN_GENOTYPES as CNN_KNOWN

    assert space_of_genotype(CNN_KNOWN["DARTS_V2"]).name == "cnn"
    with pytest.raises(TypeError, match="not a genotype"):
        space_of_genotype("DARTS_V2")


def test_follow_mode_rebuilds_the_recurrent_picture(rnn_run):
    snap = snapshot_from_dir(rnn_run)
    assert snap.space == "rnn" and snap.state == "stopped" and snap.step == 6
    last = np.asarray(rundir.read_alphas(rnn_run)[-1]["recurrent"], dtype=np.float64)
    assert np.allclose(snap.weights["recurrent"], _softmax(last), atol=1e-12)
    assert isinstance(snap.genotype, Genotype)
    assert snap.genotype == get_space("rnn").derive(snap.weights)  # the rows' last genotype is the alphas' cell
    assert isinstance(snap.epoch_genotype, Genotype)


def test_exports_of_a_recurrent_run(rnn_run):
    csv_text = export.alphas_csv(rundir.read_alphas(rnn_run), rundir.read_config(rnn_run)["config"])
    lines = csv_text.strip().splitlines()
    assert len(lines) == 1 + 6 * EDGES * OPS
    first = lines[1].split(",")
    assert first[2:7] == ["recurrent", "0", "0", "1", "none"]  # edge 0: state 0 (s_0) into node 1
    for fmt in ("json", "darts", "dot"):
        path = export.write_export(rnn_run, fmt)
        assert path.parent == rnn_run / "exports"
    genotype = rundir.latest_genotype(rnn_run)
    assert Genotype.parse((rnn_run / "exports" / "genotype.json").read_text()) == genotype
    assert (rnn_run / "exports" / "genotype.txt").read_text().startswith("Genotype(recurrent=[")
    dot = (rnn_run / "exports" / "genotype.dot").read_text()
    assert '"h_t"' in dot and dot.count("label=") == len(genotype.recurrent)


def test_genotype_tables_of_a_recurrent_cell():
    a, b = KNOWN_GENOTYPES["DARTS_RNN"], KNOWN_GENOTYPES["DARTS_RNN_V1"]
    frame = tables.genotype_frame(a)
    assert list(frame["node"]) == list(range(1, 9)) and set(frame["cell"]) == {"recurrent"}
    assert frame.iloc[0]["input"] == "s_0"
    changes = tables.genotype_changes(a, b)
    differing = sum(x != y for x, y in zip(a.recurrent, b.recurrent, strict=True))
    assert len(changes) == differing > 0
    assert tables.genotype_changes(a, a) == []


def test_a_recurrent_run_resumes_through_the_registry(rnn_run, tmp_path):
    assert isinstance(resume_config(rnn_run), RNNSearchConfig)
    assert resume_config(rnn_run, {"epochs": 3}).epochs == 3
    import shutil

    copy = tmp_path / "runs" / rnn_run.name
    shutil.copytree(rnn_run, copy)
    reg = Registry(tmp_path / "runs")
    job = reg.start(resume=copy)
    try:
        _wait_steps(job, 8)
    finally:
        job.stop()
        job.join(30)
    assert job.snapshot().space == "rnn"
    assert [r["step"] for r in rundir.read_metrics(copy)][:8] == list(range(1, 9))


def test_start_a_recurrent_preset_from_the_sidebar(app_runs):
    at = AppTest.from_function(_search_page, default_timeout=60).run()
    at.selectbox(key="setup.preset").set_value("rnn-smoke").run()
    assert not at.exception
    bptt = at.sidebar.number_input(key="setup.rnn-smoke.bptt")
    assert bptt.value == 8
    bptt.set_value(0).run()
    assert [e.value for e in at.sidebar.error] == ["BPTT (words): 0 is not valid: an integer from 1 to 4096"]
    start = next(b for b in at.sidebar.button if b.label == "Start search")
    assert start.disabled
    at.sidebar.number_input(key="setup.rnn-smoke.nhid").set_value(2.5).run()
    assert "Hidden size: 2.5 is not valid: a whole number (no fraction, no letters)" in [
        e.value for e in at.sidebar.error]
    at.sidebar.number_input(key="setup.rnn-smoke.nhid").set_value(8).run()
    at.sidebar.number_input(key="setup.rnn-smoke.bptt").set_value(6).run()
    start = next(b for b in at.sidebar.button if b.label == "Start search")
    assert not start.disabled and not at.sidebar.error
    start.click().run()
    assert not at.exception
    job = state.registry().current()
    assert isinstance(job.config, RNNSearchConfig) and job.config.bptt == 6 and job.config.emsize == 8
    _wait_steps(job, 2)
    first = job.snapshot().weights["recurrent"].copy()
    at.run()
    assert not at.exception
    # the live heatmap: 36 edges x 5 ops, labelled as the recurrent cell's edges, one chart
    spec, data = _chart(at, "live.heatmap.recurrent")
    assert _title(spec) == "Recurrent cell"
    assert len(data) == EDGES * OPS
    assert data["edge"].iloc[0] == "0 -> 1" and data["edge"].iloc[-1] == "7 -> 8"  # the genotype's numbers
    assert list(data["op"][:OPS]) == list(get_space("rnn").primitives)
    shown = data["weight"].to_numpy().reshape(EDGES, OPS)
    assert np.allclose(shown.sum(axis=1), 1.0)
    # the weights of a step the run recorded (the page drew the snapshot of that moment)
    recorded = [_softmax(np.asarray(r["recurrent"])) for r in rundir.read_alphas(job.run_dir)]
    assert any(np.allclose(shown, w, atol=1e-6) for w in recorded)
    # the recurrent cell as a graph, and perplexity curves beside the loss
    graphs = at.get("graphviz_chart")
    assert len(graphs) == 1 and '"h_t"' in graphs[0].proto.spec
    assert any("Perplexity" in json.dumps(json.loads(c.proto.spec)) for c in at.get("vega_lite_chart"))
    _wait_steps(job, job.snapshot().step + 2)
    assert not np.allclose(job.snapshot().weights["recurrent"], first)  # the alphas move step by step
    # Derive now: the recurrent cell of this moment, drawn as one graph
    next(b for b in at.button if b.label.startswith("Derive")).click().run()
    assert not at.exception
    derived = [m.value for m in at.markdown if m.value.startswith("**Derived now, at step")]
    assert len(derived) == 1
    assert any(c.value.startswith("Genotype(recurrent=[") for c in at.code)
    at.run()  # the click reran the buttons' and the derived panel's fragments only: draw the whole page
    assert sum('"h_t"' in g.proto.spec for g in at.get("graphviz_chart")) == 2  # the live cell and the derived one
    job.stop()
    assert job.join(30)
    assert any(r.get("kind") == "derive" for r in rundir.read_genotypes(job.run_dir))


def test_runs_page_and_replay_of_a_recurrent_run(rnn_run, monkeypatch, page):
    monkeypatch.setenv("DARTBOARD_RUNS", str(rnn_run.parent))
    from tests.conftest import reset_streamlit_caches

    reset_streamlit_caches()
    at = page("runs").run()
    at = at.selectbox(key="runs.selected").set_value(rnn_run.name).run()
    assert not at.exception
    assert any(m.value == "**Recurrent cell**" for m in at.markdown)
    assert any(c.value.startswith("Genotype(recurrent=[") for c in at.code)
    specs = [json.dumps(json.loads(c.proto.spec)) for c in at.get("vega_lite_chart")]
    assert any("Perplexity" in s for s in specs) and not any('"Accuracy"' in s for s in specs)
    assert "Recurrent searches are not compared side by side: pick one above to read it." in [
        c.value for c in at.caption]
    from app.screens import stage

    staged = [r.run_id for r in stage.runs_for_stage(rnn_run.parent)]
    assert staged and rnn_run.name not in staged  # the stage's layout is the convolutional cell's
    at = page("replay").run()
    at = at.selectbox(key="replay.selected").set_value(rnn_run.name).run()
    assert not at.exception
    assert any(m.value == "**Recurrent cell**" for m in at.markdown)
    assert not [t for t in at.toggle if t.label == "Show every candidate edge"]
    # Learn: sections 1-6 read convolutional runs only; section 7 draws the paper's recurrent cell and this run's
    at = page("learn").run()
    assert not at.exception
    assert rnn_run.name not in at.selectbox(key="learn.run").options
    assert at.header[-1].value == "7. The second search space: a recurrent cell"
    graphs = [g.proto.spec for g in at.get("graphviz_chart") if '"h_t"' in g.proto.spec]
    assert len(graphs) == 2  # DARTS_RNN and this run's derived cell
    assert get_space("rnn").dot(KNOWN_GENOTYPES["DARTS_RNN"]) in graphs
    assert any(m.value.startswith(f"**{rnn_run.name}**, step 6") for m in at.markdown)
    reset_streamlit_caches()


def test_learn_opens_on_the_shipped_recurrent_recording_before_any_search(app_runs, page):
    from engine.runs import examples

    shipped = examples.example("rnn-demo")
    assert shipped is not None and shipped.space == "rnn" and shipped.state == "finished"
    at = page("learn").run()
    assert not at.exception
    assert at.header[-1].value == "7. The second search space: a recurrent cell"
    last = rundir.read_alphas(shipped.path)[-1]["step"]
    assert any(m.value.startswith(f"**{shipped.run_id}**, step {last}") for m in at.markdown)
    assert shipped.run_id not in at.selectbox(key="learn.run").options  # sections 1-6 read convolutional runs


def test_a_recurrent_training_runs_and_resumes_under_the_registry(tmp_path):
    """The dashboard's jobs run a recurrent training too: the Runs page's Resume of one goes through here."""
    from engine.runs.catalog import list_runs
    from engine.space.rnn.train_config import RNNTrainConfig, from_rnn_train_preset

    config = from_rnn_train_preset("rnn-train-smoke", {"epochs": 3})
    reg = Registry(tmp_path)
    job = reg.start(config, genotype=KNOWN_GENOTYPES["DARTS_RNN"], source={"label": "DARTS_RNN"})
    assert job.kind == "train"
    _wait_steps(job, 3)
    job.stop()
    assert job.join(60)
    stopped = job.snapshot().step
    assert job.snapshot().state == "stopped" and stopped >= 3
    info = list_runs(tmp_path)[0]
    assert (info.kind, info.space) == ("train", "rnn")
    again = reg.start(resume=job.run_dir)
    assert isinstance(again.config, RNNTrainConfig) and again.genotype == KNOWN_GENOTYPES["DARTS_RNN"]
    assert again.join(120)
    assert again.snapshot().state == "finished"
    steps = [m["step"] for m in rundir.read_metrics(job.run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == again.snapshot().step > stopped
    done = list_runs(tmp_path)[0]
    assert done.test_ppl is not None and done.test_ppl > 1

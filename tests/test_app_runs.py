"""The Runs page on real run directories made by the engine: a training's link to its search and a search's
trainings, failed and unreadable runs with their reason, trainings compared, searches side by side.

The runs are made once for the module (two `smoke` searches, one that fails mid-run, an unreadable folder,
three `train-smoke` trainings); each test opens the page on them with a fresh registry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app import state
from app.figures import replay
from app.screens import runs_compare, runs_lineage
from engine.core.atomic import write_bytes_atomic
from engine.runs import catalog, rundir
from engine.search import architect
from engine.search.loop import run_search
from engine.space.cnn.genotype import KNOWN_GENOTYPES
from engine.train.compare import _costs
from engine.train.config import TrainConfig
from engine.train.loop import run_training
from engine.train.source import resolve_genotype
from tests.test_app import _button, _chart

SEARCH_A, SEARCH_B, FAILED = "20260101T000001Z-search-a", "20260101T000002Z-search-b", "20260101T000003Z-failed"
UNREADABLE = "20260101T000004Z-damaged"
TRAIN_2, TRAIN_4, TRAIN_V2 = "20260101T000005Z-train-a2", "20260101T000006Z-train-a4", "20260101T000007Z-train-v2"


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory, smoke, train_smoke):
    root = tmp_path_factory.mktemp("runs")
    assert run_search(smoke.replace(epochs=2), _mk(root, SEARCH_A)) == "finished"
    assert run_search(smoke.replace(epochs=1, seed=1), _mk(root, SEARCH_B)) == "finished"
    # the Hessian's top eigenvalue, as the engine writes it with `hessian_every` (about 30 s an eigenvalue on a
    # loaded CPU, so written here), on run B only; and a fired early stop's step number, which is no curve
    rows = rundir.read_metrics(root / SEARCH_B)
    rows = [{**r, "hessian_eig": 0.5 + r["step"]} for r in rows]
    rows[-1]["early_stop_step"] = 1
    text = "".join(json.dumps(r) + "\n" for r in rows)
    write_bytes_atomic(root / SEARCH_B / rundir.METRICS, text.encode())

    calls = {"n": 0}
    real = architect.Architect.step

    def broken(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom in the arch step\nsecond line of the error")
        return real(self, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(architect.Architect, "step", broken)
        assert run_search(smoke.replace(epochs=1), _mk(root, FAILED)) == "failed"

    _mk(root, UNREADABLE).joinpath(rundir.CONFIG).write_text("{ this is not json")

    cfg = train_smoke
    for name, spec in ((TRAIN_2, f"{root / SEARCH_A}@2"), (TRAIN_4, f"{root / SEARCH_A}@4"), (TRAIN_V2, "DARTS_V2")):
        genotype, source = resolve_genotype(spec)
        assert run_training(cfg, genotype, _mk(root, name), source=source) == "finished"
    return root


def _mk(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    return path


@pytest.fixture
def page_runs(made_runs, monkeypatch):
    monkeypatch.setenv("DARTBOARD_RUNS", str(made_runs))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield made_runs
    state.registry().shutdown(timeout=30)
    st.cache_resource.clear()
    st.cache_data.clear()


def _plotly(at: AppTest, key: str) -> dict:
    """The plotly figure (as JSON) of the chart whose key is `key`."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}") or f"-{key}-" in c.proto.id]
    assert len(found) == 1, f"{len(found)} plotly charts with key {key!r}"
    return json.loads(found[0].proto.spec)


def _frame(at: AppTest, first_column: str, name: str) -> pd.DataFrame:
    """The dataframe on the page whose first column is `first_column` and that has a column `name`."""
    frames = [d.value for d in at.dataframe if d.value.columns[0] == first_column and name in d.value.columns]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return frames[0]


def _select(at: AppTest, run_id: str) -> AppTest:
    return at.selectbox(key="runs.selected").set_value(run_id).run()


def test_one_line_keeps_the_first_line_and_cuts_long_ones():
    assert runs_lineage.one_line("\n  RuntimeError: boom\n  File x, line 3\n") == "RuntimeError: boom"
    assert runs_lineage.one_line("x" * 500, limit=20) == "x" * 19 + "…"
    assert runs_lineage.one_line(None) == ""


def test_a_training_links_to_its_search_and_the_search_lists_its_trainings(page_runs, page):
    at = _select(page("runs").run(), TRAIN_4)
    assert not at.exception
    assert any(f"Trained from search **{SEARCH_A}** @ step 4" in m.value for m in at.markdown)
    _button(at, f"Show search {SEARCH_A}").click().run()
    assert at.selectbox(key="runs.selected").value == SEARCH_A
    assert at.subheader[0].value == SEARCH_A
    made = _frame(at, "training", "step")
    assert sorted(zip(made["training"], made["step"], strict=True)) == [(TRAIN_2, 2), (TRAIN_4, 4)]
    assert not _button(at, "Replay").disabled and not _button(at, "Open in Search").disabled
    _button(at, f"Show {TRAIN_2}").click().run()
    assert at.selectbox(key="runs.selected").value == TRAIN_2
    assert any(f"Trained from search **{SEARCH_A}** @ step 2" in m.value for m in at.markdown)
    # a training has no alphas to replay or watch on the Search page; it resumes (when it can) on the Train page
    assert all(_button(at, label).disabled for label in ("Replay", "Open in Search"))
    assert any("continues it on the Train page" in c.value for c in at.caption)
    # a training of a published cell names it, and links nowhere
    at = _select(at, TRAIN_V2)
    assert any("Trained genotype: **DARTS_V2**" in m.value for m in at.markdown)
    assert not [b for b in at.button if b.label.startswith("Show search")]
    # a search that no training came from lists none
    at = _select(at, SEARCH_B)
    assert not [d for d in at.dataframe if d.value.columns[0] == "training"]


def test_failed_and_unreadable_runs_are_listed_with_their_one_line_reason(page_runs, page):
    at = page("runs").run()
    assert not at.exception
    table = _frame(at, "run", "reason").set_index("run")
    assert {SEARCH_A, SEARCH_B, FAILED, UNREADABLE, TRAIN_2, TRAIN_4, TRAIN_V2} <= set(table.index)
    assert table.loc[FAILED, "state"] == "failed"
    assert table.loc[FAILED, "reason"] == "RuntimeError: boom in the arch step"
    assert table.loc[UNREADABLE, "state"] == "unreadable" and "config.json" in table.loc[UNREADABLE, "reason"]
    assert table.loc[SEARCH_A, "reason"] == "" and table.loc[TRAIN_2, "kind"] == "train"
    tested = [m["test_acc"] for m in rundir.read_metrics(page_runs / TRAIN_2) if "test_acc" in m]
    assert table.loc[TRAIN_2, "test acc"] == tested[-1] and pd.isna(table.loc[SEARCH_A, "test acc"])
    at = _select(at, UNREADABLE)
    assert not at.exception and any("This run cannot be read" in e.value for e in at.error)
    assert "Open in Search" not in [b.label for b in at.button]   # nothing to open, resume or replay
    at = _select(at, FAILED)
    assert any("boom in the arch step" in e.value for e in at.error)


def test_a_run_that_failed_before_it_began_is_listed_too(page_runs, tmp_path, smoke, page):
    job = state.registry().start(smoke.replace(dataset="imagefolder", data_root=str(tmp_path / "none"),
                                                              image_size=8))
    assert job.join(30) and job.snapshot().state == "failed"
    assert not Path(job.run_dir).exists()   # the engine keeps no empty run directory
    at = page("runs").run()
    shown = [e.value for e in at.error if e.value.startswith(f"{job.run_id}: ")]
    assert shown == [f"{job.run_id}: {runs_lineage.one_line(job.snapshot().error)}"] and "none" in shown[0]


def test_trainings_compared_show_the_engines_numbers_and_their_test_curves(page_runs, page):
    at = page("runs").run()
    picker = at.multiselect(key="runs.compare_trainings")
    assert set(picker.options) == {TRAIN_2, TRAIN_4, TRAIN_V2}
    at = picker.set_value([TRAIN_V2, TRAIN_2]).run()
    assert not at.exception
    table = _frame(at, "run", "mult-adds").set_index("run")
    assert list(table.index) == [TRAIN_V2, TRAIN_2]
    assert table.loc[TRAIN_V2, "genotype"] == "DARTS_V2" and table.loc[TRAIN_2, "genotype"] == f"{SEARCH_A}@2"
    curves = _plotly(at, "runs.train_curves")["data"]
    colours = set()
    for run_id in (TRAIN_V2, TRAIN_2):
        rec = rundir.read_config(page_runs / run_id)
        tested = [m for m in rundir.read_metrics(page_runs / run_id) if "test_acc" in m]
        params, madds = _costs(KNOWN_GENOTYPES["DARTS_V2"] if run_id == TRAIN_V2 else
                               resolve_genotype(f"{page_runs / SEARCH_A}@2")[0], TrainConfig(**rec["config"]), rec)
        assert table.loc[run_id, "test acc"] == tested[-1]["test_acc"]
        assert (table.loc[run_id, "parameters"], table.loc[run_id, "mult-adds"]) == (params, madds)
        acc, loss = (t for t in curves if t["name"] == run_id)
        assert acc["y"] == [m["test_acc"] for m in tested] and loss["y"] == [m["test_loss"] for m in tested]
        assert acc["x"] == [m["epoch"] + 1 for m in tested] == [1, 2]
        assert acc["line"]["color"] == loss["line"]["color"]
        colours.add(acc["line"]["color"])
    assert len(colours) == 2
    assert {t["line"]["dash"] for t in curves} == {"solid", "dash"}   # equal scores do not hide a run


def test_searches_side_by_side(page_runs, page):
    at = page("runs").run()
    picker = at.multiselect(key="runs.compare_searches")
    assert set(picker.options) == {SEARCH_A, SEARCH_B, FAILED}   # unreadable runs and trainings are not searches
    assert picker.value == [SEARCH_B, SEARCH_A]                  # the newest two with a genotype
    at = picker.set_value([SEARCH_A, SEARCH_B]).run()
    assert not at.exception
    infos = {r.run_id: r for r in catalog.list_runs(page_runs)}
    table = _frame(at, "run", "skip_connect (normal)").set_index("run")
    for run_id in (SEARCH_A, SEARCH_B):
        genotype = infos[run_id].genotype
        assert table.loc[run_id, "skip_connect (normal)"] == [op for op, _ in genotype.normal].count("skip_connect")
        assert table.loc[run_id, "skip_connect (reduce)"] == [op for op, _ in genotype.reduce].count("skip_connect")
        assert any(c.value == genotype.to_darts() for c in at.code)
    for cell in ("normal", "reduce"):
        at = at.radio(key="runs.sxs.cell").set_value(cell).run()
        for i, run_id in enumerate((SEARCH_A, SEARCH_B)):
            last = rundir.read_alphas(page_runs / run_id)[-1]
            spec, data = _chart(at, f"runs.sxs.{i}.heatmap.{cell}")
            assert spec["title"] == f"step {last['step']}"
            expected = replay.record_weights(last)[cell]
            assert np.allclose(data["weight"].to_numpy().reshape(expected.shape), expected)
    valid = _plotly(at, "runs.sxs.valid_acc")["data"]
    for run_id in (SEARCH_A, SEARCH_B):
        rows = rundir.read_metrics(page_runs / run_id)
        (trace,) = [t for t in valid if t["name"] == run_id]
        assert (trace["x"], trace["y"]) == ([r["step"] for r in rows], [r["valid_acc"] for r in rows])
    assert len({t["line"]["color"] for t in valid}) == 2
    eig = _plotly(at, "runs.sxs.extra.hessian_eig")["data"]   # only run B's rows carry it
    assert [t["name"] for t in eig if t["y"]] == [SEARCH_B]
    assert eig[1]["y"] == [0.5 + r["step"] for r in rundir.read_metrics(page_runs / SEARCH_B)]
    extras = runs_compare.extra_metric_keys({r: rundir.read_metrics(page_runs / r) for r in (SEARCH_A, SEARCH_B)})
    shown = sorted(c.proto.id.split("runs.sxs.extra.")[1].split("-")[0] for c in at.get("plotly_chart")
                   if "runs.sxs.extra." in c.proto.id)
    assert "hessian_eig" in extras and shown == sorted(extras)   # every extra key the engine writes, too
    assert not {"early_stop_step", "steps_per_s", "wall_s"} & set(shown)
    # with no run that carries it, no chart for it
    at = at.multiselect(key="runs.compare_searches").set_value([SEARCH_A, FAILED]).run()
    assert not at.exception and not [c for c in at.get("plotly_chart") if "extra.hessian_eig" in c.proto.id]
    (one,) = [t for t in _plotly(at, "runs.sxs.valid_acc")["data"] if t["name"] == FAILED]
    assert len(one["x"]) == 1 and "markers" in one["mode"]   # a one-point run is drawn, not an invisible line
    # the table says how many steps each run took, and that its accuracy is the supernet's, not the cell's
    infos = {r.run_id: r for r in catalog.list_runs(page_runs)}
    note = " ".join(c.value for c in at.caption)
    assert infos[SEARCH_A].step != infos[FAILED].step
    assert f"{SEARCH_A}: {infos[SEARCH_A].step}" in note and f"{FAILED}: {infos[FAILED].step}" in note
    assert "supernet" in note and "not the accuracy of the cell" in note


def test_extra_metric_keys_are_the_numeric_ones_beyond_the_base():
    rows = {"a": [{"step": 1, "valid_acc": 0.5, "hessian_eig": 2.0, "note": "x"}],
            "b": [{"step": 1, "expected_params": 3, "flag": True}]}
    assert runs_compare.extra_metric_keys(rows) == ["hessian_eig", "expected_params"]


def test_an_unreadable_run_can_be_deleted_after_confirming(runs_dir, page):
    st.cache_resource.clear()
    st.cache_data.clear()
    damaged = _mk(runs_dir, UNREADABLE)
    damaged.joinpath(rundir.CONFIG).write_text('{"config": 3}')
    at = page("runs").run()
    assert any("This run cannot be read" in e.value and "damaged" in e.value for e in at.error)
    _button(at, "Delete run").click().run()
    _button(at, "Cancel").click().run()
    assert damaged.exists()
    _button(at, "Delete run").click().run()
    _button(at, "Yes, delete it").click().run()
    assert not at.exception and not damaged.exists()
    assert any(f"Deleted {UNREADABLE}" in s.value for s in at.success)
    st.cache_resource.clear()


def test_the_link_survives_a_moved_runs_directory(made_runs, tmp_path, monkeypatch, page):
    moved = tmp_path / "moved"
    for name in (SEARCH_A, TRAIN_4):
        shutil.copytree(made_runs / name, moved / name)
    monkeypatch.setenv("DARTBOARD_RUNS", str(moved))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = _select(page("runs").run(), TRAIN_4)
    assert not at.exception
    _button(at, f"Show search {SEARCH_A}").click().run()
    assert at.selectbox(key="runs.selected").value == SEARCH_A
    shutil.rmtree(moved / SEARCH_A)   # gone: the training says where it came from, with nothing to click
    at = _select(page("runs").run(), TRAIN_4)
    assert any(f"Trained from search **{SEARCH_A}** @ step 4" in m.value for m in at.markdown)
    assert any("not in this runs directory" in c.value for c in at.caption)
    assert not [b for b in at.button if b.label.startswith("Show search")]
    st.cache_resource.clear()


def test_trainings_compared_show_their_zero_cost_proxies_on_request(page_runs, page):
    from engine.derive import proxies

    at = page("runs").run()
    at = at.multiselect(key="runs.compare_trainings").set_value([TRAIN_V2, TRAIN_2, TRAIN_4]).run()
    assert not [d for d in at.dataframe if "synflow" in d.value.columns]  # off until asked: they take seconds
    at = at.toggle(key="runs.train_proxies").set_value(True).run()
    assert not at.exception
    table = _frame(at, "run", "synflow").set_index("run")
    assert list(table.index) == [TRAIN_V2, TRAIN_2, TRAIN_4]
    rec = rundir.read_config(page_runs / TRAIN_V2)
    want = proxies.score_genotype(KNOWN_GENOTYPES["DARTS_V2"], config=TrainConfig(**rec["config"]))
    assert (table.loc[TRAIN_V2, "synflow"], table.loc[TRAIN_V2, "NASWOT"], table.loc[TRAIN_V2, "grad-norm"]) == (
        want["synflow"], want["naswot"], want["grad_norm"])
    assert any(c.value.startswith("Proxies of freshly initialised networks on one batch: not accuracy. Rank "
                                  "correlation with test accuracy over these 3 cells: synflow ") for c in at.caption)

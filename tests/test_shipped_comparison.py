"""The comparison shipped with the app (assets/compare/): recorded by scripts/record_comparison.py, shown by the Train
page at once, with no training on this machine."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.runs import examples, rundir

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("record_comparison", ROOT / "scripts" / "record_comparison.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recording_keeps_what_the_page_reads_and_the_table(tmp_path):
    out = tmp_path / "cmp"
    record = _script().record("train-smoke", 1, out)
    assert [r["name"] for r in record["rows"]] == ["found", "DARTS_V2", "random:0"]
    for row in record["rows"]:
        run = out / row["run_id"]
        assert sorted(p.name for p in run.iterdir()) == sorted(
            [rundir.CONFIG, rundir.METRICS, rundir.GENOTYPES, rundir.STATUS])   # no checkpoint, no events
        status = rundir.read_status(run)
        assert status["state"] == "finished" and not {"pid", "host"} & set(status)
        tested = [m for m in rundir.read_metrics(run) if "test_acc" in m]
        assert row["test_acc"] == tested[-1]["test_acc"] and row["parameters"] > 0
    shipped = examples.shipped_comparison(root=tmp_path, name="cmp")
    assert [r["run_dir"] for r in shipped["rows"]] == [str(out / r["run_id"]) for r in record["rows"]]

    # a row naming a folder outside the comparison, or one that is not there, is left out; a broken file is none
    text = json.loads((out / examples.COMPARISON_FILE).read_text())
    text["rows"] += [{**text["rows"][0], "run_id": "../cmp"}, {**text["rows"][0], "run_id": "gone"}]
    (out / examples.COMPARISON_FILE).write_text(json.dumps(text))
    assert len(examples.shipped_comparison(root=tmp_path, name="cmp")["rows"]) == 3
    (out / examples.COMPARISON_FILE).write_text("[" * 100_000)
    assert examples.shipped_comparison(root=tmp_path, name="cmp") is None


def test_the_train_page_shows_the_shipped_comparison_at_once(app_runs, page):
    from app.screens.train import SHIPPED_LABEL

    shipped = examples.shipped_comparison()
    assert shipped is not None, "assets/compare/ must ship a comparison (scripts/record_comparison.py)"
    assert {r["name"] for r in shipped["rows"]} >= {"found", "DARTS_V2"}
    at = page("train", timeout=120).run()
    assert not at.exception
    [button] = [b for b in at.button if b.label == SHIPPED_LABEL and b.key == "train.compare.shipped_open"]
    at = button.click().run()
    assert not at.exception, at.exception
    [table] = [d.value for d in at.dataframe if "test acc" in d.value.columns]
    assert table["cell"].tolist() == [r["name"] for r in shipped["rows"]]
    assert table["test acc"].tolist() == pytest.approx([r["test_acc"] for r in shipped["rows"]])
    # the test-accuracy curves come from the shipped trainings' own metrics; nothing was trained here
    assert any("test accuracy of each compared cell" in c.proto.alt for c in at.get("vega_lite_chart"))
    assert not list(app_runs.iterdir())


def test_the_stage_shows_the_shipped_comparison_in_its_own_type(app_runs, page):
    """/stage?view=compare: the table and the curves of the shipped comparison; Compare cells and Back to the run
    switch between it and the run on stage."""
    shipped = examples.shipped_comparison()
    at = page("stage", timeout=120)
    at.query_params["view"] = "compare"
    at = at.run()
    assert not at.exception, at.exception
    [table] = [h.proto.body for h in at.get("html") if "<table class='stage-compare'" in h.proto.body]
    for row in shipped["rows"]:
        assert f"<td>{row['name']}</td>" in table and f"{row['test_acc']:.4f}" in table
    best = max(r["test_acc"] for r in shipped["rows"])
    assert f"<b>{best:.4f}</b>" in table
    assert [c.proto.alt for c in at.get("vega_lite_chart")] == ["Line chart: Test accuracy while training"]
    at = next(b for b in at.button if b.key == "stage.compare.back").click().run()
    assert not at.exception and "view" not in at.query_params
    assert not any("<table class='stage-compare'" in h.proto.body for h in at.get("html"))
    assert any(b.key == "stage.compare.open" for b in at.button)

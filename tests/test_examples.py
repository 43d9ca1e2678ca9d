"""The recorded runs shipped in assets/runs/: readable like any run, complete, and read-only."""

from __future__ import annotations

import numpy as np
import pytest

from engine import variants
from engine.runs import examples, rundir
from engine.runs.follow import snapshot_from_dir
from engine.space.cnn.genotype import Genotype


@pytest.fixture(scope="module")
def demo():
    runs = [r for r in examples.example_runs() if r.run_id.endswith("example-demo")]
    assert runs, "assets/runs/ must ship the demo recording (scripts/record_example.py)"
    return runs[0]


def test_the_demo_recording_is_a_whole_finished_run(demo):
    assert demo.state == "finished" and demo.step == demo.total_steps == 250 and demo.epochs == 10
    assert demo.config["dataset"] == "embedded" and demo.valid_acc is not None and demo.valid_acc > 0.7
    alphas, metrics = rundir.read_alphas(demo.path), rundir.read_metrics(demo.path)
    assert [r["step"] for r in alphas] == [m["step"] for m in metrics] == list(range(1, 251))
    genotypes = rundir.read_genotypes(demo.path)
    assert genotypes[-1]["kind"] == "final"
    assert demo.genotype == Genotype.from_dict(genotypes[-1]["genotype"])
    # the final genotype is the one the run's variant derives from its last alphas
    assert variants.record_genotype(alphas[-1], demo.config["variant"]) == demo.genotype


def test_it_opens_like_a_followed_run_and_moves(demo):
    snap = snapshot_from_dir(demo.path)
    assert snap.state == "finished" and snap.step == 250 and snap.genotype == demo.genotype
    assert np.abs(snap.weights["normal"] - snap.initial_weights["normal"]).max() > 0.1  # the alphas moved


def test_it_is_read_only(demo, runs_dir):
    from engine.runs.catalog import delete_run

    assert examples.is_example(demo.path) and not examples.is_example(runs_dir)
    with pytest.raises(rundir.RunDirError, match="shipped with dartboard"):
        examples.check_writable(demo.path)
    with pytest.raises(rundir.RunDirError):
        delete_run(demo.path, runs_dir)
    assert not (demo.path / rundir.CHECKPOINT).exists()  # nothing to resume from


@pytest.mark.parametrize("page", ["replay", "learn"])
def test_replay_and_learn_open_on_the_recording_before_any_search(runs_dir, page, demo):
    """A fresh machine (an empty runs root): both pages show the shipped demo search, not 'no runs yet'."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def script(name):
        import importlib

        importlib.import_module(f"app.screens.{name}").page()

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_function(script, args=(page,), default_timeout=120).run()
    assert not at.exception
    assert demo.run_id in at.selectbox[0].options and at.selectbox[0].value == demo.run_id
    captions = " ".join(c.value for c in at.caption)
    if page == "replay":  # on the last of the 250 recorded steps
        assert at.slider[0].value == 250 and "shipped with dartboard" in captions and "Record 250 of 250" in captions
    else:
        assert len(at.get("plotly_chart")) >= 2  # the lesson's figures drawn from the recorded weights
    st.cache_resource.clear()


def test_record_example_thins_the_alphas_and_keeps_the_first_and_last_step(tmp_path):
    """scripts/record_example.py --alphas-every 5, on a finished run's lines: what the collapse recordings hold."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "record_example", Path(__file__).resolve().parents[1] / "scripts" / "record_example.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    lines = [json.dumps({"step": s, "epoch": 0}) + "\n" for s in range(1, 13)]
    kept = [json.loads(line)["step"] for line in script.thin_alphas(lines, 5)]
    assert kept == [1, 5, 10, 12]
    assert script.thin_alphas(lines, 1) == lines

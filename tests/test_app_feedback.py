"""The dashboard says what it is doing: Pause and Derive now answer in the same rerun, the sidebar shows the
settings of the run on screen, validation speaks the sidebar's words and reports every bad field before Start,
and the search's CPU threads are a setting (0 = chosen from the machine's load)."""

import json
import threading
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from app import state
from app.figures import cells_dot, tables
from app.panels import setup
from engine.core.config import ConfigError, parse_overrides
from engine.runs import rundir
from engine.runtime.threads import apply_threads, auto_threads
from engine.search.config import PRESETS, SearchConfig, config_errors, from_preset
from engine.search.data import load_search_data
from engine.search.loop import run_search
from engine.search.resume import check_resume
from engine.space.cnn.genotype import KNOWN_GENOTYPES
from tests.test_app import _app, _button, _metric
from tests.waiting import wait_for

TIMEOUT = 60


# ---------------------------------------------------------------- Pause and Derive now answer at once
def _controls_script(state_name: str, run_dir: str):
    """The live panel on a hand-made snapshot; the stand-in job records the requests it gets."""
    import numpy as np
    import streamlit as st

    from app.panels import live
    from engine.runs.snapshot import Snapshot
    from engine.space.cnn.genotype import KNOWN_GENOTYPES

    weights = {cell: np.full((14, 8), 1 / 8) for cell in ("normal", "reduce")}
    snap = Snapshot(run_id="feedback", run_dir=run_dir, state=state_name, epoch=0, epochs=2, step=3, total_steps=8,
                    steps_per_s=1.5, eta_s=4.0, device="cpu", weights=weights, initial_weights=weights,
                    genotype=KNOWN_GENOTYPES["DARTS_V2"], config={"dataset": "fake", "num_classes": 4})

    class Job:  # no run_id attribute: the controls must take the run's id from its snapshot
        def snapshot(self):
            return snap

        def _asked(self, what):
            st.session_state.setdefault("asked", []).append(what)

        def pause(self):
            self._asked("pause")

        def resume(self): ...
        def step_once(self): ...
        def stop(self): ...

        def derive_now(self):
            self._asked("derive")

    live.panel(Job(), snap)


def _controls(state_name: str, run_dir: str = "") -> AppTest:
    return AppTest.from_function(_controls_script, args=(state_name, run_dir), default_timeout=TIMEOUT).run()


def test_pause_shows_pausing_and_turns_the_buttons_in_the_same_rerun_with_no_eta(app_runs):
    at = _controls("running")
    assert _metric(at, "State") == "running" and "ETA" in at.progress[0].text
    _button(at, "Pause").click().run()            # the loop has not answered: the snapshot still says running
    assert at.session_state["asked"] == ["pause"]
    assert _metric(at, "State") == "pausing"
    assert _button(at, "Pause").disabled and _button(at, "Resume").disabled and not _button(at, "Stop").disabled
    assert "ETA" not in at.progress[0].text       # it stops after this step: no time to the end
    paused = _controls("paused")
    assert _metric(paused, "State") == "paused" and "ETA" not in paused.progress[0].text


def test_derive_now_shows_the_derived_cell_and_what_changed_since_the_previous_derivation(app_runs, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    before = KNOWN_GENOTYPES["DARTS_V1"]
    (run_dir / rundir.GENOTYPES).write_text(json.dumps({"step": 2, "epoch": 0, "kind": "derive",
                                                        "genotype": before.to_dict()}) + "\n")
    at = _controls("paused", str(run_dir))
    assert len(at.get("graphviz_chart")) == 2     # the live cells only
    _button(at, "Derive now").click().run()
    assert not at.exception and at.session_state["asked"] == ["derive"]
    now = KNOWN_GENOTYPES["DARTS_V2"]
    assert any("Derived now, at step 3" in m.value for m in at.markdown)
    assert any(c.value == now.to_darts() for c in at.code)
    graphs = [g.proto.spec for g in at.get("graphviz_chart")]
    assert graphs[:2] == [cells_dot.cell_dot(now, "normal"), cells_dot.cell_dot(now, "reduce")]  # the derived cell
    assert any("Changes since the previous derivation** (step 2)" in m.value for m in at.markdown)
    changes = tables.genotype_changes(before, now)
    assert changes and any(c.value == "\n".join(changes) for c in at.code)
    _button(at, "Hide").click().run()
    assert len(at.get("graphviz_chart")) == 2


def test_first_derivation_says_there_is_nothing_to_compare_with(app_runs):
    at = _controls("running")
    _button(at, "Derive now").click().run()
    assert any("Derived now, at step 3" in m.value for m in at.markdown)
    assert any("first derivation of this run" in c.value for c in at.caption)


# ---------------------------------------------------------------- the sidebar shows the run on screen
def test_sidebar_shows_the_settings_of_the_run_on_screen(app_runs, smoke):
    run_dir = app_runs / "second-order"
    run_dir.mkdir()
    config = smoke.replace(epochs=1, order="second", seed=7)
    assert run_search(config, run_dir) == "finished"
    state.registry().follow(run_dir)             # a run of another process, opened from the Runs page
    at = _app().run()
    assert not at.exception
    tables = [t.value for t in at.sidebar.table]
    assert len(tables) == 1
    shown = dict(zip(tables[0]["setting"], tables[0]["value"], strict=True))
    assert shown["Order"] == "second" and shown["Seed"] == "7" and shown["Dataset"] == "fake"
    assert shown["Epochs"] == "1" and shown["Channels (C)"] == "4"
    assert any("Settings of the run on screen" in m.value for m in at.sidebar.markdown)
    assert [h.value for h in at.sidebar.header] == ["New search"]   # the boxes below are for the next search
    assert at.selectbox(key="setup.demo.order").value == "first"


# ---------------------------------------------------------------- validation: labels, every field, before Start
def test_every_bad_field_is_reported_at_once_in_the_sidebars_words(app_runs):
    at = _app().run()
    at.number_input(key="setup.demo.epochs").set_value(0)
    at.number_input(key="setup.demo.init_channels").set_value(3)
    at.number_input(key="setup.demo.w_lr").set_value(0.001).run()   # below the preset's final lr (w_lr_min)
    errors = "\n".join(e.value for e in at.sidebar.error)
    assert "Epochs: 0 is not valid" in errors
    assert "Channels (C): 3 is not valid" in errors
    assert "Final weight lr (preset): 0.005 is not valid: a number in [0, Weight lr=0.001]" in errors
    for name in ("epochs", "init_channels", "w_lr_min", "w_lr", "a_lr", "pc_k"):
        assert f"{name}=" not in errors and f"{name}:" not in errors
    assert _button(at, "Start search").disabled


def test_integer_boxes_refuse_fractions_and_letters_visibly(app_runs):
    at = _app().run()
    at.number_input(key="setup.demo.batch_size").set_value(2.5).run()
    assert any("Batch size: 2.5 is not valid: a whole number" in e.value for e in at.sidebar.error)
    assert _button(at, "Start search").disabled
    values = {f: getattr(PRESETS["demo"], f) for f in setup.FIELDS}
    config, errors = setup.problems("demo", {**values, "epochs": "ten", "seed": 1.5})
    assert config is None and {e.field for e in errors} == {"epochs", "seed"}
    config, errors = setup.problems("demo", {**values, "epochs": 4.0})   # a whole number in a float box is fine
    assert errors == [] and config.epochs == 4 and isinstance(config.epochs, int)


def test_a_batch_the_data_cannot_fill_is_refused_before_start_exactly_where_the_search_would_fail(app_runs, smoke):
    values = {f: getattr(PRESETS["smoke"], f) for f in setup.FIELDS}
    for batch in (16, 17):          # smoke: 32 random images, 4 classes, train share 0.5: 16 in each half
        config, errors = setup.problems("smoke", {**values, "batch_size": batch})
        fits = load_search_data(smoke.replace(batch_size=batch)).steps_per_epoch(batch) > 0
        assert (config is not None) == fits == (batch == 16)
        if not fits:
            assert [e.field for e in errors] == ["batch_size"] and "at most 16" in setup.message(errors[0])
    at = _app().run()
    at.selectbox(key="setup.preset").set_value("smoke").run()
    at.number_input(key="setup.smoke.batch_size").set_value(24).run()
    assert any(e.value.startswith("Batch size: 24 is not valid: at most 16") for e in at.sidebar.error)
    assert _button(at, "Start search").disabled


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_refused_before_start(app_runs):
    at = _app().run()
    at.selectbox(key="setup.demo.device").set_value("cuda").run()
    assert any(e.value.startswith("Device: 'cuda' is not valid: CUDA is not available here") for e in at.sidebar.error)
    assert _button(at, "Start search").disabled


def test_config_errors_collects_every_error_and_validation_still_stops_at_the_first():
    errors = config_errors("demo", {"epochs": 0, "w_lr": -1.0, "seed": -1, "threads": -2})
    assert {"epochs", "w_lr", "seed", "threads"} <= {e.field for e in errors}
    assert config_errors("demo", {"epochs": 3}) == []
    with pytest.raises(ConfigError):
        from_preset("demo", {"epochs": 0, "w_lr": -1.0})
    # a non-PC-DARTS search does not need C to be a multiple of PC-DARTS's K
    assert from_preset("demo", {"init_channels": 6}).init_channels == 6
    assert [e.field for e in config_errors("demo", {"init_channels": 6, "variant": "pc_darts"})] == ["pc_k"]


# ---------------------------------------------------------------- CPU threads
@pytest.mark.parametrize("cpus, load, env, want", [
    (2, 0.1, None, 2),      # a quiet machine: every core
    (2, 5.7, None, 1),      # a busy 2-core machine: one thread
    (2, 1.0, None, 1),      # one core taken: the other
    (16, 2.0, None, 14),    # the idle cores
    (16, 0.3, None, 16),
    (4, 3.6, None, 1),      # never fewer than one
    (2, None, None, 2),     # no load average (Windows): every core
    (2, 5.7, "3", 3),       # OMP_NUM_THREADS says so
])
def test_auto_threads_rule(cpus, load, env, want):
    assert auto_threads(cpus, load, env) == want


def test_threads_is_a_config_field_settable_and_changeable_on_resume(smoke):
    assert parse_overrides(["threads=1"], SearchConfig) == {"threads": 1}
    assert from_preset("demo").threads == 0
    with pytest.raises(ConfigError, match="threads"):
        from_preset("demo", {"threads": -1})
    saved = smoke
    check_resume({"config": saved.to_dict()}, saved.replace(threads=2), "fp", "fp")   # allowed
    with pytest.raises(ConfigError):
        check_resume({"config": saved.to_dict()}, saved.replace(layers=4), "fp", "fp")


def test_apply_threads_reaches_a_thread_started_afterwards():
    seen = []
    try:
        assert apply_threads(2) == 2
        worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        worker.start()
        worker.join()
        assert seen == [2]
    finally:
        torch.set_num_threads(1)


def test_cli_search_applies_threads_before_the_first_step(tmp_path, capsys):
    from engine.__main__ import main

    try:  # a batch the data cannot fill: the search is refused in its setup, after the threads were set
        assert main(["search", "--preset", "smoke", "--set", "batch_size=64", "--set", "threads=2", "--runs-dir",
                     str(tmp_path)]) == 2
        assert torch.get_num_threads() == 2
        err = capsys.readouterr().err
        assert err.startswith("error: batch_size=64") and len(err.strip().splitlines()) == 1  # a refusal: one line
        torch.set_num_threads(1)
        assert main(["search", "--preset", "smoke", "--set", "epochs=1", "--set", "threads=2", "--runs-dir",
                     str(tmp_path)]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert "torch threads: 2\n" in capsys.readouterr().err  # a run that began says it


def test_sidebar_threads_field_is_applied_at_start(app_runs):
    at = _app().run()
    at.selectbox(key="setup.preset").set_value("smoke").run()
    assert any("CPU threads 0 = auto" in c.value for c in at.sidebar.caption)
    at.number_input(key="setup.smoke.epochs").set_value(200)
    at.number_input(key="setup.smoke.threads").set_value(2).run()
    try:
        _button(at, "Start search").click().run()
        job = state.registry().current()
        seen = []                      # what a thread started after Start (as the search thread was) runs with
        worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        worker.start()
        worker.join()
        assert job is not None and job.config.threads == 2 and seen == [2]
        job.stop()
        wait_for(lambda: not job.alive)
        assert Path(job.run_dir).is_dir()
    finally:
        torch.set_num_threads(1)


def test_collapse_and_cost_settings_in_the_sidebar_reach_the_config(app_runs):
    """The collapse indicators and the cost penalty are set in the sidebar (an expander), validated in its words,
    and a select's "none" / a budget of 0 become None in the config; the regularised variants show their options."""
    at = _app().run()
    at.selectbox(key="setup.demo.early_stop").set_value(True).run()
    errors = "\n".join(e.value for e in at.sidebar.error)
    assert "Early stop (RobustDARTS): True is not valid" in errors and "Hessian eigenvalue every (steps)" in errors
    assert _button(at, "Start search").disabled
    at.number_input(key="setup.demo.hessian_every").set_value(5)
    at.selectbox(key="setup.demo.max_skip").set_value(2)
    at.number_input(key="setup.demo.cost_weight").set_value(2.0)
    at.selectbox(key="setup.demo.cost_kind").set_value("madds").run()
    assert not at.sidebar.error and not _button(at, "Start search").disabled
    values = {f: getattr(PRESETS["demo"], f) for f in setup.FIELDS}
    config, errors = setup.problems("demo", {**values, "hessian_every": 5, "early_stop": True, "max_skip": 2,
                                             "cost_weight": 2.0, "cost_kind": "madds", "cost_budget": None})
    assert errors == [] and (config.hessian_every, config.early_stop, config.max_skip) == (5, True, 2)
    assert (config.cost_weight, config.cost_kind, config.cost_budget) == (2.0, "madds", None)
    at.selectbox(key="setup.demo.variant").set_value("beta_darts").run()
    assert at.number_input(key="setup.demo.beta_darts.beta_decay_weight").value == 50.0
    assert at.selectbox(key="setup.demo.beta_darts.beta_base").value == "darts"
    at.selectbox(key="setup.demo.variant").set_value("darts_minus").run()
    assert at.number_input(key="setup.demo.darts_minus.darts_minus_beta").value == 1.0
    at.selectbox(key="setup.demo.variant").set_value("sdarts_rs").run()
    assert at.number_input(key="setup.demo.sdarts_rs.sdarts_epsilon_max").value == 0.3

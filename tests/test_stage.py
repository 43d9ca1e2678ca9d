"""The Stage page and the lecture fixes of issue 26 under AppTest and as pure functions: the stage's figures at
24 px with the recorded weights in them, the stage opening on the shipped recording (or the URL's run), Step
once's "stepping", the training caption in words, the plain-language help of the Search page's terms.

The browser checks (everything inside a 1920x1080 viewport, rendered text heights, the keyboard) are in
tests/e2e/test_stage_browser.py.
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from app.figures import glossary, labels, replay, stage
from app.panels import setup
from engine.runs import examples, rundir
from engine.space.cnn.cell import PRIMITIVES
from tests.conftest import reset_streamlit_caches


@pytest.fixture(scope="module")
def demo():
    info = examples.example(examples.DEFAULT_EXAMPLE)
    assert info is not None, "the shipped demo recording is missing"
    return info


def _blocks(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _blocks(child)


def test_stage_heatmap_is_large_and_holds_the_weights():
    weights = np.random.default_rng(0).dirichlet(np.ones(8), size=14)
    spec, data = stage.heatmap_spec(weights, "Normal cell")
    text = spec["layer"][1]
    assert text["mark"]["fontSize"] >= 24 and spec["encoding"]["y"]["axis"]["labelFontSize"] >= 24
    assert spec["encoding"]["x"]["sort"] == [stage.SHORT_OPS[op] for op in PRIMITIVES]
    assert np.allclose(data["weight"].to_numpy().reshape(14, 8), weights)
    # what each cell writes is its weight to two decimals, without the leading zero
    shown = data["shown"].to_numpy().reshape(14, 8)
    assert all(float("0" + s if s.startswith(".") else s) == pytest.approx(w, abs=0.005)
               for s, w in zip(shown.ravel(), weights.ravel(), strict=True))


def test_stage_cell_graph_draws_the_genotypes_edges_with_short_names(demo):
    record = rundir.read_alphas(demo.path)[-1]
    genotype = replay.record_genotype(record, dict(demo.config))
    dot = stage.cell_dot(genotype, "normal")
    assert "rankdir=LR" in dot and f"fontsize={stage.STAGE['dag_label']}" in dot
    for op, _ in genotype.normal:
        assert f'label="{stage.SHORT_OPS[op]}"' in dot
    assert dot.count('label="') - 7 == len(genotype.normal)   # 7 states, one label per kept edge


def _stage(query: dict | None = None) -> AppTest:
    def script():
        from app.screens import stage as stage_page

        stage_page.page()

    at = AppTest.from_function(script, default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def test_stage_opens_on_the_shipped_recording_and_keeps_the_run_in_the_url(runs_dir, demo, search_run, smoke):
    reset_streamlit_caches()
    at = _stage()
    assert not at.exception, at.exception
    assert at.query_params["run"] == [demo.run_id] or at.query_params["run"] == demo.run_id
    html = " ".join(getattr(h, "proto", h).body for h in at.get("html") if hasattr(getattr(h, "proto", h), "body"))
    assert f"{demo.step}/{demo.step}" in html and "replay" in html
    keyed = {str(getattr(getattr(b, "proto", None), "id", "")) for b in _blocks(at.main)}
    for key in ("stage.heatmap.normal", "stage.heatmap.reduce", "stage.curve.loss", "stage.curve.accuracy"):
        assert any(k.endswith(f"-{key}") for k in keyed), key
    assert len(at.get("graphviz_chart")) == 2
    # the heatmaps hold the recording's last op weights
    records = rundir.read_alphas(demo.path)
    weights = replay.record_weights(records[-1], dict(demo.config))
    tables = [pa.ipc.open_stream(c.proto.data.data).read_all().to_pandas() for c in at.get("vega_lite_chart")]
    heat = [t for t in tables if "weight" in t.columns]
    assert len(heat) == 2
    for table, cell in zip(heat, ("normal", "reduce"), strict=True):
        assert np.allclose(table["weight"].to_numpy().reshape(weights[cell].shape), weights[cell])

    # a search of this machine, named in the URL, is the one shown; an unknown name says so and falls back
    run_dir, final = search_run("mine", smoke)
    assert final == "finished"
    shutil.copytree(run_dir, runs_dir / run_dir.name)
    reset_streamlit_caches()
    mine = _stage({"run": run_dir.name})
    assert not mine.exception
    steps = rundir.read_alphas(run_dir)[-1]["step"]
    html = " ".join(h.proto.body for h in mine.get("html") if hasattr(h.proto, "body"))
    assert f"{steps}/{steps}" in html and run_dir.name in html
    wrong = _stage({"run": "no-such-run"})
    assert not wrong.exception and any("no-such-run" in w.value for w in wrong.warning)
    reset_streamlit_caches()


def test_step_once_shows_stepping_until_its_step_is_counted():
    def script():
        from types import SimpleNamespace

        import streamlit as st

        from app.panels import controls

        st.session_state[controls.STEPPING_KEY] = ("run", 7)
        seen = [controls.shown_state(SimpleNamespace(run_id="run", step=7, state=s)) for s in ("running", "paused")]
        seen.append(controls.shown_state(SimpleNamespace(run_id="run", step=8, state="paused")))
        seen.append(str(st.session_state.get(controls.STEPPING_KEY)))
        st.write("|".join(seen))

    at = AppTest.from_function(script).run()
    assert at.markdown[0].value == "stepping|stepping|paused|None"
    from app.panels import controls

    ok = controls.enabled("stepping")
    assert not ok["pause"] and not ok["resume"] and not ok["step_once"] and ok["stop"]


def test_training_source_is_written_in_words():
    assert labels.source_text({"kind": "search", "run_dir": "/r/20261201T0101Z-abc", "step": 51,
                               "label": "20261201T0101Z-abc@51"}) == "the cell of search 20261201T0101Z-abc at step 51"
    assert labels.source_text({"kind": "known", "name": "DARTS_V2", "label": "DARTS_V2"}) == \
        "the published cell DARTS_V2"
    assert labels.source_text({"kind": "random", "seed": 3, "label": "random:3"}) == "a random cell (seed 3)"
    assert "{" not in labels.source_text({"kind": "file", "path": "/x/g.json", "label": "g.json"})


def test_every_term_of_the_search_page_has_a_plain_help_text():
    issue_terms = ["Hessian eigenvalue", "Early stop (RobustDARTS)", "Cost penalty weight", "Mult-adds",
                   "Entropy (nats)", "K (partial channels)", "Adam betas"]
    assert set(issue_terms) <= set(glossary.TERMS)
    fields = setup._fields()
    for field, term in glossary.FIELD_TERMS.items():
        if field in fields:   # a_betas has no box: it is explained in the page's "Words on this page"
            assert glossary.explain(term) in fields[field][3], field
    assert {"hessian_every", "early_stop", "cost_weight", "pc_k"} <= set(fields)


def test_a_run_label_is_kept_in_its_directory_and_names_it_in_the_pickers(runs_dir, search_run, smoke, demo, page):
    from engine.runs import labels as run_labels

    run_dir, final = search_run("named", smoke)
    assert final == "finished"
    shutil.copytree(run_dir, runs_dir / run_dir.name)
    target = runs_dir / run_dir.name
    reset_streamlit_caches()
    runs = page("runs").run()
    assert not runs.exception
    runs.text_input(key=f"runs.{run_dir.name}.label").input("  lecture   demo ").run()
    assert not runs.exception
    assert run_labels.read_label(target) == "lecture demo"
    assert (target / run_labels.LABEL_FILE).is_file()
    # Replay lists it by its name; the stage's status line names it
    replay_at = page("replay")
    replay_at.query_params["run"] = run_dir.name
    replay_at.run()
    picker = replay_at.selectbox(key="replay.selected")
    assert picker.value == run_dir.name and picker.format_func(run_dir.name) == f"lecture demo · {run_dir.name}"
    on_stage = _stage({"run": run_dir.name})
    assert "lecture demo" in " ".join(h.proto.body for h in on_stage.get("html") if hasattr(h.proto, "body"))
    # bad input gets one clear line; a shipped recording cannot be labelled; empty removes the label
    with pytest.raises(run_labels.LabelError, match="at most"):
        run_labels.write_label(target, "x" * (run_labels.MAX_LABEL + 1))
    with pytest.raises(run_labels.LabelError, match="shipped"):
        run_labels.write_label(demo.path, "mine")
    assert run_labels.write_label(target, "   ") is None and run_labels.read_label(target) is None
    reset_streamlit_caches()


def test_collapse_film_moves_the_three_runs_together(runs_dir, page):
    """Play on the lesson's film advances one timeline: each frame draws every run's normal cell as derived at
    the same step, and the counts chart stops at that step."""
    import re

    from app.panels import collapse_film
    from app.screens import learn

    reset_streamlit_caches()
    runs = learn.lesson_runs()
    assert len(runs) == 3
    at = page("learn")
    at.session_state[learn.LESSON_KEY] = True
    at.run()
    assert not at.exception, at.exception

    def shown(at):
        heads = [m.value for m in at.markdown if re.match(r"^\*\*.+\*\* · step \d+$", m.value)]
        return {h.split("**")[1]: int(h.rsplit(" ", 1)[1]) for h in heads}

    first = shown(at)
    assert set(first) == {r.label for r in runs} and len(set(first.values())) == 1
    [play] = [b for b in at.button if b.key == f"{collapse_film.KEY}.play"]
    play.click().run()
    at.run()   # AppTest does not fire run_every: each run() is one tick of the film
    later = shown(at)
    assert len(set(later.values())) == 1 and next(iter(later.values())) > next(iter(first.values()))
    step = next(iter(later.values()))
    # each run's graph is the cell its own recording derives at that step
    graphs = [g.proto.spec for g in at.get("graphviz_chart")]
    for run in runs:
        _, genotype = collapse_film.frame_at(rundir.read_alphas(run.info.path), run.info.config, step)
        dot = collapse_film.cells_dot.cell_dot(genotype, cell="normal")
        assert dot in graphs, run.label
    spec, data = collapse_film.counts_spec({r.label: r.metrics for r in runs}, step)
    assert data["step"].max() <= step and set(data["run"]) == {r.label for r in runs}
    offsets = [layer["mark"]["yOffset"] for layer in spec["layer"] if layer["mark"]["type"] == "line"]
    assert len(set(offsets)) == 3   # equal counts are drawn apart
    reset_streamlit_caches()


def test_first_screen_replays_the_recording_at_once(app_runs, demo):
    """No search yet: 'Replay a recorded search now' opens Replay on the shipped recording, its run in the URL."""
    from tests.test_app import MAIN

    at = AppTest.from_file(MAIN, default_timeout=120).run()
    assert not at.exception
    [button] = [b for b in at.button if b.label == "Replay a recorded search now"]
    button.click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Replay"]
    assert at.selectbox(key="replay.selected").value == demo.run_id
    assert at.query_params["run"] in (demo.run_id, [demo.run_id])


def test_compare_job_trains_darts_v2_and_random_cells_as_one_job(runs_dir, train_smoke):
    """The comparison behind the Train page's Compare: each entrant an ordinary training of the registry, one
    after the other, its row filled from its own run directory."""
    from engine.jobs.compare_job import CompareJob
    from engine.jobs.controller import Registry
    from engine.train.source import GenotypeSourceError

    reg = Registry(runs_dir)
    job = CompareJob(reg, train_smoke, search=None, random_cells=1).start()
    assert job.join(timeout=240), "the comparison did not end"
    rows = job.rows()
    assert job.state == "finished" and [r["name"] for r in rows] == ["DARTS_V2", "random:0"]
    for row in rows:
        tested = [m for m in rundir.read_metrics(row["run_dir"]) if "test_acc" in m]
        assert row["state"] == "finished" and row["test_acc"] == tested[-1]["test_acc"]
        assert rundir.read_config(row["run_dir"])["source"]["label"] == row["name"]
        assert row["parameters"] > 0 and row["wall_s"] > 0
    with pytest.raises(GenotypeSourceError):
        CompareJob(reg, train_smoke, search="nope-not-a-run", random_cells=0)


def test_train_page_compares_cells_as_one_job_with_its_table(app_runs, page):
    from app.screens import train
    from tests.waiting import wait_for

    at = page("train").run()
    assert not at.exception
    at.selectbox(key="train.preset").set_value("train-smoke").run()
    at.number_input(key="train.compare.random").set_value(1).run()
    assert any("2 trainings one after another" in c.value for c in at.caption)   # said before it starts
    assert "train-demo took 10 to 26 minutes" in train.compare_time_text(3, "train-demo")
    [start] = [b for b in at.button if b.key == "train.compare.start"]
    start.click().run()
    assert not at.exception, at.exception
    job = train._comparisons()[at.session_state["train.compare"]]
    wait_for(lambda: not job.alive, timeout=240)
    at.run()
    assert job.state == "finished", job.error
    frames = [d.value for d in at.dataframe if "cell" in d.value.columns]
    assert frames and frames[0]["cell"].tolist() == ["DARTS_V2", "random:0"]
    assert frames[0]["test acc"].tolist() == [r["test_acc"] for r in job.rows()]
    assert not any("{'kind'" in c.value for c in at.caption)   # the run line is words, not a dict

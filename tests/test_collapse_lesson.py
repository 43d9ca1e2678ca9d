"""The Learn page's one-click collapse lesson: its recordings (the `collapse` preset searched with darts,
darts_minus and beta_darts, shipped in assets/runs/) and what the lesson shows from them."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from app.figures import cells_dot, collapse, labels
from app.screens import learn
from engine import variants
from engine.runs import examples, rundir
from engine.search.collapse import count_ops
from engine.search.config import PRESETS, SearchConfig
from engine.space.cnn.genotype import Genotype

TIMEOUT = 120
VARIANTS = {"collapse-darts": "darts", "collapse-darts-minus": "darts_minus", "collapse-beta-darts": "beta_darts"}
# what a run's config may differ in from the preset's without searching anything else
_RUNTIME = {"threads", "device", "data_root", "download", "checkpoint_every_s"}


def _recording(name):
    info = examples.example(name)
    assert info is not None, f"assets/runs/ must ship the {name} recording (scripts/record_example.py)"
    return info


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_collapse_recording_is_a_finished_run_of_the_collapse_preset(name):
    info = _recording(name)
    expected = PRESETS["collapse"].replace(variant=VARIANTS[name]).to_dict()
    # read as a config: a field added since the recording was made counts at its default, as the engine reads it
    config = {k: v for k, v in SearchConfig.from_dict(info.config).to_dict().items() if k not in _RUNTIME}
    assert config == {k: (list(v) if isinstance(v, tuple) else v) for k, v in expected.items() if k not in _RUNTIME}
    assert info.state == "finished" and info.step == info.total_steps == 500 and info.epochs == 20
    alphas, metrics = rundir.read_alphas(info.path), rundir.read_metrics(info.path)
    assert alphas[0]["step"] == 1 and alphas[-1]["step"] == 500   # thinned, with the first and the last
    assert sorted({m["step"] for m in metrics}) == list(range(1, 501))  # the metrics are whole
    final = rundir.read_genotypes(info.path)[-1]
    assert final["kind"] == "final" and Genotype.from_dict(final["genotype"]) == info.genotype
    assert variants.record_genotype(alphas[-1], info.config) == info.genotype
    # the metrics rows' counts are those of the genotype the alphas of the same step derive
    by_step = {m["step"]: m for m in metrics}
    for record in alphas:
        counts = count_ops(variants.record_genotype(record, info.config), "normal")
        row = by_step[record["step"]]
        assert (counts["skips"], counts["param_free"]) == (row["skips_normal"], row["param_free_normal"])


def test_plain_darts_collapses_in_the_recordings_and_the_remedies_do_not():
    """What docs/collapse.md's table and the lesson say, from step 100 on (before it the cell flips at random)."""
    later = {}
    for name in VARIANTS:
        steps, skips, free = collapse.normal_cell_counts(rundir.read_metrics(_recording(name).path))
        later[name] = [(k, f) for s, k, f in zip(steps, skips, free, strict=True) if s >= learn.LESSON_SETTLED]
    darts = later["collapse-darts"]
    assert darts[0] == (0, 0) and max(k for k, _ in darts) >= 4 and darts[-1][0] >= 3 and darts[-1][1] >= 5
    assert max(k for k, _ in later["collapse-darts-minus"]) <= 1 and later["collapse-darts-minus"][-1][0] <= 1
    assert max(k for k, _ in later["collapse-beta-darts"]) == 0 and later["collapse-beta-darts"][-1] == (0, 0)


def test_the_pages_still_open_on_the_demo_recording():
    assert examples.example_runs()[0].run_id.endswith("-example-" + examples.DEFAULT_EXAMPLE)
    assert {r.run_id.split("-example-")[1] for r in examples.example_runs()} >= {"demo", *VARIANTS}


def _lesson_charts(at):
    return [c for c in at.get("plotly_chart") if (c.key or "").startswith("learn.collapse_lesson.")]


def _learn():
    from app.screens import learn

    learn.page()


@pytest.mark.parametrize("lecture", [False, True])
def test_the_button_shows_the_three_runs_counts_and_cells_from_the_recordings(app_runs, lecture):
    at = AppTest.from_function(_learn, default_timeout=TIMEOUT)
    if lecture:
        at.query_params["lecture"] = "1"
    at.run()
    assert not at.exception
    assert not _lesson_charts(at)  # closed at first
    at.button(key="learn.collapse_lesson.open").click().run()
    assert not at.exception and at.session_state[learn.LESSON_KEY]

    runs = {name: _recording(name) for name in VARIANTS}
    charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
              for c in _lesson_charts(at)}
    assert len(charts) == 2
    for title, spec in charts.items():
        column = 1 if title.startswith("Skip") else 2
        assert [t["name"] for t in spec["data"]] == [label for label, _ in learn.COLLAPSE_LESSON]
        for trace, name in zip(spec["data"], VARIANTS, strict=True):
            steps, *values = collapse.normal_cell_counts(rundir.read_metrics(runs[name].path))
            assert list(trace["x"]) == steps and list(trace["y"]) == values[column - 1]
    skips = {t["name"]: t["y"] for title, spec in charts.items() if title.startswith("Skip") for t in spec["data"]}
    assert skips["DARTS"][-1] >= 3 and skips["DARTS-"][-1] < skips["DARTS"][-1]
    assert skips["beta-DARTS"][-1] < skips["DARTS"][-1]

    # each run's last normal cell, drawn and counted as the recording's final genotype
    graphs = [g.proto.spec for g in at.get("graphviz_chart")]
    captions = [c.value for c in at.caption]
    text = " ".join(m.value for m in at.markdown)
    for label, name in learn.COLLAPSE_LESSON:
        genotype = runs[name].genotype
        assert cells_dot.cell_dot(genotype, cell="normal", lecture=lecture) in graphs
        c = count_ops(genotype, "normal")
        assert f"{c['skips']} skip connection(s), {c['param_free']} parameter-free of 8 · {runs[name].run_id}" \
            in captions
        assert f"**{label}** (`variant={VARIANTS[name]}`): {c['skips']} skip connection(s)" in text
        steps, skips, _ = collapse.normal_cell_counts(rundir.read_metrics(runs[name].path))
        every = ", ".join(str(k) for s, k in zip(steps, skips, strict=True) if s % 50 == 0)
        assert len(every.split(", ")) == 10 and f"skip connections every 50 steps: {every};" in text
    assert "--preset collapse" in text

    at.run()  # another rerun (any widget): the lesson stays open
    assert len(_lesson_charts(at)) == 2
    at.button(key="learn.collapse_lesson.close").click().run()
    assert not at.exception and not at.session_state[learn.LESSON_KEY]
    assert not _lesson_charts(at)


def test_collapse_counts_figure_is_on_a_fixed_scale_and_lecture_is_larger():
    rows = [{"step": 1, "skips_normal": 0, "param_free_normal": 1}, {"step": 2, "skips_normal": 2,
                                                                     "param_free_normal": 3},
            {"step": 2, "skips_normal": 3, "param_free_normal": 4, "valid_acc": 0.5}]   # an epoch end's row
    assert collapse.normal_cell_counts(rows) == ([1, 2], [0, 3], [1, 4])
    small = collapse.collapse_counts_figure({"a": rows}, "skips")
    big = collapse.collapse_counts_figure({"a": rows}, "param_free", lecture=True)
    assert list(small.layout.yaxis.range) == list(big.layout.yaxis.range) == [-0.2, 8.2]
    assert big.layout.font.size > small.layout.font.size and big.layout.height > small.layout.height
    assert big.layout.xaxis.tickfont.size == big.layout.yaxis.title.font.size == labels.LECTURE["axis_label"] >= 16
    assert list(big.data[0].y) == [1, 4] and not big.layout.shapes
    shaded = collapse.collapse_counts_figure({"a": rows}, "skips", settled=100)
    assert [(shape.x0, shape.x1) for shape in shaded.layout.shapes] == [(0, 100)]
    with pytest.raises(ValueError):
        collapse.collapse_counts_figure({"a": rows}, "pools")

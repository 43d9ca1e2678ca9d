"""The collapse sweep shipped with dartboard (assets/sweeps/collapse: the `collapse` preset searched with several
seeds by DARTS and beta-DARTS), and what the Learn page's collapse lesson and the Sweeps page show from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.figures import collapse
from app.screens import learn, learn_sweep
from engine import variants
from engine.runs import examples, rundir
from engine.search.collapse import count_ops
from engine.search.config import PRESETS, SearchConfig
from engine.sweep.report import compare_values, group_summaries, member_results
from engine.sweep.spec import load_sweep

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
_RUNTIME = {"threads", "device", "data_root", "download", "checkpoint_every_s"}


def _sweep():
    path = examples.shipped_sweep(examples.COLLAPSE_SWEEP)
    assert path is not None, "assets/sweeps/ must ship the collapse sweep (scripts/record_sweep.py)"
    return load_sweep(path)


def test_the_shipped_sweep_is_darts_and_beta_darts_over_four_seeds_of_the_collapse_preset():
    sweep = _sweep()
    assert sweep.preset == "collapse" and sweep.grid == {"variant": ["darts", "beta_darts"]} and not sweep.sets
    assert len(sweep.seeds) >= 4 and len(sweep.members) == 2 * len(sweep.seeds)
    for m in sweep.members:
        info = rundir.read_config(sweep.run_dir(m))
        expected = PRESETS["collapse"].replace(variant=m.settings["variant"], seed=m.settings["seed"]).to_dict()
        config = {k: v for k, v in SearchConfig.from_dict(info["config"]).to_dict().items() if k not in _RUNTIME}
        assert config == {k: (list(v) if isinstance(v, tuple) else v) for k, v in expected.items()
                          if k not in _RUNTIME}
        assert rundir.read_status(sweep.run_dir(m))["state"] == "finished"
        assert not (sweep.run_dir(m) / "checkpoint.pt").exists()   # a recording: read, not resumed


@pytest.mark.parametrize("index", range(8))
def test_each_members_metrics_are_whole_and_their_counts_are_those_its_alphas_derive(index):
    sweep = _sweep()
    run_dir = sweep.run_dir(sweep.members[index])
    config = rundir.read_config(run_dir)["config"]
    alphas, metrics = rundir.read_alphas(run_dir), rundir.read_metrics(run_dir)
    assert alphas[0]["step"] == 1 and alphas[-1]["step"] == 500
    assert sorted({m["step"] for m in metrics}) == list(range(1, 501))
    by_step = {m["step"]: m for m in metrics}
    for record in alphas:
        counts = count_ops(variants.record_genotype(record, config), "normal")
        row = by_step[record["step"]]
        assert (counts["skips"], counts["param_free"]) == (row["skips_normal"], row["param_free_normal"])


def test_shipped_sweep_members_are_read_only_recordings():
    member = _sweep().run_dir(_sweep().members[0])
    assert examples.is_example(member)
    with pytest.raises(rundir.RunDirError, match="shipped with dartboard"):
        examples.check_writable(member)
    assert examples.shipped_sweep("../runs") is None and examples.shipped_sweep("no-such-sweep") is None


def _by_hand():
    """variant -> [(seed, final skips, final parameter-free, most skips from the settled step on)], from the files."""
    out: dict[str, list[tuple[int, int, int, int]]] = {}
    sweep = _sweep()
    for m in sweep.members:
        steps, skips, free = collapse.normal_cell_counts(rundir.read_metrics(sweep.run_dir(m)))
        peak = max(k for s, k in zip(steps, skips, strict=True) if s >= learn.LESSON_SETTLED)
        out.setdefault(m.settings["variant"], []).append((m.settings["seed"], skips[-1], free[-1], peak))
    return out


def _learn():
    from app.screens import learn

    learn.page()


def test_the_lesson_says_how_often_each_variant_collapsed_across_the_seeds(app_runs):
    at = AppTest.from_function(_learn, default_timeout=TIMEOUT)
    at.run()
    at.button(key="learn.collapse_lesson.open").click().run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    hand = _by_hand()
    for variant, name in (("darts", "DARTS"), ("beta_darts", "beta-DARTS")):
        rows = hand[variant]
        hit = sum(skips >= learn_sweep.COLLAPSED_SKIPS for _, skips, _, _ in rows)
        assert (f"**{name}**: {hit} of {len(rows)} seeds ended with a collapsed normal cell "
                f"({learn_sweep.COLLAPSED_SKIPS} or more skip connections of 8)") in text
    # the band: per variant, the mean over the seeds of the skip count at each step, and its range
    band = next(c for c in at.get("plotly_chart") if c.key == "learn.collapse_seeds.band")
    traces = {t["name"]: t for t in json.loads(band.proto.spec)["data"]}
    sweep = _sweep()
    for variant, name in (("darts", "DARTS"), ("beta_darts", "beta-DARTS")):
        counts = [collapse.normal_cell_counts(rundir.read_metrics(sweep.run_dir(m)))[1]
                  for m in sweep.members if m.settings["variant"] == variant]
        mean = traces[f"{name} (mean of {len(counts)})"]
        assert mean["y"] == pytest.approx(np.mean(counts, axis=0).tolist())
    # the table: one row per seed, as counted from the files
    table = next(d.value for d in at.dataframe if "most skips" in d.value.columns)
    got = {(r["variant"], r["seed"]): (r["skips (last cell)"], r["parameter-free (last cell)"], r["most skips"])
           for _, r in table.iterrows()}
    assert got == {({"darts": "DARTS"}.get(v, "beta-DARTS"), seed): (k, f, p)
                   for v, rows in hand.items() for seed, k, f, p in rows}
    # the comparisons are the report's test, on the final skip counts, the most skips from the settled step on and
    # the supernet's accuracy (the report's own figures for the first and the last)
    darts, beta = group_summaries(member_results(sweep))
    finals = {v: [float(k) for _, k, _, _ in rows] for v, rows in hand.items()}
    assert finals == {"darts": darts.values("skips_normal"), "beta_darts": beta.values("skips_normal")}
    peaks = {v: [float(p) for _, _, _, p in rows] for v, rows in hand.items()}
    for figure, a, b in (("skip connections in the last normal cell", finals["darts"], finals["beta_darts"]),
                         (f"most skip connections from step {learn.LESSON_SETTLED} on", peaks["darts"],
                          peaks["beta_darts"]),
                         ("supernet validation accuracy", darts.values("valid_acc"), beta.values("valid_acc"))):
        assert compare_values(figure, "DARTS", a, "beta-DARTS", b) in text


def test_the_sweeps_page_opens_on_the_shipped_sweep_on_a_fresh_machine(app_runs, page):
    at = page("sweeps", timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert "python -m engine sweep" in at.code[0].value             # how to start one, as before
    assert at.selectbox(key="sweep").value == "shipped:collapse"   # and the recorded sweep meanwhile
    members = at.dataframe[0].value
    assert len(members) == 8 and set(members["state"]) == {"finished"}
    assert sorted(members["variant"].unique()) == ["beta_darts", "darts"]


def test_a_link_to_the_shipped_sweep_opens_it_beside_this_machines_sweeps(app_runs, page):
    """The lesson's "Open the sweep" (and a bookmark) name the shipped sweep in the URL; it is shown even when the
    runs root has sweeps of its own, which come first otherwise."""
    from engine.sweep.spec import create_sweep

    create_sweep(app_runs / "sweeps", "mine", "smoke", {}, {}, seeds=2)
    at = page("sweeps", timeout=TIMEOUT)
    at.run()
    assert at.selectbox(key="sweep").value == "mine"
    linked = page("sweeps", timeout=TIMEOUT)
    linked.query_params["sweep"] = "shipped:collapse"
    linked.run()
    assert not linked.exception and linked.selectbox(key="sweep").value == "shipped:collapse"
    assert len(linked.dataframe[0].value) == 8

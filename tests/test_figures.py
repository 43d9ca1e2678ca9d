"""app/figures.py: pure data -> figure / DOT / frame functions, tested without Streamlit."""

import dataclasses

import numpy as np
import pytest

from app import figures
from engine.genotype import KNOWN_GENOTYPES, Genotype, derive_genotype
from engine.space import PRIMITIVES, edge_labels


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def alphas():
    rng = np.random.default_rng(0)
    return {"normal": rng.normal(size=(14, 8)), "reduce": rng.normal(size=(14, 8))}


@pytest.fixture
def records():
    """An alphas history: uniform at step 0, then skip_connect in the normal cell growing step by step."""
    rows = []
    for step in (0, 2, 4, 6, 8):
        normal = np.zeros((14, 8))
        normal[:, PRIMITIVES.index("skip_connect")] = 0.3 * step
        reduce = np.zeros((14, 8))
        reduce[:, PRIMITIVES.index("max_pool_3x3")] = 0.1 * step
        rows.append({"step": step, "epoch": step // 4, "normal": normal.tolist(), "reduce": reduce.tolist()})
    return rows


def test_heatmap_axes_and_values_match_the_weights(alphas):
    w = _softmax(alphas["normal"])
    fig = figures.heatmap(w, title="Normal cell")
    trace = fig.data[0]
    assert list(trace.x) == list(PRIMITIVES)
    assert list(trace.y) == edge_labels(4)
    assert trace.y[0] == "c_{k-2} -> 0" and trace.y[-1] == "2 -> 3"
    np.testing.assert_allclose(np.asarray(trace.z), w)
    assert (trace.zmin, trace.zmax) == (0.0, 1.0)       # fixed scale, whatever the values
    assert fig.layout.yaxis.autorange == "reversed"      # row 0 on top, like the matrix
    assert "%{x}" in trace.hovertemplate and "%{y}" in trace.hovertemplate


def test_heatmap_scale_is_fixed_even_for_near_uniform_weights():
    w = np.full((14, 8), 1 / 8)
    w[0, 4] += 0.01
    w[0, 0] -= 0.01
    trace = figures.heatmap(w).data[0]
    assert (trace.zmin, trace.zmax) == (0.0, 1.0)


def test_uniform_view_centres_on_one_eighth_and_stretches_small_moves():
    w = np.full((14, 8), 1 / 8)
    w[3, 4], w[3, 0] = 1 / 8 + 0.02, 1 / 8 - 0.02
    trace = figures.heatmap(w, mode="uniform").data[0]
    assert trace.zmid == pytest.approx(1 / 8)
    assert trace.zmin == pytest.approx(1 / 8 - 0.02) and trace.zmax == pytest.approx(1 / 8 + 0.02)
    np.testing.assert_allclose(np.asarray(trace.z), w)


def test_change_view_shows_weights_minus_the_start(alphas):
    w0 = _softmax(alphas["normal"] * 0.01)
    w = _softmax(alphas["normal"])
    trace = figures.heatmap(w, mode="change", initial=w0).data[0]
    np.testing.assert_allclose(np.asarray(trace.z), w - w0)
    assert trace.zmid == 0.0 and trace.zmin == pytest.approx(-trace.zmax)
    assert trace.zmax == pytest.approx(np.abs(w - w0).max())


def test_heatmap_rejects_a_matrix_that_is_not_a_cell():
    with pytest.raises(ValueError, match="not a DARTS cell"):
        figures.heatmap(np.zeros((13, 8)))
    with pytest.raises(ValueError, match="mode"):
        figures.heatmap(np.zeros((14, 8)), mode="bogus")


def test_weights_frame_labels_rows_and_columns(alphas):
    frame = figures.weights_frame(_softmax(alphas["reduce"]))
    assert list(frame.columns) == list(PRIMITIVES)
    assert list(frame.index) == edge_labels(4)
    np.testing.assert_allclose(frame.sum(axis=1).to_numpy(), 1.0)


def test_curve_traces_match_the_metrics():
    metrics = [
        {"step": 1, "epoch": 0, "train_loss": 2.3, "train_acc": 0.1, "valid_loss": 2.4, "valid_acc": 0.09,
         "w_lr": 0.05},
        {"step": 2, "epoch": 0, "train_loss": 2.1, "train_acc": 0.2, "valid_loss": None, "valid_acc": None,
         "w_lr": 0.05},
        {"step": 3, "epoch": 1, "train_loss": 1.9, "train_acc": 0.3, "valid_loss": 2.0, "valid_acc": 0.25,
         "w_lr": 0.04},
    ]
    loss = figures.curve_figure(metrics, "loss")
    train, valid = loss.data
    assert (train.name, valid.name) == ("train", "valid")
    # each epoch is its own segment (the running means start afresh), and a dotted line marks the reset
    assert list(train.x) == [1, 2, None, 3] and list(train.y) == [2.3, 2.1, None, 1.9]
    assert list(valid.x) == [1, None, 3] and list(valid.y) == [2.4, None, 2.0]   # missing values are skipped
    assert [shape.x0 for shape in loss.layout.shapes] == [2.5] and train.line.color != valid.line.color
    acc = figures.curve_figure(metrics, "accuracy")
    assert [y for y in acc.data[1].y if y is not None] == [0.09, 0.25]
    lr = figures.curve_figure(metrics, "lr")
    assert list(lr.data[0].y) == [0.05, 0.05, 0.04]
    assert lr.layout.yaxis.rangemode == "tozero" and not lr.layout.shapes  # a constant lr reads as constant
    assert figures.curve_figure([], "loss").data[0].x == ()


def test_overlay_has_one_trace_per_run():
    runs = {"A": [{"step": 1, "valid_acc": 0.5}], "B": [{"step": 1, "valid_acc": 0.6}, {"step": 2, "valid_acc": 0.7}]}
    fig = figures.overlay_figure(runs, "valid_acc")
    assert [t.name for t in fig.data] == ["A", "B"]
    assert list(fig.data[1].y) == [0.6, 0.7]
    (a, b) = fig.data  # told apart by colour and by dash: A is never hidden under B in the same blue
    assert a.line.color != b.line.color and a.line.dash != b.line.dash


def _dot_edges(dot: str) -> int:
    return sum(1 for line in dot.splitlines() if "->" in line)


@pytest.mark.parametrize("cell", ["normal", "reduce"])
def test_cell_dot_has_the_genotypes_edges(cell):
    genotype = KNOWN_GENOTYPES["DARTS_V2"]
    dot = figures.cell_dot(genotype, cell=cell)
    assert "digraph" in dot
    for op, _ in getattr(genotype, cell):
        assert op in dot
    # 8 op edges, plus the 4 node -> output edges
    assert _dot_edges(dot) >= len(getattr(genotype, cell))


def test_weighted_dot_draws_every_candidate_edge(alphas):
    dot = figures.weighted_cell_dot(_softmax(alphas["normal"]), cell="normal")
    assert "digraph" in dot
    assert _dot_edges(dot) >= 14


def test_genotype_frame_and_changes():
    v1, v2 = KNOWN_GENOTYPES["DARTS_V1"], KNOWN_GENOTYPES["DARTS_V2"]
    frame = figures.genotype_frame(v2)
    assert len(frame) == 16 and list(frame.columns) == ["cell", "node", "input", "op"]
    assert frame.iloc[0].to_dict() == {"cell": "normal", "node": 0, "input": "c_{k-2}", "op": "sep_conv_3x3"}
    assert frame.iloc[7].to_dict() == {"cell": "normal", "node": 3, "input": "0", "op": "dil_conv_3x3"}
    assert figures.genotype_changes(v2, v2) == []
    assert figures.genotype_changes(None, v2) == []
    changes = figures.genotype_changes(v1, v2)
    assert changes and all(line.startswith(("normal node", "reduce node")) for line in changes)
    assert "normal node 3: skip_connect from 0 -> dil_conv_3x3 from 0" in changes


def test_compare_frame_marks_equal_and_different_edges():
    v1, v2 = KNOWN_GENOTYPES["DARTS_V1"], KNOWN_GENOTYPES["DARTS_V2"]
    same = figures.compare_genotypes_frame(v2, v2)
    assert len(same) == 16 and (same["same"] == "yes").all()
    diff = figures.compare_genotypes_frame(v1, v2, names=("V1", "V2"))
    assert {"V1", "V2"} <= set(diff.columns) and (diff["same"] == "no").any()
    # DARTS_V2 against itself with node 0's two inputs swapped: the same cell, 16 of 16 (it said 14 of 16)
    swapped = dataclasses.replace(v2, normal=(v2.normal[1], v2.normal[0], *v2.normal[2:]))
    frame = figures.compare_genotypes_frame(v2, swapped)
    assert len(frame) == 16 and (frame["same"] == "yes").all()
    assert figures.genotype_changes(v2, swapped) == []
    # V1 and V2 share node 0 of the normal cell in another order, and node 1's sep_conv_3x3 from c_{k-1}
    node0 = diff[(diff["cell"] == "normal") & (diff["node"] == 0)]
    assert (node0["same"] == "yes").all() and len(node0) == 2


def test_replay_frame_selection(records):
    assert figures.replay_steps(records) == [0, 2, 4, 6, 8]
    assert figures.replay_index(records, 0) == 0
    assert figures.replay_index(records, 3) == 1           # the last record at or before the step
    assert figures.replay_index(records, 4) == 2
    assert figures.replay_index(records, 100) == 4
    assert figures.replay_index(records, -5) == 0
    with pytest.raises(ValueError):
        figures.replay_index([], 0)


def test_replayed_record_gives_weights_and_genotype(records):
    last = records[-1]
    np.testing.assert_allclose(figures.record_weights(last)["normal"], _softmax(np.asarray(last["normal"])))
    genotype = figures.record_genotype(last)
    assert isinstance(genotype, Genotype)
    assert genotype == derive_genotype(np.asarray(last["normal"]), np.asarray(last["reduce"]))
    assert all(op == "skip_connect" for op, _ in genotype.normal)


def test_op_share_shows_skip_connect_rising(records):
    fig = figures.op_share_figure(records, "normal")
    by_name = {t.name: t for t in fig.data}
    assert list(by_name) == list(PRIMITIVES)
    skip = list(by_name["skip_connect"].y)
    assert skip[0] == pytest.approx(1 / 8) and skip == sorted(skip) and skip[-1] > 0.5
    assert list(by_name["skip_connect"].x) == [0, 2, 4, 6, 8]


def test_formatting_helpers():
    assert figures.format_duration(None) == "—"
    assert figures.format_duration(12.4) == "12 s"
    assert figures.format_duration(245) == "4 min 05 s"
    assert figures.format_duration(7620) == "2 h 07 min"
    assert figures.progress_text(1, 8, 120, 400) == "epoch 2/8 · step 120/400"
    assert figures.progress_text(8, 8, 400, 400) == "epoch 8/8 · step 400/400"   # finished: not 9/8


def test_runs_frame_columns():
    from pathlib import Path

    from engine.catalog import RunInfo

    info = RunInfo(run_id="r1", path=Path("/tmp/r1"), state="finished", epoch=2, epochs=2, step=8, total_steps=8,
                   genotype=KNOWN_GENOTYPES["DARTS_V2"], valid_acc=0.5, created="2025", config={"dataset": "fake"})
    frame = figures.runs_frame([info])
    assert frame.iloc[0]["run"] == "r1" and frame.iloc[0]["state"] == "finished"
    assert frame.iloc[0]["epoch"] == "2/2" and frame.iloc[0]["genotype"] == "yes"

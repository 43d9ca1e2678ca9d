"""app/figures/: pure data -> figure / DOT / frame functions, tested without Streamlit."""

import dataclasses

import numpy as np
import pytest

from app.figures import cells_dot, collapse, curves, heatmaps, labels, replay, tables, variant_state
from engine.space.cnn.cell import PRIMITIVES
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype, derive_genotype

EDGES = labels.edge_names(4)  # the heatmaps' rows, in alpha-row order


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
    fig = heatmaps.heatmap(w, title="Normal cell")
    trace = fig.data[0]
    assert list(trace.x) == list(PRIMITIVES)
    assert list(trace.y) == EDGES
    assert trace.y[0] == "c(k-2) -> 0" and trace.y[-1] == "2 -> 3"   # plain text, not the paper's LaTeX
    np.testing.assert_allclose(np.asarray(trace.z), w)
    assert (trace.zmin, trace.zmax) == (0.0, 1.0)       # fixed scale, whatever the values
    assert fig.layout.yaxis.autorange == "reversed"      # row 0 on top, like the matrix
    assert "%{x}" in trace.hovertemplate and "%{y}" in trace.hovertemplate


def test_heatmap_scale_is_fixed_even_for_near_uniform_weights():
    w = np.full((14, 8), 1 / 8)
    w[0, 4] += 0.01
    w[0, 0] -= 0.01
    trace = heatmaps.heatmap(w).data[0]
    assert (trace.zmin, trace.zmax) == (0.0, 1.0)


def test_uniform_view_shows_the_offset_from_one_eighth_on_a_fixed_symlog_scale():
    w = np.full((14, 8), 1 / 8)
    w[3, 4], w[3, 0] = 1 / 8 + 0.02, 1 / 8 - 0.02
    trace = heatmaps.heatmap(w, mode="uniform").data[0]
    assert (trace.zmin, trace.zmid, trace.zmax) == (-1.0, 0.0, 1.0)       # fixed, whatever the values
    shown = np.asarray(trace.z)
    assert shown[3, 4] == pytest.approx(-shown[3, 0]) and shown[0, 0] == 0.0
    assert 0.2 < shown[3, 4] < 0.4            # a move of 0.02 is a quarter of the way to the end: visible
    assert trace.text[3][4] == "+0.020" and trace.text[3][0] == "-0.020"   # the cell says the value itself


def test_change_view_shows_weights_minus_the_start_on_the_fixed_domain(alphas):
    w0 = _softmax(alphas["normal"] * 0.01)
    w = _softmax(alphas["normal"])
    trace = heatmaps.heatmap(w, mode="change", initial=w0).data[0]
    np.testing.assert_allclose(np.asarray(trace.z), heatmaps._symlog(w - w0, 1.0))
    assert trace.text[0][0] == f"{w[0, 0] - w0[0, 0]:+.3f}"
    assert (trace.zmin, trace.zmid, trace.zmax) == (-1.0, 0.0, 1.0)


def test_heatmap_rejects_a_matrix_that_is_not_a_cell():
    with pytest.raises(ValueError, match="not a DARTS cell"):
        heatmaps.heatmap(np.zeros((13, 8)))
    with pytest.raises(ValueError, match="mode"):
        heatmaps.heatmap(np.zeros((14, 8)), mode="bogus")


def test_weights_frame_labels_rows_and_columns(alphas):
    frame = heatmaps.weights_frame(_softmax(alphas["reduce"]))
    assert list(frame.columns) == list(PRIMITIVES)
    assert list(frame.index) == EDGES
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
    loss = curves.curve_figure(metrics, "loss")
    train, valid = loss.data
    assert (train.name, valid.name) == ("train", "valid")
    # each epoch is its own segment (the running means start afresh), and a dotted line marks the reset
    assert list(train.x) == [1, 2, None, 3] and list(train.y) == [2.3, 2.1, None, 1.9]
    assert list(valid.x) == [1, None, 3] and list(valid.y) == [2.4, None, 2.0]   # missing values are skipped
    assert [shape.x0 for shape in loss.layout.shapes] == [2.5] and train.line.color != valid.line.color
    acc = curves.curve_figure(metrics, "accuracy")
    assert [y for y in acc.data[1].y if y is not None] == [0.09, 0.25]
    lr = curves.curve_figure(metrics, "lr")
    assert list(lr.data[0].y) == [0.05, 0.05, 0.04]
    assert lr.layout.yaxis.rangemode == "tozero" and not lr.layout.shapes  # a constant lr reads as constant
    assert curves.curve_figure([], "loss").data[0].x == ()


def test_overlay_has_one_trace_per_run():
    runs = {"A": [{"step": 1, "valid_acc": 0.5}], "B": [{"step": 1, "valid_acc": 0.6}, {"step": 2, "valid_acc": 0.7}]}
    fig = curves.overlay_figure(runs, "valid_acc")
    assert [t.name for t in fig.data] == ["A", "B"]
    assert list(fig.data[1].y) == [0.6, 0.7]
    (a, b) = fig.data  # told apart by colour and by dash: A is never hidden under B in the same blue
    assert a.line.color != b.line.color and a.line.dash != b.line.dash


def _dot_edges(dot: str) -> int:
    return sum(1 for line in dot.splitlines() if "->" in line)


@pytest.mark.parametrize("cell", ["normal", "reduce"])
def test_cell_dot_has_the_genotypes_edges(cell):
    genotype = KNOWN_GENOTYPES["DARTS_V2"]
    dot = cells_dot.cell_dot(genotype, cell=cell)
    assert "digraph" in dot
    for op, _ in getattr(genotype, cell):
        assert op in dot
    # 8 op edges, plus the 4 node -> output edges
    assert _dot_edges(dot) >= len(getattr(genotype, cell))


def test_weighted_dot_draws_every_candidate_edge(alphas):
    dot = cells_dot.weighted_cell_dot(_softmax(alphas["normal"]), cell="normal")
    assert "digraph" in dot
    assert _dot_edges(dot) >= 14


def test_genotype_frame_and_changes():
    v1, v2 = KNOWN_GENOTYPES["DARTS_V1"], KNOWN_GENOTYPES["DARTS_V2"]
    frame = tables.genotype_frame(v2)
    assert len(frame) == 16 and list(frame.columns) == ["cell", "node", "input", "op"]
    assert frame.iloc[0].to_dict() == {"cell": "normal", "node": 0, "input": "c(k-2)", "op": "sep_conv_3x3"}
    assert frame.iloc[7].to_dict() == {"cell": "normal", "node": 3, "input": "0", "op": "dil_conv_3x3"}
    assert tables.genotype_changes(v2, v2) == []
    assert tables.genotype_changes(None, v2) == []
    changes = tables.genotype_changes(v1, v2)
    assert changes and all(line.startswith(("normal node", "reduce node")) for line in changes)
    assert "normal node 3: skip_connect from 0 -> dil_conv_3x3 from 0" in changes


def test_compare_frame_marks_equal_and_different_edges():
    v1, v2 = KNOWN_GENOTYPES["DARTS_V1"], KNOWN_GENOTYPES["DARTS_V2"]
    same = tables.compare_genotypes_frame(v2, v2)
    assert len(same) == 16 and (same["same"] == "yes").all()
    diff = tables.compare_genotypes_frame(v1, v2, names=("V1", "V2"))
    assert {"V1", "V2"} <= set(diff.columns) and (diff["same"] == "no").any()
    # DARTS_V2 against itself with node 0's two inputs swapped: the same cell, 16 of 16 (it said 14 of 16)
    swapped = dataclasses.replace(v2, normal=(v2.normal[1], v2.normal[0], *v2.normal[2:]))
    frame = tables.compare_genotypes_frame(v2, swapped)
    assert len(frame) == 16 and (frame["same"] == "yes").all()
    assert tables.genotype_changes(v2, swapped) == []
    # V1 and V2 share node 0 of the normal cell in another order, and node 1's sep_conv_3x3 from c_{k-1}
    node0 = diff[(diff["cell"] == "normal") & (diff["node"] == 0)]
    assert (node0["same"] == "yes").all() and len(node0) == 2


def test_replay_frame_selection(records):
    assert replay.replay_steps(records) == [0, 2, 4, 6, 8]
    assert replay.replay_index(records, 0) == 0
    assert replay.replay_index(records, 3) == 1           # the last record at or before the step
    assert replay.replay_index(records, 4) == 2
    assert replay.replay_index(records, 100) == 4
    assert replay.replay_index(records, -5) == 0
    with pytest.raises(ValueError):
        replay.replay_index([], 0)


def test_replayed_record_gives_weights_and_genotype(records):
    last = records[-1]
    np.testing.assert_allclose(replay.record_weights(last)["normal"], _softmax(np.asarray(last["normal"])))
    genotype = replay.record_genotype(last)
    assert isinstance(genotype, Genotype)
    assert genotype == derive_genotype(np.asarray(last["normal"]), np.asarray(last["reduce"]))
    assert all(op == "skip_connect" for op, _ in genotype.normal)


def test_op_share_shows_skip_connect_rising(records):
    fig = collapse.op_share_figure(records, "normal")
    by_name = {t.name: t for t in fig.data}
    assert list(by_name) == [op for op in PRIMITIVES if op != "none"]   # none is never chosen: not drawn
    skip = list(by_name["skip_connect"].y)
    assert skip[0] == pytest.approx(1 / 7) and skip == sorted(skip) and skip[-1] > 0.5
    assert list(by_name["skip_connect"].x) == [0, 2, 4, 6, 8]
    assert by_name["skip_connect"].line.width > (by_name["sep_conv_3x3"].line.width or 2)   # the line to watch


def test_op_share_leaves_a_dominant_none_out():
    """`none` taking most of every edge's weight does not hide skip_connect winning among the real ops."""
    rows = []
    for step in (0, 1, 2):
        a = np.zeros((14, 8))
        a[:, PRIMITIVES.index("none")] = 3.0 * step
        a[:, PRIMITIVES.index("skip_connect")] = 1.0 * step
        rows.append({"step": step, "normal": a.tolist(), "reduce": a.tolist()})
    shares = collapse.op_shares(rows, "normal")
    w = replay.record_weights(rows[-1])["normal"]
    assert w[:, 0].min() > 0.7                                   # none dominates every edge ...
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)          # ... and is left out of the shares
    assert shares[:, 0].tolist() == [0.0, 0.0, 0.0]
    real = w[0, 1:] / w[0, 1:].sum()
    assert shares[-1, PRIMITIVES.index("skip_connect")] == pytest.approx(real[PRIMITIVES.index("skip_connect") - 1])
    assert shares[-1].argmax() == PRIMITIVES.index("skip_connect")


def test_formatting_helpers():
    assert labels.format_duration(None) == "—"
    assert labels.format_duration(12.4) == "12 s"
    assert labels.format_duration(245) == "4 min 05 s"
    assert labels.format_duration(7620) == "2 h 07 min"
    assert labels.progress_text(1, 8, 120, 400) == "epoch 2/8 · step 120/400"
    assert labels.progress_text(8, 8, 400, 400) == "epoch 8/8 · step 400/400"   # finished: not 9/8


def test_runs_frame_columns():
    from pathlib import Path

    from engine.runs.catalog import RunInfo

    info = RunInfo(run_id="r1", path=Path("/tmp/r1"), state="finished", epoch=2, epochs=2, step=8, total_steps=8,
                   genotype=KNOWN_GENOTYPES["DARTS_V2"], valid_acc=0.5, created="2025", config={"dataset": "fake"})
    frame = tables.runs_frame([info])
    assert frame.iloc[0]["run"] == "r1" and frame.iloc[0]["state"] == "finished"
    assert frame.iloc[0]["epoch"] == "2/2" and frame.iloc[0]["genotype"] == "yes"


# ---------------------------------------------------------------- each variant's own state
def test_pc_darts_state_is_its_edge_weights_summing_to_one_per_node():
    import torch

    from engine.variants.pc_darts import edge_weights

    betas = np.random.default_rng(0).normal(size=14)
    arch = {"normal": np.zeros((14, 8)), "reduce": np.zeros((14, 8)), "betas_normal": betas, "betas_reduce": -betas}
    [(caption, fig)] = variant_state.variant_state_figures("pc_darts", arch)
    w = np.asarray(fig.data[0].z)
    assert list(fig.data[0].x) == ["normal", "reduce"] and w.shape == (14, 2) and "edge weight" in caption
    for a, b in ((0, 2), (2, 5), (5, 9), (9, 14)):
        assert w[a:b, 0].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w[:, 0], edge_weights(torch.as_tensor(betas)).numpy())
    assert list(fig.data[0].y) == EDGES
    assert variant_state.variant_state_figures("pc_darts", {"normal": np.zeros((14, 8))}) == []


def test_gdas_state_shows_tempered_probabilities_and_marks_the_sampled_ops():
    a = np.random.default_rng(1).normal(size=(14, 8))
    arch = {"normal": a, "reduce": a, "tau": np.array(2.0), "normal_sampled": np.arange(14) % 8,
            "reduce_sampled": np.full(14, -1)}
    (_, normal), (_, reduce) = variant_state.variant_state_figures("gdas", arch)
    e = np.exp(a / 2.0 - (a / 2.0).max(1, keepdims=True))
    np.testing.assert_allclose(np.asarray(normal.data[0].z), e / e.sum(1, keepdims=True))
    assert "tau = 2" in normal.layout.title.text
    assert list(normal.data[1].x)[:3] == [PRIMITIVES[0], PRIMITIVES[1], PRIMITIVES[2]]
    assert len(reduce.data) == 1  # nothing sampled yet: no markers


def test_fair_state_marks_the_threshold_and_colours_the_edges_over_it():
    w = np.full((14, 8), 0.3)
    w[0, 4] = 0.9
    w[:, 0] = 0.99  # `none` is not an op of a cell
    arch = {"normal": np.log(w / (1 - w)), "reduce": np.zeros((14, 8)), "threshold": np.array(0.85)}
    (_, fig), _ = variant_state.variant_state_figures("fair_darts", arch)
    np.testing.assert_allclose(list(fig.data[0].x)[:2], [0.9, 0.3])
    assert fig.data[0].text[0] == "sep_conv_3x3"
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[1]
    assert fig.layout.shapes[0].x0 == 0.85
    # without the recorded threshold, the run's own option
    (_, fig), _ = variant_state.variant_state_figures({"variant": "fair_darts", "fair_threshold": 0.95},
                                                      {"normal": arch["normal"], "reduce": arch["reduce"]})
    assert fig.layout.shapes[0].x0 == 0.95 and fig.data[0].marker.color[0] == fig.data[0].marker.color[1]


def test_dirichlet_state_is_the_mean_and_spread_of_the_distribution():
    import torch

    from engine import variants

    a = np.random.default_rng(2).normal(size=(14, 8))
    [normal, _] = variants.state_figures({"normal": a, "reduce": a}, "drnas")
    d = torch.distributions.Dirichlet(torch.nn.functional.elu(torch.as_tensor(a)) + 1)
    np.testing.assert_allclose(normal.values, d.mean.numpy())
    std = d.variance.sqrt().numpy()
    assert normal.text[1] == f"{d.mean[0, 1]:.2f}±{std[0, 1]:.2f}"
    fig = variant_state.state_figure(normal)
    assert fig.data[0].text[0][1] == normal.text[1] and list(fig.data[0].x) == list(PRIMITIVES)
    assert variant_state.variant_state_figures("darts", {"normal": a, "reduce": a}) == []


# ---------------------------------------------------------------- Vega-Lite versions (the browser redraws in place)
@pytest.mark.parametrize("mode", ["softmax", "uniform", "change"])
def test_heatmap_vega_data_is_the_weights_and_the_spec_only_the_mode(mode):
    rng = np.random.default_rng(3)
    w, w0 = rng.dirichlet(np.ones(8), size=14), rng.dirichlet(np.ones(8) * 50, size=14)
    spec, data = heatmaps.heatmap_vega(w, title="Normal cell", mode=mode, initial=w0)
    assert spec["title"] == "Normal cell"
    assert spec["encoding"]["y"]["sort"] == EDGES and spec["encoding"]["x"]["sort"] == list(PRIMITIVES)
    assert data["edge"].tolist() == [e for e in EDGES for _ in PRIMITIVES]   # row-major: edge, then op
    assert data["op"].tolist() == list(PRIMITIVES) * 14
    np.testing.assert_array_equal(data["weight"].to_numpy().reshape(14, 8), w)
    np.testing.assert_array_equal(data["change"].to_numpy().reshape(14, 8), w - w0)
    shown = {"softmax": w, "uniform": w - 1 / 8, "change": w - w0}[mode]
    np.testing.assert_array_equal(data["value"].to_numpy().reshape(14, 8), shown)   # colour and text
    assert data["label"][9] == f"c(k-1) -> 0, max_pool_3x3: weight {w[1, 1]:.6f}, change since start " \
                               f"{w[1, 1] - w0[1, 1]:+.6f}"
    # another step's weights change the data only: the browser keeps the chart and swaps its data
    assert heatmaps.heatmap_vega(_softmax(rng.normal(size=(14, 8))), title="Normal cell", mode=mode)[0] == spec
    with pytest.raises(ValueError, match="mode="):
        heatmaps.heatmap_vega(w, mode="bogus")


@pytest.mark.parametrize("curve", list(curves.CURVES))
def test_curve_vega_draws_what_curve_figure_draws(curve):
    metrics = [
        {"step": 1, "epoch": 0, "train_loss": 2.3, "train_acc": 0.1, "valid_loss": 2.4, "valid_acc": 0.09,
         "w_lr": 0.05},
        {"step": 2, "epoch": 0, "train_loss": 2.1, "train_acc": 0.2, "valid_loss": None, "valid_acc": None,
         "w_lr": 0.05},
        {"step": 3, "epoch": 1, "train_loss": 1.9, "train_acc": 0.3, "valid_loss": 2.0, "valid_acc": 0.25,
         "w_lr": 0.04},
        {"step": 4, "epoch": 1, "train_loss": 1.8, "train_acc": 0.35, "valid_loss": 1.9, "valid_acc": 0.3,
         "w_lr": 0.04},
    ]
    spec, data = curves.curve_vega(metrics, curve)
    fig = curves.curve_figure(metrics, curve)
    lines = data[data["kind"] == "line"]
    assert spec["title"]["text"] == fig.layout.title.text
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == [t.name for t in fig.data]
    assert spec["layer"][0]["encoding"]["color"]["scale"]["range"] == [t.line.color for t in fig.data]
    for trace in fig.data:  # the same points, broken into the same segments
        segments, seg = [], 0
        for x, y in zip(trace.x, trace.y, strict=True):
            if x is None:
                seg += 1
            else:
                segments.append((f"{trace.name}/{seg}", x, y))
        mine = lines[lines["series"] == trace.name]
        assert list(zip(mine["segment"], mine["x"], mine["y"], strict=True)) == segments
    assert data.loc[data["kind"] == "rule", "x"].tolist() == [shape.x0 for shape in fig.layout.shapes]
    scale = spec["layer"][0]["encoding"]["y"]["scale"]
    if curve in curves.LOG_CURVES:
        assert scale == {"type": "log"} and fig.layout.yaxis.type == "log"
    else:
        assert scale["zero"] == (fig.layout.yaxis.rangemode == "tozero")
    assert curves.curve_vega(metrics[:2], curve)[0] == spec   # new rows change the data only


def test_regularised_variants_state_their_schedule_from_a_real_network():
    """DARTS-, beta-DARTS and SDARTS-RS keep a scalar beside the alphas; the live panel says what it is now, read
    from the network's own state at an epoch (not a number typed here)."""
    from engine import variants
    from engine.nn.supernet import SearchNetwork

    for variant, name, needle in [("darts_minus", "aux_skip_weight", "beta = "),
                                  ("beta_darts", "beta_weight", "lambda = "), ("sdarts_rs", "epsilon", "epsilon = ")]:
        model = SearchNetwork(4, 10, 3, nodes=4, variant=variant)
        model.start_epoch(1, 3)
        arch = {k: np.asarray(v) for k, v in model.arch_numpy().items()}
        text = variants.state_text(arch, variant)
        value = float(arch[name].reshape(-1)[0])
        assert text is not None and needle in text and f"{value:.3g}"[:4] in text, (variant, text, value)
    a = np.zeros((14, 8))
    assert variants.state_text({"normal": a, "reduce": a}, "darts") is None
    pc = SearchNetwork(4, 10, 3, nodes=4, variant="beta_darts", variant_options={"beta_base": "pc_darts", "pc_k": 2})
    arch = {k: np.asarray(v) for k, v in pc.arch_numpy().items()}
    assert len(variant_state.variant_state_figures("beta_darts", arch)) == 1  # on PC-DARTS: its edge weights too


def test_the_perplexity_curve_joins_the_epoch_measurements_and_dots_them_on_a_log_axis():
    metrics = [{"step": s, "epoch": s // 3, "train_ppl": 3000.0 - s, "valid_ppl": 2500.0 - s} for s in range(1, 7)]
    metrics[2]["epoch_valid_ppl"], metrics[5]["epoch_valid_ppl"] = 340.0, 300.0
    spec, data = curves.curve_vega(metrics, "perplexity")
    whole = data[(data["series"] == "valid, epoch end") & (data["kind"] == "line")]
    assert whole["x"].tolist() == [3.0, 6.0] and whole["segment"].nunique() == 1  # one line across the epochs
    assert data.loc[data["kind"] == "dot", "y"].tolist() == [340.0, 300.0]
    train = data[(data["series"] == "train") & (data["kind"] == "line")]
    assert train["segment"].nunique() == 3  # running means break at each epoch's start (steps 1-2, 3-5, 6)
    assert spec["layer"][0]["encoding"]["y"]["scale"] == {"type": "log"}
    fig = curves.curve_figure(metrics, "perplexity")
    assert fig.layout.yaxis.type == "log" and fig.data[2].mode == "lines+markers"

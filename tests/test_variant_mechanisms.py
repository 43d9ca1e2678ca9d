"""Each variant's mechanism against its definition (engine/variants/, docs/variants.md).

PC-DARTS sends exactly C/K channels through the ops and ranks edges by softmax(alpha) * edge weight; GDAS
runs one op per edge and passes the soft gradient straight through; FairDARTS's weights are independent
sigmoids, its zero-one loss reaches the architecture gradient, and its thresholded cells (fewer than two
inputs per node, or none) build, count, draw and export; DrNAS's samples lie on the simplex with the
Dirichlet's mean. Plus the config's refusals and the architecture warm-up.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import variants
from engine.core.config import ConfigError
from engine.nn.network import NetworkCIFAR, count_cifar_parameters, count_parameters
from engine.nn.supernet import MixedOp, SearchNetwork, channel_shuffle
from engine.runs import rundir
from engine.runs.export import cell_dot, genotype_to, render_svg
from engine.search.architect import Architect
from engine.search.config import PRESETS, SearchConfig, from_preset
from engine.search.loop import run_search
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, num_edges
from engine.space.cnn.genotype import Genotype
from engine.variants.drnas import concentration
from engine.variants.fair_darts import threshold_cell, zero_one_loss
from engine.variants.gdas import gumbel_hard, tau_at
from engine.variants.pc_darts import edge_weights

OPS = len(PRIMITIVES)
NONE = PRIMITIVES.index("none")


def _count_op_inputs(net: torch.nn.Module) -> tuple[list[int], list]:
    """Forward pre-hooks on every candidate op of every mixed op and every layer inside it (the fast path runs
    an op's layers itself, sharing the leading ReLU and the pools): (channels of each call's input, handles)."""
    seen: list[int] = []
    handles = [layer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
               for mixed in net.modules() if isinstance(mixed, MixedOp) for op in mixed.ops
               for layer in op.modules()]
    return seen, handles


# ---------------------------------------------------------------- PC-DARTS
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("fast", [True, False])
def test_pc_darts_sends_exactly_c_over_k_channels_through_the_ops(stride, fast):
    mixed = MixedOp(16, stride, fast, k=4)
    if fast:
        mixed.use_channels_last()
    seen, _ = _count_op_inputs(mixed)
    x = torch.randn(2, 16, 8, 8)
    out = mixed(x, torch.softmax(torch.randn(OPS), 0))
    assert out.shape == (2, 16, 8 // stride, 8 // stride)
    assert seen and set(seen) == {4}  # 16 / 4, for every op that ran
    # with zero op weights only the bypass is left: channels 4..15 of x (max-pooled at stride 2), shuffled
    out0 = mixed(x, torch.zeros(OPS))
    rest = x[:, 4:] if stride == 1 else F.max_pool2d(x[:, 4:], 2, 2)
    want = channel_shuffle(torch.cat([torch.zeros_like(rest[:, :4]), rest], 1), 4)
    torch.testing.assert_close(out0, want)


def test_channel_shuffle_interleaves_the_k_groups():
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_pc_darts_supernet_feeds_c_over_k_in_every_cell_and_learns_edge_weights():
    net = SearchNetwork(8, 3, 3, variant="pc_darts", nodes=2, variant_options={"pc_k": 4})
    seen, _ = _count_op_inputs(net)
    loss = net.loss(torch.randn(2, 3, 8, 8), torch.tensor([0, 2]))
    assert set(seen) == {2, 4, 8}  # C=8 in the normal cell, 16 and 32 in the reduction cells: a quarter each
    assert [k for k in net.arch()] == ["normal", "reduce", "betas_normal", "betas_reduce"]
    grads = torch.autograd.grad(loss, net.arch_parameters())
    assert all(g.abs().sum() > 0 for g in grads)  # the betas are architecture parameters with gradients


def test_pc_darts_edge_weights_normalise_over_each_node_and_rank_edges():
    betas = torch.randn(num_edges(4))
    w = edge_weights(betas)
    starts = [0, 2, 5, 9, 14]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        assert w[a:b].sum().item() == pytest.approx(1.0)
    np.testing.assert_allclose(edge_weights(betas.numpy().astype(np.float64)), w.numpy(), atol=1e-6)
    # node 0: edge 0 has the strongest op, but edge 1's edge weight is far larger: PC-DARTS keeps edge 1 first
    alphas = np.zeros((14, OPS))
    alphas[0, PRIMITIVES.index("sep_conv_3x3")] = 3.0
    alphas[1, PRIMITIVES.index("max_pool_3x3")] = 1.0
    arch = {"normal": alphas, "reduce": alphas, "betas_normal": np.r_[-5.0, 5.0, np.zeros(12)],
            "betas_reduce": np.zeros(14)}
    g = variants.derive(arch, "pc_darts")
    assert g.normal[:2] == (("max_pool_3x3", 1), ("sep_conv_3x3", 0))
    assert g.reduce[:2] == (("sep_conv_3x3", 0), ("max_pool_3x3", 1))  # equal edge weights: the DARTS order


# ---------------------------------------------------------------- GDAS
def test_gdas_runs_one_op_per_edge_and_records_it():
    net = SearchNetwork(4, 3, 3, variant="gdas", nodes=3)
    calls: list[tuple[int, int]] = []
    for c, cell in enumerate(net.cells):
        for e, mixed in enumerate(cell.edges):
            for k, op in enumerate(mixed.ops):
                op.register_forward_hook(lambda m, a, o, key=(c, e, k): calls.append(key))
    torch.manual_seed(0)
    net.loss(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    edges = num_edges(3)
    assert len(calls) == len(net.cells) * edges  # one op per edge per forward, not 8
    assert len({(c, e) for c, e, _ in calls}) == len(net.cells) * edges
    for c, e, k in calls:  # the op that ran is the one recorded as sampled
        kind = "reduce" if net.cells[c].reduction else "normal"
        assert int(getattr(net, f"{kind}_sampled")[e]) == k
    assert set(net.arch_numpy()) == {"normal", "reduce", "tau", "normal_sampled", "reduce_sampled"}


def test_gdas_hard_sample_is_one_hot_and_its_gradient_is_the_soft_one():
    alpha = torch.randn(14, OPS, dtype=torch.float64, requires_grad=True)
    v = torch.randn(14, OPS, dtype=torch.float64)
    torch.manual_seed(3)
    hard, probs, index = gumbel_hard(alpha, 0.7)
    torch.testing.assert_close(hard.detach(), F.one_hot(index, OPS).double(), atol=1e-12, rtol=0)
    (g_hard,) = torch.autograd.grad((hard * v).sum(), alpha, retain_graph=True)
    torch.manual_seed(3)  # the same noise, the soft relaxation
    _, probs2, _ = gumbel_hard(alpha, 0.7)
    (g_soft,) = torch.autograd.grad((probs2 * v).sum(), alpha)
    torch.testing.assert_close(g_hard, g_soft)
    # through an edge: the sampled op's output times its hard weight (value 1, the soft weight's gradient)
    mixed = MixedOp(4, 1, False)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    mixed.double()
    k = int(index[0])
    out = mixed(x, hard[0], k)
    torch.testing.assert_close(out, mixed.ops[k](x))
    (g_edge,) = torch.autograd.grad(out.sum(), alpha, retain_graph=True)
    (g_want,) = torch.autograd.grad(probs[0, k] * mixed.ops[k](x).detach().sum(), alpha)
    torch.testing.assert_close(g_edge, g_want)


def test_gdas_temperature_anneals_and_is_recorded_beside_the_alphas(tmp_path, smoke):
    assert tau_at(0, 5, 10.0, 0.1) == 10.0 and tau_at(4, 5, 10.0, 0.1) == pytest.approx(0.1)
    taus = [tau_at(e, 5, 10.0, 0.1) for e in range(5)]
    assert taus == sorted(taus, reverse=True)
    cfg = smoke.replace(variant="gdas", epochs=3)
    run = tmp_path / "run"
    run.mkdir()
    assert run_search(cfg, run) == "finished"
    rows = rundir.read_alphas(run)
    by_epoch = {r["epoch"]: r["tau"] for r in rows}
    assert by_epoch == pytest.approx({0: 10.0, 1: 5.05, 2: 0.1})
    for r in rows:
        assert all(0 <= int(k) < OPS for kind in CELL_KINDS for k in r[f"{kind}_sampled"])
        w = variants.record_weights(r, "gdas")
        a = np.asarray(r["normal"]) / r["tau"]
        want = np.exp(a - a.max(1, keepdims=True))
        np.testing.assert_allclose(w["normal"], want / want.sum(1, keepdims=True), atol=1e-9)


def test_gdas_derives_the_two_strongest_op_input_pairs_of_each_node():
    a = np.zeros((num_edges(2), OPS))
    a[0, PRIMITIVES.index("sep_conv_3x3")] = 4.0
    a[0, PRIMITIVES.index("sep_conv_5x5")] = 3.0  # the same edge twice: the official code may keep both
    a[1, PRIMITIVES.index("skip_connect")] = 1.0
    a[1, NONE] = 9.0  # `none` is never kept, and it crushes the rest of its edge
    g = variants.derive({"normal": a, "reduce": a, "tau": np.array(10.0)}, "gdas")
    assert g.normal[:2] == (("sep_conv_3x3", 0), ("sep_conv_5x5", 0))


# ---------------------------------------------------------------- FairDARTS
def test_fair_darts_weights_are_independent_sigmoids():
    a = torch.randn(14, OPS, dtype=torch.float64) * 3
    w = variants.op_weights({"normal": a.numpy(), "reduce": a.numpy(), "threshold": np.array(0.85)}, "fair_darts")
    assert ((w["normal"] > 0) & (w["normal"] < 1)).all()
    np.testing.assert_allclose(w["normal"], torch.sigmoid(a).numpy())
    assert not np.allclose(w["normal"].sum(1), 1.0)  # no competition: rows need not sum to one
    b = a.clone()
    b[0, 3] += 2.0
    w2 = variants.op_weights({"normal": b.numpy(), "reduce": a.numpy(), "threshold": np.array(0.85)}, "fair_darts")
    changed = np.argwhere(~np.isclose(w2["normal"], w["normal"]))
    assert changed.tolist() == [[0, 3]]


def test_fair_darts_zero_one_loss_reaches_the_architecture_gradient():
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, variant="fair_darts", nodes=2, fast=False)
    a = {kind: torch.tensor([[0.0, 1.0] * 4] * num_edges(2)) for kind in CELL_KINDS}
    real = [k for k in range(OPS) if k != NONE]
    want = -torch.mean((torch.sigmoid(a["normal"][:, real]) - 0.5) ** 2)
    torch.testing.assert_close(zero_one_loss(a), want)
    w_opt = torch.optim.SGD(net.weight_parameters(), 0.1, momentum=0.9)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    grads, _ = Architect(net, 1e-3).gradient(x, y, x, y, 0.1, w_opt)
    loss = F.cross_entropy(net(x), y) + 10.0 * zero_one_loss(net.arch())
    want_grads = torch.autograd.grad(loss, net.arch_parameters())
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)
    # the extra term pushes sigmoids away from 0.5: its gradient has the opposite sign of alpha
    alpha = torch.tensor([[0.5, -0.5] * 4], requires_grad=True)
    (g,) = torch.autograd.grad(zero_one_loss({"normal": alpha, "reduce": alpha}), alpha)
    assert (torch.sign(g[0, real]) == -torch.sign(alpha[0, real].detach())).all()


def _fair_cell() -> np.ndarray:
    """Sigmoid weights of a 4-node cell: node 0 keeps 2 inputs, node 1 one, node 2 none, node 3 one edge above the
    threshold from node 2 (dropped: node 2 has no inputs) and one from c_{k-1}."""
    w = np.full((14, OPS), 0.1)
    w[0, PRIMITIVES.index("sep_conv_3x3")] = 0.95  # node 0 <- 0
    w[1, PRIMITIVES.index("skip_connect")] = 0.9   # node 0 <- 1
    w[3, PRIMITIVES.index("dil_conv_3x3")] = 0.86  # node 1 <- 1
    w[2, PRIMITIVES.index("max_pool_3x3")] = 0.5   # node 1 <- 0: below
    w[13, PRIMITIVES.index("sep_conv_5x5")] = 0.99  # node 3 <- node 2 (empty)
    w[10, PRIMITIVES.index("avg_pool_3x3")] = 0.9   # node 3 <- 1
    w[:, NONE] = 0.999  # never counted
    return w


def test_fair_darts_threshold_derivation_keeps_zero_one_or_two_inputs_per_node():
    pairs, fanin = threshold_cell(_fair_cell(), 0.85)
    assert fanin == [2, 1, 0, 1]
    assert pairs == [("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 1), ("avg_pool_3x3", 1)]
    alphas = np.log(_fair_cell() / (1 - _fair_cell()))  # logit: sigmoid gives the weights back
    g = variants.derive({"normal": alphas, "reduce": alphas, "threshold": np.array(0.85)}, "fair_darts")
    assert g.normal_fanin == (2, 1, 0, 1) and g.normal_concat == (2, 3, 5)
    # a higher threshold (recorded beside the alphas) keeps less
    g2 = variants.derive({"normal": alphas, "reduce": alphas, "threshold": np.array(0.92)}, "fair_darts")
    assert g2.fanin("normal") == (1, 0, 0, 0)
    # nothing above the threshold: node 0's strongest edge is kept, so the cell is still a cell
    pairs, fanin = threshold_cell(np.full((14, OPS), 0.2), 0.85)
    assert fanin == [1, 0, 0, 0] and len(pairs) == 1


def test_a_thresholded_genotype_builds_counts_draws_and_exports():
    alphas = np.log(_fair_cell() / (1 - _fair_cell()))
    g = variants.derive({"normal": alphas, "reduce": alphas, "threshold": np.array(0.85)}, "fair_darts")
    net = NetworkCIFAR(8, 10, 5, False, g)
    logits, _ = net(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 10)
    assert count_parameters(net) == count_cifar_parameters(8, 10, 5, g)
    dot = cell_dot(g, "normal")
    op_edges = [line for line in dot.splitlines() if " -> " in line and "c_{k}" not in line.split(" -> ")[1]]
    assert len(op_edges) == sum(g.fanin("normal")) == 4
    assert b"<svg" in render_svg(dot)
    assert Genotype.parse(genotype_to("json", g)) == g
    text = genotype_to("darts", g)
    assert "normal_fanin=[2, 1, 0, 1]" in text and Genotype.parse(text) == g

    from app.figures import tables
    frame = tables.genotype_frame(g)
    assert len(frame) == 2 * 4  # one row per kept (op, input) pair of both cells


# ---------------------------------------------------------------- DrNAS
def test_drnas_samples_lie_on_the_simplex_and_average_to_the_dirichlet_mean():
    torch.manual_seed(11)
    alpha = torch.randn(14, OPS) * 1.5
    v = variants.make_variant("drnas")
    samples = torch.stack([v.forward_weights({"normal": alpha, "reduce": alpha})["normal"] for _ in range(3000)])
    assert (samples > 0).all()
    torch.testing.assert_close(samples.sum(-1), torch.ones(3000, 14), atol=1e-5, rtol=0)
    conc = concentration(alpha)
    mean = conc / conc.sum(-1, keepdim=True)
    # the standard error of a mean of 3000 draws is below 0.01 for every entry
    torch.testing.assert_close(samples.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(v.weights({"normal": alpha, "reduce": alpha})["normal"], mean)


def test_drnas_sample_is_reparameterised_and_its_kl_regulariser_is_the_papers():
    alpha = torch.zeros(14, OPS, requires_grad=True)
    v = variants.make_variant("drnas", {"drnas_kl_weight": 0.5})
    w = v.forward_weights({"normal": alpha, "reduce": alpha})["normal"]
    (g,) = torch.autograd.grad((w * torch.arange(OPS, dtype=torch.float32)).sum(), alpha)
    assert g.abs().sum() > 0  # gradients flow through the sample
    kl0 = v.arch_loss_extra({"normal": alpha, "reduce": alpha})
    assert kl0.item() == pytest.approx(0.0, abs=1e-6)  # ELU(0) + 1 = 1: the prior itself
    a = torch.randn(14, OPS)
    kl = v.arch_loss_extra({"normal": a, "reduce": a})
    want = 0.5 * 2 * torch.distributions.kl_divergence(torch.distributions.Dirichlet(F.elu(a) + 1),
                                                       torch.distributions.Dirichlet(torch.ones(OPS))).sum()
    torch.testing.assert_close(kl, want)
    assert variants.make_variant("drnas", {"drnas_kl_weight": 0.0}).arch_loss_extra({"normal": a, "reduce": a}) is None


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("changes,field,needle", [
    ({"variant": "snas"}, "variant", "pc_darts"),
    ({"pc_k": 2}, "pc_k", "variant=pc_darts"),
    ({"variant": "gdas", "fair_threshold": 0.9}, "fair_threshold", "variant=fair_darts"),
    ({"variant": "pc_darts", "init_channels": 6}, "pc_k", "divisor of init_channels=6"),
    ({"variant": "gdas", "gdas_tau_min": 20.0}, "gdas_tau_min", "anneals down"),
    ({"variant": "gdas", "order": "second"}, "order", "samples"),
    ({"variant": "drnas", "order": "second"}, "order", "Dirichlet"),
    ({"variant": "fair_darts", "order": "second"}, "order", "first order"),
    ({"arch_warmup_epochs": 50}, "arch_warmup_epochs", "epochs-1=49"),
    ({"variant": "fair_darts", "fair_threshold": 1.0}, "fair_threshold", "strictly between"),
])
def test_bad_variant_settings_are_refused_with_one_line_naming_the_field(changes, field, needle):
    with pytest.raises(ConfigError) as err:
        SearchConfig(**changes)
    assert err.value.field == field and needle in str(err.value) and "\n" not in str(err.value)


def test_every_variant_works_with_the_presets_and_has_a_paper_preset():
    for preset in ("smoke", "demo", "darts-cifar10-first-order"):
        for name in variants.variant_names():
            assert from_preset(preset, {"variant": name}).variant == name
    for name in ("pc_darts", "gdas", "fair_darts"):
        assert from_preset("darts-cifar10", {"variant": name, "order": "first"}).variant == name
    papers = {"pc-darts-cifar10": "pc_darts", "gdas-cifar10": "gdas", "fair-darts-cifar10": "fair_darts",
              "drnas-cifar10": "drnas"}
    for preset, name in papers.items():
        assert PRESETS[preset].variant == name and PRESETS[preset].dataset == "cifar10"
    assert PRESETS["pc-darts-cifar10"].arch_warmup_epochs == 15 and PRESETS["pc-darts-cifar10"].batch_size == 256


def test_each_variant_declares_its_options_once_and_the_config_reads_them():
    """One declaration per option: the variant's defaults, SearchConfig's and `--set`'s types are all read from it."""
    cfg, keys = SearchConfig(), SearchConfig.known_keys()
    for name in variants.variant_names():
        cls = variants.variant_class(name)
        assert cls.summary and cls.paper and (cls.lesson or name == "darts"), name
        live = variants.make_variant(name)
        for option in cls.options:
            assert live.config[option.name] == option.default == getattr(cfg, option.name), option.name
            assert keys[option.name][0] == option.default and option.label and option.help and option.allowed
            assert variants.option_spec(option.name) is option


def test_arch_warmup_freezes_the_architecture_for_its_epochs(tmp_path, smoke):
    cfg = smoke.replace(variant="pc_darts", epochs=2, arch_warmup_epochs=1, a_lr=0.05)
    run = tmp_path / "run"
    run.mkdir()
    assert run_search(cfg, run) == "finished"
    rows = rundir.read_alphas(run)
    first_epoch = [r for r in rows if r["epoch"] == 0]
    second = [r for r in rows if r["epoch"] == 1]
    assert first_epoch and second
    for key in ("normal", "betas_normal"):
        for r in first_epoch[1:]:
            assert r[key] == first_epoch[0][key]
        assert second[-1][key] != first_epoch[0][key]
    metrics = rundir.read_metrics(run)
    assert all(np.isfinite(m["valid_loss"]) for m in metrics)  # still measured while frozen


# ---------------------------------------------------------------- the sidebar
def _setup_script():
    import streamlit as st

    from app.panels import setup

    with st.sidebar:
        setup.render(lambda config: None, busy=False)


def test_sidebar_shows_the_chosen_variants_options_and_validates_them():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_setup_script, default_timeout=60).run()
    assert not at.exception and not at.sidebar.error
    keys = {w.key for w in at.number_input}
    assert "setup.demo.darts.arch_warmup_epochs" in keys and not any(k.endswith("pc_k") for k in keys)
    at.selectbox(key="setup.demo.variant").set_value("pc_darts").run()
    assert at.number_input(key="setup.demo.pc_darts.pc_k").value == 4
    at.number_input(key="setup.demo.pc_darts.pc_k").set_value(3).run()
    errors = [e.value for e in at.sidebar.error]
    assert any("K (partial channels): 3" in e and "divisor of Channels (C)=8" in e for e in errors), errors
    assert next(b for b in at.button if b.label == "Start search").disabled
    at.selectbox(key="setup.demo.variant").set_value("gdas").run()
    assert not at.sidebar.error
    at.number_input(key="setup.demo.gdas.gdas_tau_min").set_value(20.0).run()
    assert any("anneals down" in e.value for e in at.sidebar.error)
    # a paper preset with another variant: that preset's own options go back to their defaults
    at.selectbox(key="setup.preset").set_value("drnas-cifar10").run()
    assert at.number_input(key="setup.drnas-cifar10.drnas.drnas_kl_weight").value == 0.0
    at.selectbox(key="setup.drnas-cifar10.variant").set_value("darts").run()
    assert not at.exception and not at.sidebar.error


def _state_script(variant: str):
    from app.panels import variant_state
    from engine.nn.supernet import SearchNetwork
    from engine.runs.snapshot import Snapshot

    net = SearchNetwork(4, 3, 3, variant=variant, nodes=4)
    snap = Snapshot(run_id="r", run_dir="", state="running", config={"variant": variant},
                    alphas=net.arch_numpy(), weights=net.op_weights())
    variant_state.render(snap, key="t")


@pytest.mark.parametrize("name,charts", [("darts", 0), ("pc_darts", 1), ("gdas", 2), ("fair_darts", 2), ("drnas", 2)])
def test_the_live_panel_draws_each_variants_state(name, charts):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_state_script, args=(name,), default_timeout=60).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == charts

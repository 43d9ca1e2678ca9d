"""The regularised variants against their definitions (engine/variants/, docs/variants.md).

DARTS-: every edge adds beta * skip(x), beta from 1 at the first step linearly to 0 at the last. beta-DARTS: the
Beta-Decay loss is lambda * mean logsumexp(alpha), its gradient lambda/|E| * softmax(alpha) pulls the strongest
alphas down most, on DARTS or on PC-DARTS. SDARTS-RS: the weight step sees softmax(alpha) + U[-eps, eps] noise
(projected back onto the simplex), the alphas are not moved by it and the architecture step never sees it.
Resume, derivation and second order of all three are in the registry-wide tests (tests/test_variants.py).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import variants
from engine.core.config import ConfigError
from engine.nn.ops import FactorizedReduce
from engine.nn.supernet import MixedOp, SearchNetwork
from engine.runs import rundir
from engine.search.architect import Architect
from engine.search.config import PRESETS, SearchConfig, from_preset
from engine.search.step import bilevel_step
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, num_edges
from engine.variants.beta_darts import beta_decay_loss, beta_weight_at
from engine.variants.darts_minus import aux_weight_at
from engine.variants.sdarts_rs import epsilon_at, perturb, project_rows

OPS = len(PRIMITIVES)


@pytest.fixture
def searched(search_run, smoke):
    """`searched(**changes)`: `smoke` with a_lr 0.05 and `changes`, searched to its end: (config, alphas rows)."""
    def run(**changes):
        cfg = smoke.replace(**{"a_lr": 0.05, **changes})
        run_dir, state = search_run("run", cfg)
        assert state == "finished"
        return cfg, rundir.read_alphas(run_dir)
    return run


# ---------------------------------------------------------------- DARTS-
def test_darts_minus_aux_weight_is_one_at_the_first_step_and_zero_at_the_last(searched):
    assert [aux_weight_at(e, 5, 1.0) for e in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    _, rows = searched(variant="darts_minus", epochs=3)
    assert rows[0]["step"] == 1 and rows[0]["aux_skip_weight"] == 1.0  # the weight step 1 ran with
    assert rows[-1]["aux_skip_weight"] == 0.0
    by_epoch = {r["epoch"]: r["aux_skip_weight"] for r in rows}
    assert by_epoch == {0: 1.0, 1: 0.5, 2: 0.0}


@pytest.mark.parametrize("stride", [1, 2])
def test_darts_minus_edge_output_is_the_mixed_op_plus_beta_times_the_skip(stride):
    torch.manual_seed(0)
    mixed = MixedOp(4, stride, fast=False, aux=True).double()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.softmax(torch.randn(OPS, dtype=torch.float64), 0)
    plain = mixed(x, w)  # no aux weight given: the plain mixed op
    skip = x if stride == 1 else mixed.aux(x)
    assert stride == 1 or isinstance(mixed.aux, FactorizedReduce)
    for beta in (1.0, 0.3, 0.0):
        torch.testing.assert_close(mixed(x, w, aux_weight=torch.tensor(beta, dtype=torch.float64)),
                                   plain + beta * skip)


def test_darts_minus_supernet_with_beta_zero_is_the_darts_supernet():
    torch.manual_seed(0)
    minus = SearchNetwork(4, 3, 3, variant="darts_minus", nodes=2, fast=False)
    darts = SearchNetwork(4, 3, 3, variant="darts", nodes=2, fast=False)
    state = {k: v for k, v in minus.state_dict().items() if ".aux." not in k and k != "aux_skip_weight"}
    darts.load_state_dict(state)
    minus.eval()
    darts.eval()
    x = torch.randn(2, 3, 8, 8)
    assert minus.aux_skip_weight.item() == 1.0
    assert not torch.allclose(minus(x), darts(x))  # the skip is there
    minus.start_epoch(4, 5)  # the last epoch: beta = 0
    torch.testing.assert_close(minus(x), darts(x))
    assert variants.derive(minus.arch_numpy(), "darts_minus") == darts.genotype()


# ---------------------------------------------------------------- beta-DARTS
def test_beta_decay_loss_is_its_formula_and_its_gradient_pulls_the_strongest_alphas_down():
    a = {kind: torch.randn(num_edges(4), OPS, dtype=torch.float64, requires_grad=True) for kind in CELL_KINDS}
    n, r = (a[k].detach().numpy() for k in CELL_KINDS)
    want = np.mean([np.log(np.exp(row).sum()) for row in np.concatenate([n, r])])
    assert beta_decay_loss(a).item() == pytest.approx(want, rel=1e-12)
    v = variants.make_variant("beta_darts")
    assert v.arch_loss_extra({**a, "beta_weight": torch.tensor(0.0)}) is None  # lambda = 0 at the first epoch
    loss = v.arch_loss_extra({**a, "beta_weight": torch.tensor(7.0, dtype=torch.float64)})
    assert loss.item() == pytest.approx(7.0 * want, rel=1e-12)
    grads = torch.autograd.grad(loss, [a["normal"], a["reduce"]])
    edges = 2 * num_edges(4)
    for kind, g in zip(CELL_KINDS, grads, strict=True):
        torch.testing.assert_close(g, 7.0 / edges * torch.softmax(a[kind].detach(), -1))
        # a descent step lowers every alpha, the largest most: each edge's spread (and its softmax's) shrinks
        after = a[kind].detach() - 10.0 * g
        assert (after < a[kind].detach()).all()
        assert (after.std(-1) < a[kind].detach().std(-1)).all()
        assert (torch.softmax(after, -1).std(-1) < torch.softmax(a[kind].detach(), -1).std(-1)).all()


def test_beta_decay_weight_grows_linearly_and_reaches_the_architecture_gradient(searched):
    assert [beta_weight_at(e, 4, 50.0) for e in range(4)] == [0.0, 12.5, 25.0, 37.5]
    _, rows = searched(variant="beta_darts", epochs=3, beta_decay_weight=30.0)
    assert {r["epoch"]: r["beta_weight"] for r in rows} == {0: 0.0, 1: 10.0, 2: 20.0}
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, variant="beta_darts", nodes=2, fast=False)
    net.start_epoch(1, 3)  # lambda = 50 / 3
    w_opt = torch.optim.SGD(net.weight_parameters(), 0.1)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    grads, _ = Architect(net, 1e-3).gradient(x, y, x, y, 0.1, w_opt)
    want = torch.autograd.grad(F.cross_entropy(net(x), y) + 50.0 / 3 * beta_decay_loss(net.arch()),
                               net.arch_parameters())
    for g, w in zip(grads, want, strict=True):
        torch.testing.assert_close(g, w)


def test_beta_darts_on_pc_darts_has_partial_channels_edge_weights_and_the_regulariser(searched):
    net = SearchNetwork(8, 3, 3, variant="beta_darts", nodes=2,
                        variant_options={"beta_base": "pc_darts", "pc_k": 4})
    assert net.variant.partial_channels == 4
    assert list(net.arch()) == ["normal", "reduce", "betas_normal", "betas_reduce", "beta_weight"]
    assert [p.shape for p in net.arch_parameters()] == [a.shape for a in list(net.arch().values())[:4]]
    seen = []
    for m in net.modules():
        if isinstance(m, MixedOp):
            for op in m.ops:
                op.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[1]))
    net.start_epoch(1, 2)
    loss = net.loss(torch.randn(2, 3, 8, 8), torch.tensor([0, 2]))
    assert set(seen) == {2, 4, 8}  # a quarter of C, 2C, 4C
    extra = net.variant.arch_loss_extra(net.arch())
    assert extra.item() == pytest.approx(25.0 * beta_decay_loss(net.arch()).item())
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(loss + extra, net.arch_parameters()))
    # derivation is PC-DARTS's (op weights times edge weights)
    arch = net.arch_numpy()
    mine = variants.derive(arch, {"variant": "beta_darts", "beta_base": "pc_darts"})
    assert mine == variants.derive(arch, "pc_darts")
    cfg, rows = searched(variant="beta_darts", beta_base="pc_darts", pc_k=2)
    assert {"betas_normal", "beta_weight"} <= set(rows[-1])


# ---------------------------------------------------------------- SDARTS-RS
def test_sdarts_noise_is_uniform_in_minus_eps_eps_and_the_weights_stay_on_the_simplex():
    assert epsilon_at(0, 50, 0.03, 0.3) == 0.03 and epsilon_at(25, 50, 0.03, 0.3) == pytest.approx(0.165)
    torch.manual_seed(0)
    w = torch.softmax(torch.randn(20000, OPS, dtype=torch.float64), -1)
    out, noise = perturb(w, 0.3)
    assert noise.abs().max() <= 0.3 and noise.min() < -0.29 and noise.max() > 0.29
    assert abs(noise.mean().item()) < 0.005 and noise.var().item() == pytest.approx(0.09 / 3, rel=0.02)
    hist = torch.histc(noise, bins=6, min=-0.3, max=0.3) / noise.numel()
    torch.testing.assert_close(hist, torch.full((6,), 1 / 6, dtype=torch.float64), atol=0.005, rtol=0)
    torch.testing.assert_close(out, project_rows(w + noise))
    assert (out >= 0).all() and (out <= 1).all()
    torch.testing.assert_close(out.sum(-1), torch.ones(20000, dtype=torch.float64))
    # an all-negative row keeps its largest entry (the official clip)
    torch.testing.assert_close(project_rows(torch.tensor([[-0.2, -0.1, -0.3]])), torch.tensor([[0.0, 1.0, 0.0]]))


def _sdarts_net():
    torch.manual_seed(1)
    net = SearchNetwork(4, 3, 3, variant="sdarts_rs", nodes=2, fast=False)
    net.start_epoch(9, 10)  # eps near its largest
    return net


def test_sdarts_perturbs_the_weight_step_only_and_leaves_the_alphas_alone():
    cfg = SearchConfig(variant="sdarts_rs", w_momentum=0.0, w_weight_decay=0.0, w_grad_clip=1e9, a_lr=0.0,
                       a_weight_decay=0.0)
    net = _sdarts_net()
    eps = float(net.epsilon)
    assert eps == pytest.approx(0.03 + 0.27 * 0.9)
    ref = copy.deepcopy(net)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    xv, yv = torch.randn(4, 3, 8, 8), torch.tensor([1, 1, 0, 2])
    alphas = [a.detach().clone() for a in net.arch_parameters()]
    w0 = [w.detach().clone() for w in net.weight_parameters()]
    lr = 1.0
    w_opt = torch.optim.SGD(net.weight_parameters(), lr)
    architect = Architect(net, 0.0, a_weight_decay=0.0)
    rng = torch.get_rng_state()
    out = bilevel_step(net, architect, w_opt, (x, y), (xv, yv), cfg, torch.device("cpu"))
    assert out.finite
    for a, before in zip(net.arch_parameters(), alphas, strict=True):
        assert torch.equal(a, before)  # the perturbation never touches the alphas
    got = [(before - w.detach()) / lr for w, before in zip(net.weight_parameters(), w0, strict=True)]

    # the weight gradient at the perturbed op weights: the same noise (the architecture step draws none)
    torch.set_rng_state(rng)
    soft = ref.variant.weights(ref.arch())
    perturbed = {kind: perturb(soft[kind], eps)[0] for kind in CELL_KINDS}
    for kind in CELL_KINDS:
        assert 0 < (perturbed[kind] - soft[kind]).abs().max() <= 2 * eps  # noise then projection
    ref.variant.weight_step_weights = lambda arch: perturbed
    want = torch.autograd.grad(F.cross_entropy(ref(x, weight_step=True), y), ref.weight_parameters(),
                               allow_unused=True)
    ref.variant.weight_step_weights = ref.variant.forward_weights  # unperturbed: another gradient
    plain = torch.autograd.grad(F.cross_entropy(ref(x, weight_step=True), y), ref.weight_parameters(),
                                allow_unused=True)
    pairs = [(g, w, p) for g, w, p in zip(got, want, plain, strict=True) if w is not None]
    for g, w, _ in pairs:
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-4)
    assert max((w - p).abs().max().item() for _, w, p in pairs) > 1e-4


def test_sdarts_architecture_step_sees_no_noise():
    net = _sdarts_net()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    w_opt = torch.optim.SGD(net.weight_parameters(), 0.1)
    for order in ("first", "second"):
        architect = Architect(net, 1e-3, order=order)
        torch.manual_seed(5)
        g1, _ = architect.gradient(x, y, x, y, 0.1, w_opt)
        torch.manual_seed(6)  # other noise would change a perturbed gradient
        g2, _ = architect.gradient(x, y, x, y, 0.1, w_opt)
        for a, b in zip(g1, g2, strict=True):
            assert torch.equal(a, b)
    want = torch.autograd.grad(F.cross_entropy(net(x), y), net.arch_parameters())
    first, _ = Architect(net, 1e-3).gradient(x, y, x, y, 0.1, w_opt)
    for a, b in zip(first, want, strict=True):
        torch.testing.assert_close(a, b)
    # readers draw the unperturbed softmax
    np.testing.assert_allclose(variants.op_weights(net.arch_numpy(), "sdarts_rs")["normal"],
                               torch.softmax(net.alphas_normal.detach().double(), -1).numpy(), atol=1e-7)


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("changes,field,needle", [
    ({"darts_minus_beta": 0.5}, "darts_minus_beta", "variant=darts_minus"),
    ({"variant": "darts_minus", "darts_minus_beta": -1.0}, "darts_minus_beta", "from 0 to 10"),
    ({"variant": "beta_darts", "beta_base": "gdas"}, "beta_base", "darts or pc_darts"),
    ({"variant": "beta_darts", "pc_k": 2}, "pc_k", "unless beta_base=pc_darts"),
    ({"variant": "beta_darts", "beta_base": "pc_darts", "pc_k": 3}, "pc_k", "divisor of init_channels"),
    ({"beta_base": "pc_darts"}, "beta_base", "variant=beta_darts"),
    ({"variant": "beta_darts", "beta_decay_weight": float("nan")}, "beta_decay_weight", "from 0 to 1e4"),
    ({"variant": "sdarts_rs", "sdarts_epsilon_min": 0.5}, "sdarts_epsilon_max", "the radius grows"),
    ({"variant": "sdarts_rs", "sdarts_epsilon_max": 1.5}, "sdarts_epsilon_max", "to 1"),
    ({"pc_k": 2}, "pc_k", "variant=pc_darts"),  # pc_k stays pc_darts's in the message
])
def test_bad_regularised_settings_are_refused_with_one_line(changes, field, needle):
    with pytest.raises(ConfigError) as err:
        SearchConfig(**changes)
    assert err.value.field == field and needle in str(err.value) and "\n" not in str(err.value)


def test_paper_presets():
    want = {"darts-minus-cifar10": "darts_minus", "beta-darts-cifar10": "beta_darts",
            "beta-pc-darts-cifar10": "beta_darts", "sdarts-rs-cifar10": "sdarts_rs"}
    for preset, name in want.items():
        c = PRESETS[preset]
        assert c.variant == name and c.dataset == "cifar10" and c.order == "first" and c.epochs == 50
    assert PRESETS["beta-darts-cifar10"].beta_decay_weight * 1 / 50 == 0.5  # the code's 50 * epoch / 100
    pc = PRESETS["beta-pc-darts-cifar10"]
    assert pc.beta_base == "pc_darts" and pc.batch_size == PRESETS["pc-darts-cifar10"].batch_size
    assert (PRESETS["sdarts-rs-cifar10"].sdarts_epsilon_min, PRESETS["sdarts-rs-cifar10"].sdarts_epsilon_max) == (
        0.03, 0.3)
    for name in ("darts_minus", "beta_darts", "sdarts_rs"):
        assert from_preset("darts-cifar10", {"variant": name}).order == "second"  # second order is accepted

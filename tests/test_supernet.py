"""The search network: exact parameter counts, alphas in the state dict, shapes, fast == plain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import variants
from engine.nn.ops import DilatedDepthwise
from engine.nn.supernet import SearchNetwork
from engine.search import config
from engine.search.build import build_network
from engine.space.cnn.cell import PRIMITIVES, num_edges


def _count(params: list[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def test_config_accepts_exactly_the_registered_variants():
    assert variants.variant_names()[0] == "darts"
    for name in variants.variant_names():
        assert config.SearchConfig(variant=name).variant == name
        assert variants.make_variant(name).name == name
    with pytest.raises(ValueError, match="unknown variant 'nope'; known: darts"):
        variants.make_variant("nope")
    with pytest.raises(config.ConfigError, match="variant='nope'"):
        config.SearchConfig(variant="nope")


@pytest.mark.parametrize("fast", [True, False])
def test_parameter_counts_are_the_papers(fast: bool):
    net = SearchNetwork(16, 10, 8, fast=fast)
    assert _count(net.weight_parameters()) == 1_930_618
    assert _count(net.arch_parameters()) == 224
    assert _count(SearchNetwork(8, 10, 5, fast=fast).weight_parameters()) == 394_210


def test_alphas_are_registered_parameters_in_the_state_dict():
    net = SearchNetwork(4, 3, 3)
    state = net.state_dict()
    for name in ("alphas_normal", "alphas_reduce"):
        assert state[name].shape == (14, len(PRIMITIVES))
        assert state[name].abs().max() < 1e-2  # 1e-3 * randn
    arch_ids = {id(p) for p in net.arch_parameters()}
    assert len(arch_ids) == 2 and not arch_ids & {id(p) for p in net.weight_parameters()}
    assert _count(net.arch_parameters()) + _count(net.weight_parameters()) == _count(list(net.parameters()))


def test_arch_numpy_and_op_weights_are_numpy_copies():
    net = SearchNetwork(4, 3, 3, nodes=3)
    arch, weights = net.arch_numpy(), net.op_weights()
    assert set(arch) == set(weights) == {"normal", "reduce"}
    assert arch["normal"].shape == (num_edges(3), len(PRIMITIVES)) == (9, 8)
    np.testing.assert_allclose(weights["reduce"].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(weights["normal"], torch.softmax(net.alphas_normal, -1).detach().numpy(), rtol=1e-6)
    arch["normal"][:] = 5.0
    weights["normal"][:] = 5.0
    assert net.alphas_normal.abs().max() < 1.0 and net.op_weights()["normal"].max() < 1.0


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("fast", [True, False])
def test_forward_shapes(in_channels: int, size: int, fast: bool):
    net = SearchNetwork(4, 5, 3, in_channels=in_channels, fast=fast)
    assert net(torch.randn(2, in_channels, size, size)).shape == (2, 5)


def test_odd_image_size():
    assert SearchNetwork(4, 5, 3, in_channels=1)(torch.randn(2, 1, 9, 9)).shape == (2, 5)


def test_build_network_and_model_args_rebuild_the_network():
    cfg = config.PRESETS["smoke"]
    net = build_network(cfg, in_channels=1, num_classes=7)
    twin = SearchNetwork(**net.model_args)
    twin.load_state_dict(net.state_dict())
    assert net.model_args["in_channels"] == 1 and net.classifier.out_features == 7
    assert _count(list(twin.parameters())) == _count(list(net.parameters()))


def test_fast_path_uses_channels_last_and_skips_none():
    fast, plain = SearchNetwork(4, 3, 3, fast=True), SearchNetwork(4, 3, 3, fast=False)
    assert fast.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.prepare_input(torch.randn(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
    assert PRIMITIVES.index("none") not in fast.cells[0].edges[0].live
    assert plain.cells[0].edges[0].live == tuple(range(len(PRIMITIVES)))
    # The dilated depthwise convs run by polyphase decomposition on the fast path only (engine/nn/ops.py).
    dil = PRIMITIVES.index("dil_conv_3x3")
    for net, phases in ((fast, True), (plain, False)):
        convs = [m for m in net.modules() if isinstance(m, DilatedDepthwise)]
        assert len(convs) == 2 * 14 * 3 and all(m.by_phases is phases for m in convs)
    assert isinstance(fast.cells[1].edges[0].ops[dil].op[1], DilatedDepthwise)
    # ...and the leading ReLU of the conv ops (and of FactorizedReduce, the skip at stride 2) runs once per edge
    convs = {PRIMITIVES.index(n) for n in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")}
    assert fast.cells[0].edges[0].shared_relu == convs
    assert fast.cells[1].edges[0].shared_relu == convs | {PRIMITIVES.index("skip_connect")}
    assert not plain.cells[1].edges[0].shared_relu


@pytest.mark.parametrize("in_channels", [1, 3])
def test_fast_and_plain_give_the_same_loss_and_alpha_gradients(in_channels: int):
    torch.manual_seed(0)
    plain = SearchNetwork(4, 3, 3, in_channels=in_channels, fast=False)
    with torch.no_grad():  # spread the op weights so that every op matters to the result
        for alpha in plain.arch_parameters():
            alpha.normal_()
    fast = SearchNetwork(4, 3, 3, in_channels=in_channels, fast=True)
    fast.load_state_dict(plain.state_dict())
    x, y = torch.randn(4, in_channels, 8, 8), torch.randint(0, 3, (4,))
    results = []
    for net in (plain, fast):
        loss = net.loss(x, y)
        grads = torch.autograd.grad(loss, net.arch_parameters() + net.weight_parameters())
        results.append((loss, grads))
    (loss_p, grads_p), (loss_f, grads_f) = results
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-6)
    n_arch = len(plain.arch_parameters())
    for gf, gp in zip(grads_f[:n_arch], grads_p[:n_arch], strict=True):
        torch.testing.assert_close(gf, gp, rtol=1e-4, atol=1e-6)
    for gf, gp in zip(grads_f[n_arch:], grads_p[n_arch:], strict=True):  # summation order differs by memory format
        torch.testing.assert_close(gf, gp, rtol=1e-3, atol=1e-5)
    assert grads_f[0][:, PRIMITIVES.index("none")].abs().sum() > 0  # `none` still learns through the softmax


# Variants whose forward differs (partial channels and edge weights, an auxiliary skip, sigmoid weights, sampled
# Dirichlet and Gumbel weights); the sampling ones draw the same sample on both paths from the same seed.
_FORWARDS = ["darts", "pc_darts", "darts_minus", "fair_darts", "drnas", "gdas"]


@pytest.mark.parametrize("variant", _FORWARDS)
@pytest.mark.parametrize("size", [8, 10, 9])  # stride-1 dil_convs all run split at 8, some at 10 (not 5x5), none at 9
def test_fast_equals_plain_in_float64_outputs_gradients_and_statistics(variant: str, size: int):
    """The fast path's restructuring (channels_last, `none` skipped, shared ReLU and pools, dilated convs by
    phases, dil_conv's 1x1 conv and BatchNorm on the split input) is exact: in float64 the logits, the loss,
    the gradient of every parameter and the BatchNorm running statistics agree with the plain path to 1e-9."""
    options = {"pc_k": 2} if variant == "pc_darts" else None
    torch.manual_seed(0)
    plain = SearchNetwork(8, 3, 3, in_channels=3, nodes=2, variant=variant, fast=False,
                          variant_options=options).double()
    with torch.no_grad():
        for alpha in plain.arch_parameters():
            alpha.normal_()
    fast = SearchNetwork(8, 3, 3, in_channels=3, nodes=2, variant=variant, fast=True, variant_options=options).double()
    fast.load_state_dict(plain.state_dict())
    x, y = torch.randn(4, 3, size, size, dtype=torch.float64), torch.randint(0, 3, (4,))
    results = []
    for net in (plain, fast):
        torch.manual_seed(1)  # the same Dirichlet / Gumbel sample
        logits = net(x)
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y), list(net.parameters()),
                                    allow_unused=True)
        results.append((logits, grads, {k: v.clone() for k, v in net.state_dict().items()}))
    (logits_p, grads_p, state_p), (logits_f, grads_f, state_f) = results
    torch.testing.assert_close(logits_f, logits_p, rtol=1e-9, atol=1e-10)
    names = [n for n, _ in plain.named_parameters()]
    for name, gf, gp in zip(names, grads_f, grads_p, strict=True):
        if gp is None or gf is None:  # a weight no path reaches (GDAS runs one op an edge): the same on both
            assert (gf is None or not gf.any()) and (gp is None or not gp.any()), name
            continue
        torch.testing.assert_close(gf, gp, rtol=1e-9, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")
    assert state_f.keys() == state_p.keys()
    for key in state_p:  # running means and variances (and counters) after the pass
        torch.testing.assert_close(state_f[key], state_p[key], rtol=1e-9, atol=1e-12, msg=lambda m, k=key: f"{k}: {m}")

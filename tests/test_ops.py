"""Every op of the registry: shapes at stride 1 and 2, gradients to every parameter, odd sizes."""

from __future__ import annotations

import pytest
import torch

from engine.ops import OPS, PRIMITIVES, DilConv, FactorizedReduce, Identity, ReLUConvBN, SepConv, Zero

C = 4


def test_primitives_are_the_darts_ops_in_order():
    assert PRIMITIVES == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                          "dil_conv_3x3", "dil_conv_5x5")


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("affine", [False, True])
def test_op_shape(name: str, stride: int, size: int, affine: bool):
    op = OPS[name](C, stride, affine)
    out = op(torch.randn(2, C, size, size))
    expected = -(-size // stride)  # ceil: every op of an edge must agree on odd sizes too
    assert out.shape == (2, C, expected, expected)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_op_gradients_reach_every_parameter(name: str, stride: int):
    op = OPS[name](C, stride, True)
    x = torch.randn(2, C, 8, 8, requires_grad=True)
    out = op(x)
    # A random projection, not sum(out**2): after a BatchNorm that sum has a zero gradient for the BN bias.
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in op.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    if name != "none":
        assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("affine", [False, True])
def test_affine_switches_bn_parameters(affine: bool):
    op = OPS["sep_conv_3x3"](C, 1, affine)
    bns = [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.affine == affine for bn in bns)


def test_zero_is_zero_at_both_strides():
    x = torch.randn(2, C, 8, 8)
    assert Zero(1)(x).abs().sum() == 0 and Zero(1)(x).shape == x.shape
    assert Zero(2)(x).shape == (2, C, 4, 4)


def test_skip_connect_is_identity_at_stride_1_and_factorized_reduce_at_stride_2():
    assert isinstance(OPS["skip_connect"](C, 1, False), Identity)
    assert isinstance(OPS["skip_connect"](C, 2, False), FactorizedReduce)
    x = torch.randn(2, C, 8, 8)
    assert torch.equal(Identity()(x), x)


def test_factorized_reduce_changes_channels_and_uses_both_pixel_phases():
    fr = FactorizedReduce(C, 6, affine=False)
    x = torch.randn(2, C, 8, 8)
    assert fr(x).shape == (2, 6, 4, 4)
    # The second conv sees only the odd pixels: changing them must change its half of the output.
    fr.eval()
    before = fr(x)
    x2 = x.clone()
    x2[:, :, 1::2, 1::2] += 1.0
    after = fr(x2)
    assert torch.equal(before[:, :3], after[:, :3]) and not torch.equal(before[:, 3:], after[:, 3:])
    with pytest.raises(ValueError):
        FactorizedReduce(C, 5)


def test_module_structure_matches_the_reference():
    assert [type(m).__name__ for m in SepConv(C, C, 3, 1, 1).op] == [
        "ReLU", "Conv2d", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "Conv2d", "BatchNorm2d"]
    assert [type(m).__name__ for m in DilConv(C, C, 3, 1, 2, 2).op] == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"]
    assert [type(m).__name__ for m in ReLUConvBN(C, 2 * C, 1, 1, 0).op] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert all(m.bias is None for m in SepConv(C, C, 5, 2, 2).modules() if isinstance(m, torch.nn.Conv2d))
    dil = DilConv(C, C, 5, 1, 4, 2).op[1]
    assert dil.dilation == (2, 2) and dil.groups == C and dil.kernel_size == (5, 5)

"""Every op of the registry: shapes at stride 1 and 2, gradients to every parameter, odd sizes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from engine.nn.ops import OPS, PRIMITIVES, DilConv, FactorizedReduce, Identity, ReLUConvBN, SepConv, Zero

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
    # the dilated conv is a Conv2d (same parameters and state_dict keys) that the fast path may run by phases
    assert [type(m).__name__ for m in DilConv(C, C, 3, 1, 2, 2).op] == ["ReLU", "DilatedDepthwise", "Conv2d",
                                                                         "BatchNorm2d"]
    assert isinstance(DilConv(C, C, 3, 1, 2, 2).op[1], torch.nn.Conv2d)
    assert [type(m).__name__ for m in ReLUConvBN(C, 2 * C, 1, 1, 0).op] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert all(m.bias is None for m in SepConv(C, C, 5, 2, 2).modules() if isinstance(m, torch.nn.Conv2d))
    dil = DilConv(C, C, 5, 1, 4, 2).op[1]
    assert dil.dilation == (2, 2) and dil.groups == C and dil.kernel_size == (5, 5)


@pytest.mark.parametrize("size", [8, 7])
@pytest.mark.parametrize("channels_last", [False, True])
def test_factorized_reduce_is_the_references_strided_convs(size: int, channels_last: bool):
    """Subsample-then-1x1 is the reference's 1x1 at stride 2 on x and on x shifted by a pixel (zero-padded at
    an odd far edge): the same numbers, forward and backward."""
    torch.manual_seed(0)
    op = FactorizedReduce(3, 8, affine=True)
    x = torch.randn(2, 3, size, size)
    if channels_last:
        op, x = op.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = op(x)
    r = F.relu(x)
    shifted = F.pad(r[:, :, 1:, 1:], (0, size % 2, 0, size % 2))
    ref = torch.cat([F.conv2d(r, op.conv_1.weight, stride=2), F.conv2d(shifted, op.conv_2.weight, stride=2)], 1)
    ref = F.batch_norm(ref, None, None, op.bn.weight, op.bn.bias, training=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, x, g)
    (want,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_small_factorized_reduce_in_channels_last_survives_backward():
    """PyTorch 2.14's CPU backward of a stride-2 1x1 conv in channels_last with under 8 input channels aborts
    the process (heap corruption); FactorizedReduce must not hit it. Run in a child so a crash fails the test."""
    code = (
        "import torch\n"
        "from engine.nn.ops import FactorizedReduce\n"
        "op = FactorizedReduce(4, 8, affine=False).to(memory_format=torch.channels_last)\n"
        "x = torch.randn(8, 4, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()\n"
        "for _ in range(5):\n"
        "    op(x).sum().backward()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("stride,size", [(1, 8), (1, 6), (2, 8), (2, 7), (2, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dilated_depthwise_by_phases_is_the_dilated_conv(kernel: int, stride: int, size: int, channels_last: bool):
    """The fast path's polyphase decomposition of a dilation-2 depthwise conv gives the dilated conv's output and
    gradients (input and weight) to float32 rounding, at both strides, odd sizes included (stride 2)."""
    from engine.nn.ops import DilatedDepthwise, conv_by_phases

    torch.manual_seed(0)
    conv = DilatedDepthwise(6, 6, kernel, stride=stride, padding=kernel - 1, dilation=2, groups=6, bias=False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 6, size, size).contiguous(memory_format=fmt).requires_grad_()
    ref = F.conv2d(x, conv.weight, None, stride, kernel - 1, 2, 6)
    out = conv_by_phases(x, conv)
    assert out is not None and out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(ref)
    gx_ref, gw_ref = torch.autograd.grad(ref, (x, conv.weight), g)
    gx, gw = torch.autograd.grad(out, (x, conv.weight), g)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-5, atol=1e-5)
    conv.by_phases = True  # the module's forward takes the same route
    torch.testing.assert_close(conv(x), ref, rtol=1e-6, atol=1e-6)


def test_dilated_depthwise_falls_back_where_phases_do_not_apply():
    """An odd size at stride 1 (phases of unequal size) and a conv that is not depthwise dilation-2 run as they are."""
    from engine.nn.ops import DilatedDepthwise, conv_by_phases

    conv = DilatedDepthwise(4, 4, 3, stride=1, padding=2, dilation=2, groups=4, bias=False)
    x = torch.randn(2, 4, 7, 7)
    assert conv_by_phases(x, conv) is None
    conv.by_phases = True
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, None, 1, 2, 2, 4))
    assert conv_by_phases(x, torch.nn.Conv2d(4, 4, 3, padding=1, groups=4)) is None  # not dilated
    assert conv_by_phases(x, torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2)) is None  # not depthwise


@pytest.mark.parametrize("kernel", [3, 5])
def test_dil_conv_on_the_split_input_is_the_op_split(kernel: int):
    """DilConv past its ReLU on the polyphase-split input (the fast path at stride 1) gives the op's output split
    the same way, in float64 to 1e-12: the 1x1 conv and the BatchNorm, statistics included, do not mind the
    order of the pixels."""
    from engine.nn.ops import DilConv, from_phases, to_phases

    torch.manual_seed(0)
    op = DilConv(4, 4, kernel, 1, kernel - 1, 2, affine=False).double()
    twin = DilConv(4, 4, kernel, 1, kernel - 1, 2, affine=False).double()
    twin.load_state_dict(op.state_dict())
    x = torch.randn(3, 4, 8, 6, dtype=torch.float64, requires_grad=True)
    assert torch.equal(from_phases(to_phases(x)), x)
    ref = op(x)
    out = from_phases(twin.after_relu_phased(to_phases(torch.relu(x))))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, *twin.parameters()], g)
    for a, b in zip(got, torch.autograd.grad(ref, [x, *op.parameters()], g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(twin.state_dict().items(), op.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)
    assert op.op[1].on_phases and not DilConv(4, 4, kernel, 2, kernel - 1, 2).op[1].on_phases  # stride 1 only

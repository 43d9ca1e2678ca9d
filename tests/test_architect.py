"""The architecture step: exact second-order gradient, what each step may change, autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from engine.nn.supernet import SearchNetwork, buffers_kept
from engine.search.architect import Architect

ETA, MOMENTUM, WD = 0.1, 0.9, 3e-4


def _setup(dtype: torch.dtype = torch.float32, fast: bool = True, seed: int = 0):
    """A tiny supernet, a weight optimiser with momentum buffers already filled, and two batches."""
    torch.manual_seed(seed)
    net = SearchNetwork(4, 3, 3, nodes=2, fast=fast).to(dtype)
    with torch.no_grad():
        for alpha in net.arch_parameters():
            alpha.normal_()
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=ETA, momentum=MOMENTUM, weight_decay=WD)
    batches = [(torch.randn(4, 3, 8, 8, dtype=dtype), torch.randint(0, 3, (4,))) for _ in range(3)]
    net.loss(*batches[2]).backward()
    w_opt.step()  # now every weight has a momentum buffer, which the unrolled step must use
    w_opt.zero_grad()
    return net, w_opt, batches[0], batches[1]


def _exact_unrolled_gradient(net: SearchNetwork, w_opt: torch.optim.SGD, train, val) -> list[torch.Tensor]:
    """d/dalpha L_val(w'(alpha), alpha) by double backprop through the unrolled SGD step."""
    params = dict(net.named_parameters())
    arch_names = [n for n, p in params.items() if any(p is a for a in net.arch_parameters())]
    w_names = [n for n in params if n not in arch_names]
    train_loss = F.cross_entropy(functional_call(net, params, (train[0],)), train[1])
    dw = torch.autograd.grad(train_loss, [params[n] for n in w_names], create_graph=True)
    unrolled = dict(params)
    for n, g in zip(w_names, dw, strict=True):
        buf = w_opt.state[params[n]]["momentum_buffer"]
        unrolled[n] = params[n] - ETA * (MOMENTUM * buf + g + WD * params[n])
    valid_loss = F.cross_entropy(functional_call(net, unrolled, (val[0],)), val[1])
    return list(torch.autograd.grad(valid_loss, [params[n] for n in arch_names]))


def _relative_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    diff = torch.cat([(x - y).flatten() for x, y in zip(a, b, strict=True)])
    return (diff.norm() / torch.cat([y.flatten() for y in b]).norm()).item()


def test_second_order_gradient_matches_double_backprop():
    net, w_opt, train, val = _setup(torch.float64, fast=False)
    exact = _exact_unrolled_gradient(net, w_opt, train, val)
    architect = Architect(net, a_lr=3e-4, order="second", r=1e-6)
    estimate, _ = architect.gradient(*train, *val, eta=ETA, w_optimizer=w_opt)
    assert _relative_error(estimate, exact) < 1e-6
    # The unrolling matters: the first-order gradient is a different vector.
    first, _ = Architect(net, a_lr=3e-4, order="first").gradient(*train, *val, eta=ETA, w_optimizer=w_opt)
    assert _relative_error(first, exact) > 1e-3


def _everything(net: SearchNetwork) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("order", ["first", "second"])
def test_arch_step_changes_only_the_alphas(order: str):
    net, w_opt, train, val = _setup()
    before = _everything(net)
    Architect(net, a_lr=0.1, order=order).step(*train, *val, eta=ETA, w_optimizer=w_opt)
    after = _everything(net)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"alphas_normal", "alphas_reduce"}  # weights and BN statistics restored bit for bit
    assert all(before[k].stride() == after[k].stride() for k in before)  # memory formats kept too


def test_weight_step_changes_only_the_weights():
    net, w_opt, train, _ = _setup()
    before = _everything(net)
    net.loss(*train).backward()
    torch.nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
    w_opt.step()
    after = _everything(net)
    assert torch.equal(before["alphas_normal"], after["alphas_normal"])
    assert torch.equal(before["alphas_reduce"], after["alphas_reduce"])
    assert not torch.equal(before["stem.0.weight"], after["stem.0.weight"])


@pytest.mark.parametrize("order", ["first", "second"])
def test_autocast_arch_step_on_cpu(order: str):
    net, w_opt, train, val = _setup()
    architect = Architect(net, a_lr=3e-4, order=order)
    stats = architect.step(*train, *val, eta=ETA, w_optimizer=w_opt, amp=True, device=torch.device("cpu"))
    assert all(torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0 for a in net.arch_parameters())
    assert torch.isfinite(torch.tensor(stats["valid_loss"])) and stats["alpha_grad_norm"] > 0
    assert 0.0 <= stats["valid_acc"] <= 1.0


def test_non_finite_gradient_leaves_the_alphas_alone():
    net, w_opt, train, val = _setup()
    before = [a.detach().clone() for a in net.arch_parameters()]
    bad_val = (torch.full_like(val[0], float("nan")), val[1])
    stats = Architect(net, a_lr=0.1, order="first").step(*train, *bad_val, eta=ETA, w_optimizer=w_opt)
    assert not math.isfinite(stats["alpha_grad_norm"])
    assert all(torch.equal(a, b) for a, b in zip(net.arch_parameters(), before, strict=True))


def test_adam_state_round_trips_through_a_checkpoint():
    net, w_opt, train, val = _setup()
    architect = Architect(net, a_lr=1e-2, order="first")
    architect.step(*train, *val, eta=ETA, w_optimizer=w_opt)
    state = architect.optimizer.state_dict()
    twin = Architect(net, a_lr=1e-2, order="first")
    twin.optimizer.load_state_dict(state)
    assert twin.optimizer.state_dict()["state"][0]["step"] == 1


def test_bad_order_and_missing_weights_are_errors():
    net, _, train, val = _setup()
    with pytest.raises(ValueError, match="order"):
        Architect(net, a_lr=1e-3, order="third")
    partial = torch.optim.SGD(net.weight_parameters()[:3], lr=ETA, momentum=MOMENTUM)
    with pytest.raises(ValueError, match="weight optimiser"):
        Architect(net, a_lr=1e-3, order="second").step(*train, *val, eta=ETA, w_optimizer=partial)


def test_buffers_kept_leaves_the_statistics_alone_and_tracks_again_after_an_error():
    net = SearchNetwork(4, 3, 3, nodes=2, variant="darts_minus")  # darts_minus: a variant buffer beside BN's
    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,)))
    before = _everything(net)
    with pytest.raises(RuntimeError, match="mid-pass"), buffers_kept(net):
        net.loss(*batch)
        net.aux_skip_weight.fill_(0.0)  # a buffer the passes must not change, changed anyway
        raise RuntimeError("mid-pass")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    net.loss(*batch)  # outside: a training-mode pass updates the statistics again
    assert not torch.equal(before["stem.1.running_mean"], net.state_dict()["stem.1.running_mean"])
    assert net.stem[1].num_batches_tracked.item() == before["stem.1.num_batches_tracked"].item() + 1

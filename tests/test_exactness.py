"""Exactness of what the search loop computes: the order it honours, the second-order gradient under the
settings that run, a resume that repeats every logged row, and control.json stop/pause followed by a resume.

Everything runs on the tiny `smoke` preset (fake data, 8x8 images, C=4, 3 cells, batch 8, 2 steps an epoch).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from engine.nn.supernet import SearchNetwork
from engine.runs import rundir
from engine.runs.checkpoint import load_checkpoint
from engine.runs.control import Control
from engine.runs.control_file import request_control
from engine.runs.hooks import Callback
from engine.search.architect import Architect
from engine.search.build import build_network
from engine.search.data import load_search_data
from engine.search.loop import run_search
from tests.waiting import wait_for

ARCH_KEYS = ("alphas_normal", "alphas_reduce")
TIME_FIELDS = frozenset({"time", "wall_s", "steps_per_s"})   # metrics fields that depend on the clock


class Capture(Callback):
    """Keeps every checkpoint the loop hands to the writer (step 0, epoch ends, the one on stop) and the
    epoch-end meters; stops the run once step `stop_at` is done."""

    def __init__(self, control: Control | None = None, stop_at: int | None = None):
        self.control, self.stop_at = control, stop_at
        self.checkpoints: dict[int, dict] = {}
        self.epoch_meters: dict[int, dict] = {}

    def on_step_end(self, event):
        if event.checkpoint is not None:
            self.checkpoints[event.step] = event.checkpoint
        if event.step == self.stop_at and event.metrics is not None:
            self.control.stop()

    def on_epoch_end(self, event, genotype_row):
        self.epoch_meters[event.epoch] = dict(event.checkpoint["meters"])


def _run(tmp_path, name, cfg, stop_at=None):
    control = Control()
    capture = Capture(control, stop_at)
    run_dir = tmp_path / name
    run_dir.mkdir()
    state = run_search(cfg, run_dir, control=control, callbacks=[capture])
    return run_dir, state, capture


def _cat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for t in tensors])


def _rel(a, b) -> float:
    """||a - b|| / ||b|| over all the tensors of two gradients."""
    return ((_cat(a) - _cat(b)).norm() / _cat(b).norm()).item()


# ------------------------------------------------------------------------------------------ 1. order
def _replay_arch_step(cfg, data, ckpt: dict, order: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The architecture step the loop makes next from checkpoint `ckpt`, redone outside the loop: same state,
    same batches (data.batches exactly as _Loop._one_step asks for them), same weight lr, the given order;
    the gradient is handed to a fresh Adam loaded with the checkpoint's Adam state. Returns (alphas, Adam state)."""
    net = build_network(cfg, data.in_channels, data.num_classes)
    net.load_state_dict(ckpt["model"])
    w_opt = torch.optim.SGD(net.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    w_opt.load_state_dict(ckpt["w_optimizer"])
    (x, y), (xv, yv) = (next(data.batches(part, ckpt["epoch"], cfg.batch_size, start=ckpt["batch"]))
                        for part in ("train", "valid"))
    eta = w_opt.param_groups[0]["lr"]
    grads, _ = Architect(net, cfg.a_lr, order=order).gradient(x, y, xv, yv, eta, w_opt)
    adam = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr, betas=cfg.a_betas, weight_decay=cfg.a_weight_decay)
    adam.load_state_dict(ckpt["a_optimizer"])
    for alpha, g in zip(net.arch_parameters(), grads, strict=True):
        alpha.grad = g
    adam.step()
    return {k: getattr(net, k).detach().clone() for k in ARCH_KEYS}, adam.state_dict()


def _adam_moments(state: dict) -> list[torch.Tensor]:
    return [s[m] for _, s in sorted(state["state"].items()) for m in ("exp_avg", "exp_avg_sq")]


def _assert_alphas(got: dict, want, msg: str) -> None:
    for key in ARCH_KEYS:
        np.testing.assert_allclose(np.asarray(want[key], dtype=np.float64), got[key].double().numpy(),
                                   rtol=0, atol=1e-6, err_msg=f"{msg} ({key})")


def _max_diff(a: dict, b) -> float:
    return max(float((a[k].double() - torch.as_tensor(np.asarray(b[k]), dtype=torch.float64)).abs().max())
               for k in ARCH_KEYS)


def test_second_order_run_makes_second_order_arch_steps(tmp_path, smoke):
    cfg = smoke.replace(order="second")
    run_dir, state, cap = _run(tmp_path, "second", cfg, stop_at=3)
    assert state == "stopped" and sorted(cap.checkpoints) == [0, 2, 3]
    data = load_search_data(cfg)

    # Step 1: from the step-0 checkpoint (fresh weights, no momentum yet) to the alphas.jsonl row of step 1
    # (rounded to 1e-7 in the file).
    logged = {r["step"]: r for r in rundir.read_alphas(run_dir)}[1]
    logged = {"alphas_normal": logged["normal"], "alphas_reduce": logged["reduce"]}
    second, _ = _replay_arch_step(cfg, data, cap.checkpoints[0], "second")
    _assert_alphas(second, logged, "step 1 of an order=second run is not the replayed second-order step")
    first, _ = _replay_arch_step(cfg, data, cap.checkpoints[0], "first")
    assert _max_diff(first, logged) > 1e-3   # the two orders move the alphas apart (Adam: ~a_lr per entry)

    # Step 3: the first step of epoch 1, from the epoch-end checkpoint (momentum buffers filled, cosine lr
    # moved on) to the exact alphas and Adam moments of the checkpoint written on stop after step 3.
    ckpt2, ckpt3 = cap.checkpoints[2], cap.checkpoints[3]
    assert (ckpt2["epoch"], ckpt2["batch"]) == (1, 0)
    assert ckpt2["w_optimizer"]["param_groups"][0]["lr"] < 0.9 * cfg.w_lr       # the eta the unrolling must use
    second, adam = _replay_arch_step(cfg, data, ckpt2, "second")
    _assert_alphas(second, ckpt3["model"], "step 3 of an order=second run is not the replayed second-order step")
    # Adam's moments hold the gradient itself (exp_avg = b1 * old + (1 - b1) * g), not just its sign
    assert _rel(_adam_moments(adam), _adam_moments(ckpt3["a_optimizer"])) < 1e-5
    _, adam_first = _replay_arch_step(cfg, data, ckpt2, "first")
    assert _rel(_adam_moments(adam_first), _adam_moments(ckpt3["a_optimizer"])) > 1e-2


def test_first_order_run_makes_first_order_arch_steps(tmp_path, smoke):
    cfg = smoke.replace(order="first", epochs=1)
    _, state, cap = _run(tmp_path, "first", cfg, stop_at=1)
    assert state == "stopped" and sorted(cap.checkpoints) == [0, 1]
    data = load_search_data(cfg)
    ckpt1 = cap.checkpoints[1]
    first, adam = _replay_arch_step(cfg, data, cap.checkpoints[0], "first")
    _assert_alphas(first, ckpt1["model"], "step 1 of an order=first run is not the replayed first-order step")
    assert _rel(_adam_moments(adam), _adam_moments(ckpt1["a_optimizer"])) < 1e-5
    second, adam_second = _replay_arch_step(cfg, data, cap.checkpoints[0], "second")
    assert _max_diff(second, ckpt1["model"]) > 1e-3
    assert _rel(_adam_moments(adam_second), _adam_moments(ckpt1["a_optimizer"])) > 1e-2


# ------------------------------------------------------------------------------------------ 2. second order
def _names(net: SearchNetwork) -> tuple[list[str], list[str]]:
    """(architecture, weight) parameter names."""
    arch = {id(a) for a in net.arch_parameters()}
    named = list(net.named_parameters())
    return [n for n, p in named if id(p) in arch], [n for n, p in named if id(p) not in arch]


def _unrolled_weights(net, w_opt, eta, params, weight_names, dw):
    """w' = w - eta * (momentum * buf + dL_train/dw + wd * w), the exact next SGD step (as a graph if dw is)."""
    group = w_opt.param_groups[0]
    out = dict(params)
    for n, g in zip(weight_names, dw, strict=True):
        buf = w_opt.state[net.get_parameter(n)]["momentum_buffer"]
        out[n] = params[n] - eta * (group["momentum"] * buf + g + group["weight_decay"] * params[n])
    return out


def _exact_second_order(net, w_opt, eta, train, val) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(exact unrolled gradient by double backprop, its direct part dL_val(w', alpha)/dalpha at fixed w')."""
    arch_names, weight_names = _names(net)
    params = dict(net.named_parameters())
    train_loss = F.cross_entropy(functional_call(net, params, (train[0],)), train[1])
    dw = torch.autograd.grad(train_loss, [params[n] for n in weight_names], create_graph=True)
    unrolled = _unrolled_weights(net, w_opt, eta, params, weight_names, dw)
    valid_loss = F.cross_entropy(functional_call(net, unrolled, (val[0],)), val[1])
    full = torch.autograd.grad(valid_loss, [params[n] for n in arch_names])
    fixed = {n: (t.detach() if n in weight_names else t) for n, t in unrolled.items()}
    valid_loss = F.cross_entropy(functional_call(net, fixed, (val[0],)), val[1])
    direct = torch.autograd.grad(valid_loss, [params[n] for n in arch_names])
    return list(full), list(direct)


def _reference_central_difference(net, w_opt, eta, train, val, r) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The unrolled gradient with the Hessian-vector product taken as the central difference of radius r the
    engine documents, written independently (functional_call, meant for float64); and its direct part."""
    arch_names, weight_names = _names(net)
    params = dict(net.named_parameters())
    train_loss = F.cross_entropy(functional_call(net, params, (train[0],)), train[1])
    dw = torch.autograd.grad(train_loss, [params[n] for n in weight_names])
    with torch.no_grad():
        unrolled = _unrolled_weights(net, w_opt, eta, params, weight_names, dw)
    unrolled = {n: (t.detach().requires_grad_() if n in weight_names else t) for n, t in unrolled.items()}
    valid_loss = F.cross_entropy(functional_call(net, unrolled, (val[0],)), val[1])
    grads = torch.autograd.grad(valid_loss, [params[n] for n in arch_names] + [unrolled[n] for n in weight_names])
    direct, v = grads[:len(arch_names)], grads[len(arch_names):]
    R = r / _cat(v).norm().item()
    sides = []
    for sign in (1.0, -1.0):
        moved = dict(params)
        for n, vi in zip(weight_names, v, strict=True):
            moved[n] = (params[n] + sign * R * vi).detach()
        loss = F.cross_entropy(functional_call(net, moved, (train[0],)), train[1])
        sides.append(torch.autograd.grad(loss, [params[n] for n in arch_names]))
    return [d - eta * (p - m) / (2 * R) for d, p, m in zip(direct, *sides, strict=True)], list(direct)


def _smooth(net: SearchNetwork) -> SearchNetwork:
    """The same supernet with its kinks smoothed away: ReLU -> SiLU, max pool -> average pool."""
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.SiLU())
            elif isinstance(child, nn.MaxPool2d):
                setattr(module, name, nn.AvgPool2d(3, child.stride, 1, count_include_pad=False))
    return net


@pytest.fixture(scope="module")
def smoke_state(smoke):
    """The smoke supernet (seeded, alphas at their 1e-3 init) after one weight step, so that every momentum
    buffer is filled; the weight-optimiser state; the next train batch and a valid batch; eta = w_lr."""
    cfg = smoke
    data = load_search_data(cfg)
    torch.manual_seed(cfg.seed)
    net = build_network(cfg.replace(fast=False), data.in_channels, data.num_classes)
    w_opt = torch.optim.SGD(net.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    train = data.batches("train", 0, cfg.batch_size)
    net.loss(*next(train)).backward()
    w_opt.step()
    w_opt.zero_grad(set_to_none=True)
    return {"cfg": cfg, "data": data, "model": {k: v.clone() for k, v in net.state_dict().items()},
            "w_opt": w_opt.state_dict(), "train": next(train),
            "val": next(data.batches("valid", 0, cfg.batch_size)), "eta": cfg.w_lr}


def _copy(s, fast: bool, dtype: torch.dtype, smooth: bool):
    """A copy of the smoke state as a (fast or plain, float32 or float64, kinked or smooth) net + optimiser."""
    cfg, data = s["cfg"], s["data"]
    net = build_network(cfg.replace(fast=fast), data.in_channels, data.num_classes)
    if smooth:
        _smooth(net)
    net.load_state_dict(s["model"])
    net.to(dtype)
    w_opt = torch.optim.SGD(net.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    w_opt.load_state_dict(s["w_opt"])
    for p in net.weight_parameters():
        w_opt.state[p]["momentum_buffer"] = w_opt.state[p]["momentum_buffer"].to(dtype).clone()
    (x, y), (xv, yv) = s["train"], s["val"]
    return net, w_opt, (x.to(dtype), y), (xv.to(dtype), yv)


def _engine_gradient(s, fast: bool, dtype: torch.dtype, smooth: bool, order: str = "second"):
    net, w_opt, train, val = _copy(s, fast, dtype, smooth)
    architect = Architect(net, s["cfg"].a_lr, order=order)   # the default radius: what the loop runs with
    assert architect.r == 0.01
    grads, _ = architect.gradient(*train, *val, eta=s["eta"], w_optimizer=w_opt)
    return grads


# Measured on this state (torch 2.14, CPU), relative errors
# ||g - g_ref|| / ||g_ref|| of the whole alpha gradient:
#   smooth net (ReLU -> SiLU, max -> avg pool), engine vs exact double backprop (float64):
#       float32 r=0.01 fast 5.3e-5, plain 5.2e-5 (implicit term alone: 2.5e-4); float64 r=0.01: 5.2e-5
#       first order vs exact 0.28, the direct part alone (implicit term dropped) 0.21, the implicit term with
#       its sign flipped 0.42; fast vs plain 3.7e-6
#   the real net (ReLU, max pool), engine vs the float64 central difference of the same radius:
#       float32 r=0.01 fast 2.9e-3, plain 2.9e-3; float64 3e-8; fast vs plain (float32) 6.5e-6; first order
#       0.78, implicit term dropped 0.69, its sign flipped 1.4
#   the real net, engine vs exact double backprop: float64 r=1e-6 3e-8 (tests/test_architect.py holds that
#       case, on another net, to 1e-6), but float32 AND float64 at r=0.01: 0.87 (the implicit term 3.9x off);
#       see test_central_difference_on_the_real_net.
def test_second_order_gradient_in_float32_matches_double_backprop_on_a_smooth_net(smoke_state):
    """On a net without kinks the central difference has its O(r^2) error: at the loop's float32 and r=0.01,
    fast and plain, it matches exact double backprop to 1e-3, far below what a wrong sign or a dropped
    implicit term would give."""
    net, w_opt, train, val = _copy(smoke_state, False, torch.float64, True)
    exact, direct = _exact_second_order(net, w_opt, smoke_state["eta"], train, val)
    implicit = _cat(exact) - _cat(direct)
    assert _rel(direct, exact) > 0.1                     # the implicit term matters here (measured 0.21)
    first = _engine_gradient(smoke_state, False, torch.float32, True, order="first")
    assert _rel(first, exact) > 0.1                      # measured 0.28
    estimates = {}
    for fast in (True, False):
        g = estimates[fast] = _engine_gradient(smoke_state, fast, torch.float32, True)
        assert _rel(g, exact) < 1e-3, f"fast={fast}: {_rel(g, exact):.3e}"
        implicit_error = ((_cat(g) - _cat(direct)) - implicit).norm() / implicit.norm()
        assert implicit_error < 5e-3, f"fast={fast}: implicit term off by {implicit_error:.3e}"
    assert _rel(estimates[True], estimates[False]) < 1e-4


def test_central_difference_on_the_real_net(smoke_state):
    """On the real net (ReLU, max pool) the engine computes, in float32 on both paths, the central difference
    of radius r=0.01 it documents. That difference is NOT the exact Hessian-vector product here: ReLU and
    max-pool kinks within the radius put the unrolled gradient 0.87 (relative) away from double backprop, in
    float64 too (measured r=0.1: 0.27, 0.01: 0.87, 1e-3: 3.6, 1e-4: 4.7, 1e-5: 1.1, 1e-6: 3e-8), the same estimator
    as the DARTS reference. Recorded, not asserted: it is the estimator's nature, not an implementation slip."""
    net, w_opt, train, val = _copy(smoke_state, False, torch.float64, False)
    reference, direct = _reference_central_difference(net, w_opt, smoke_state["eta"], train, val, r=0.01)
    assert _rel(direct, reference) > 0.1                 # the implicit term is not negligible (measured 0.69)
    estimates = {}
    for fast in (True, False):
        g = estimates[fast] = _engine_gradient(smoke_state, fast, torch.float32, False)
        err = _rel(g, reference)
        print(f"real net, float32 fast={fast}: vs float64 central difference {err:.3e}")
        assert err < 3e-2, f"fast={fast}: {err:.3e}"
    assert _rel(estimates[True], estimates[False]) < 1e-4


# ------------------------------------------------------------------------------------------ 3. exact resume
def _same(a, b, path: str = "") -> None:
    """Recursive comparison: tensors and floats to 1e-6, everything else exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, path
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6, msg=path)
        else:
            assert torch.equal(a, b), path
    elif isinstance(a, float) and not isinstance(b, bool) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_resume_repeats_every_row_of_an_uninterrupted_run(tmp_path, smoke):
    cfg = smoke.replace(log_every=1)   # first order, epochs=2: 4 steps
    full_dir, state, full = _run(tmp_path, "full", cfg)
    assert state == "finished"
    part_dir, state, part = _run(tmp_path, "part", cfg, stop_at=3)     # stopped in the middle of epoch 1
    assert state == "stopped"
    resumed = Capture()
    assert run_search(cfg, part_dir, resume=True, callbacks=[resumed]) == "finished"

    ma, mb = rundir.read_metrics(full_dir), rundir.read_metrics(part_dir)
    assert [m["step"] for m in ma] == [m["step"] for m in mb] == [1, 2, 3, 4]
    for a, b in zip(ma, mb, strict=True):
        _same({k: v for k, v in a.items() if k not in TIME_FIELDS},
              {k: v for k, v in b.items() if k not in TIME_FIELDS}, f"metrics step {a['step']}")
    aa, ab = rundir.read_alphas(full_dir), rundir.read_alphas(part_dir)
    assert [r["step"] for r in aa] == [r["step"] for r in ab] == [1, 2, 3, 4]
    for a, b in zip(aa, ab, strict=True):
        _same(a, b, f"alphas step {a['step']}")
    ga = rundir.read_genotypes(full_dir)
    gb = [r for r in rundir.read_genotypes(part_dir) if r.get("kind") != "stopped"]
    assert [(r["step"], r["kind"]) for r in ga] == [(2, "epoch_end"), (4, "final")]
    assert ga == gb

    # The epoch meters (running means kept in checkpoints) and the whole final checkpoint.
    epoch_meters = {**part.epoch_meters, **resumed.epoch_meters}
    assert sorted(part.epoch_meters) == [0] and sorted(resumed.epoch_meters) == [1]
    _same(full.epoch_meters, epoch_meters, "epoch meters")
    ca, cb = load_checkpoint(full_dir / "checkpoint.pt"), load_checkpoint(part_dir / "checkpoint.pt")
    assert ca["step"] == cb["step"] == 4
    ca.pop("wall_s")
    cb.pop("wall_s")
    _same(ca, cb, "final checkpoint")


# ------------------------------------------------------------------------------------------ 4. control.json
class Gate(Callback):
    """Holds the loop after step 1 until the test has written its request to control.json."""

    def __init__(self):
        self.reached, self.release = threading.Event(), threading.Event()

    def on_step_end(self, event):
        if event.step == 1 and event.metrics is not None:
            self.reached.set()
            assert self.release.wait(60), "the test never released the loop"


def _state_is(run_dir, state):
    return lambda: rundir.read_status(run_dir).get("state") == state


@pytest.mark.parametrize("path", ["stop", "pause-then-stop"])
def test_a_run_stopped_through_control_json_resumes_to_its_end(tmp_path, path, smoke):
    cfg = smoke                                   # 2 epochs of 2 steps
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gate = Gate()
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(state=run_search(cfg, run_dir, callbacks=[gate])),
                              daemon=True)
    thread.start()
    try:
        assert gate.reached.wait(60), "the run never reached step 1"
        if path == "pause-then-stop":
            request_control(run_dir, "pause")
            gate.release.set()
            wait_for(_state_is(run_dir, "paused"), timeout=60)
            assert rundir.read_status(run_dir)["step"] == 1
        request_control(run_dir, "stop")
    finally:
        gate.release.set()
    wait_for(_state_is(run_dir, "stopped"), timeout=60)
    thread.join(60)
    assert outcome["state"] == "stopped"
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 1
    # A request that arrives after the run stopped (a second click on stop, a late pause) is stale: the
    # resumed loop starts after the highest sequence number in control.json and must not apply it.
    request_control(run_dir, "stop" if path == "stop" else "pause")

    control = Control()
    resumed = threading.Thread(target=lambda: outcome.update(resumed=run_search(
        cfg, run_dir, control=control, resume=True)), daemon=True)
    resumed.start()
    resumed.join(60)
    if resumed.is_alive():                                      # it sat paused on the stale request
        control.stop()
        resumed.join(60)
    status = rundir.read_status(run_dir)
    assert outcome["resumed"] == "finished" and status["state"] == "finished", (
        f"the resumed run ended {outcome['resumed']!r} at step {status.get('step')}: it applied a control "
        "request written before it started")
    assert status["step"] == status["total_steps"] == 4
    assert [m["step"] for m in rundir.read_metrics(run_dir)] == [1, 2, 3, 4]   # every step logged exactly once

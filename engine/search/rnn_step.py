"""One bilevel step of the recurrent search (torch): the alphas on a valid batch, then the weights on a train batch.

Paper section 2.3 and Appendix A.1.2; quark0/darts rnn/train_search.py and rnn/architect.py. The weights take
SGD (lr 20, weight decay 5e-7) on the training loss plus the temporal activation regularisation
beta * mean((h_{t+1} - h_t)^2) (Merity et al. 2017, beta 1e-3), their gradient clipped to norm 0.25; the alphas
take Adam (3e-3, betas 0.9/0.999, weight decay 1e-3) on the validation loss. First order uses the validation
loss's gradient at the current weights; second order the gradient at the weights after one virtual SGD step
w' = w - eta (clip(grad_w L_train) + wd w), with its Hessian-vector term by central differences at
w +- r v / |v|, r = 0.01 (eq. 7-8), scaled by the virtual step's clip coefficient as the reference does.

Each pass reads the hidden state the previous batch of its split left (truncated BPTT): the caller keeps two,
one per split, and the step returns both detached.

The network's variant (engine/variants/) enters where it does in the convolutional step: its extra architecture
loss (beta-DARTS's Beta-Decay, FairDARTS's zero-one, DrNAS's KL) is added to the validation loss whose gradient
the alphas take, first and second order (it depends on the alphas alone, so in the unrolled step it adds its own
gradient and leaves the Hessian-vector term alone); the weight step's forward pass asks for the weight-step op
weights (SDARTS-RS's noise); the architecture step, and the unrolled model's virtual step, use the plain ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call

from engine.nn.rnn_supernet import RNNSearchNetwork
from engine.runtime.distributed import SINGLE, World, average_

__all__ = ["StepResult", "make_optimizers", "bilevel_step", "evaluate"]


@dataclass(frozen=True)
class StepResult:
    train_loss: float     # the weights' NLL (without the regulariser), before their update
    valid_loss: float     # the alphas' NLL at the weights the gradient was taken at
    grad_norm: float      # the weights' gradient norm before clipping
    hidden_train: torch.Tensor
    hidden_valid: torch.Tensor


def make_optimizers(model: RNNSearchNetwork, w_lr: float = 20.0, w_decay: float = 5e-7, a_lr: float = 3e-3,
                    a_decay: float = 1e-3) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    """The paper's two optimisers: SGD for the weights, Adam for the alphas."""
    for name, value in (("w_lr", w_lr), ("a_lr", a_lr)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    for name, value in (("w_decay", w_decay), ("a_decay", a_decay)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    weights = torch.optim.SGD(model.weight_parameters(), lr=w_lr, weight_decay=w_decay)
    alphas = torch.optim.Adam(model.arch_parameters(), lr=a_lr, betas=(0.9, 0.999), weight_decay=a_decay)
    return weights, alphas


def _nll(log_prob: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(log_prob.reshape(-1, log_prob.size(-1)), targets.reshape(-1))


def _clip_coef(grads: list[torch.Tensor], max_norm: float) -> tuple[float, float]:
    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)).item()
    return norm, min(1.0, max_norm / (norm + 1e-6))


def _unrolled_alpha_grad(model, names, weights, train, valid, hidden_train, hidden_valid, eta, decay, clip, hvp_r,
                         world=SINGLE):
    """Second-order gradient of the validation loss wrt the alphas (the reference's _backward_step_unrolled). Under
    torchrun every gradient is averaged over the ranks where it is taken, so each rank unrolls the same virtual
    step and moves along the same vector."""
    alphas = model.alphas  # the recurrent variants add no architecture parameters beside them (no edge weights)
    loss = _nll(functional_call(model, dict(zip(names, weights, strict=True)), (train[0], hidden_train))[0], train[1])
    grads = torch.autograd.grad(loss, weights)
    average_(grads, world)
    _, coef = _clip_coef(grads, clip)
    with torch.no_grad():
        unrolled = [(w - eta * (coef * g + decay * w)).requires_grad_() for w, g in zip(weights, grads, strict=True)]
    log_prob, h_valid, _ = functional_call(model, dict(zip(names, unrolled, strict=True)), (valid[0], hidden_valid))
    valid_loss = _nll(log_prob, valid[1])
    d_alpha, *d_w = torch.autograd.grad(valid_loss, [alphas, *unrolled])
    average_([d_alpha, *d_w], world)
    _, v_coef = _clip_coef(d_w, clip)
    vector = [g * v_coef for g in d_w]
    r = hvp_r / torch.sqrt(sum((v ** 2).sum() for v in vector))
    implicit = []
    for sign in (1.0, -1.0):
        moved = {n: w.detach() + sign * r * v for n, w, v in zip(names, weights, vector, strict=True)}
        loss = _nll(functional_call(model, moved, (train[0], hidden_train))[0], train[1])
        implicit.append(torch.autograd.grad(loss, alphas)[0])
    average_(implicit, world)
    return d_alpha - eta * coef * (implicit[0] - implicit[1]) / (2 * r), valid_loss, h_valid


def bilevel_step(model: RNNSearchNetwork, w_opt: torch.optim.Optimizer, a_opt: torch.optim.Optimizer,
                 train: tuple[torch.Tensor, torch.Tensor], valid: tuple[torch.Tensor, torch.Tensor],
                 hidden_train: torch.Tensor, hidden_valid: torch.Tensor, *, second_order: bool = False,
                 clip: float = 0.25, beta: float = 1e-3, bptt: int | None = None, hvp_r: float = 1e-2,
                 world: World = SINGLE) -> StepResult:
    """One architecture step on `valid` (words, targets), then one weight step on `train`. Under torchrun
    (`world`) each rank holds its columns of the batches, and the gradients and losses are averaged over the
    ranks before anything is updated (engine/runtime/distributed.py).

    `bptt`: the nominal sequence length; a shorter train batch scales the weights' learning rate by
    len / bptt for this step, as the reference does for its randomly shortened sequences. `hvp_r`: the radius of
    the second-order step's central difference (eq. 8), divided by the norm of the vector as the reference's."""
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip!r}")
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    model.train()
    hidden_train, hidden_valid = hidden_train.detach(), hidden_valid.detach()
    group = w_opt.param_groups[0]
    base_lr = group["lr"]
    scale = 1.0 if bptt is None else len(train[0]) / bptt

    a_opt.zero_grad(set_to_none=True)
    if model.arch_parameters() != [model.alphas]:
        raise ValueError(f"variant {model.variant.name!r} adds architecture parameters; the recurrent step updates "
                         f"the alphas only")
    extra = model.variant.arch_loss_extra(model.arch())  # None for plain DARTS and the weight-step-only variants
    if second_order:
        arch_ids = {id(p) for p in model.arch_parameters()}
        names = [n for n, p in model.named_parameters() if id(p) not in arch_ids]
        weights = [p for p in model.parameters() if id(p) not in arch_ids]
        d_alpha, valid_loss, h_valid = _unrolled_alpha_grad(
            model, names, weights, train, valid, hidden_train, hidden_valid, base_lr * scale,
            group["weight_decay"], clip, hvp_r, world)
        if extra is not None:
            d_alpha = d_alpha + torch.autograd.grad(extra, model.alphas)[0]
    else:
        log_prob, h_valid, _ = model(valid[0], hidden_valid)
        valid_loss = _nll(log_prob, valid[1])
        objective = valid_loss if extra is None else valid_loss + extra
        (d_alpha,) = torch.autograd.grad(objective, model.alphas)
        average_([d_alpha], world)
    model.alphas.grad = d_alpha.detach()
    a_opt.step()

    # the weight step's op weights: SDARTS-RS perturbs them here (a constant of the step, no gradient to the alphas)
    log_prob, h_train, raw = model(train[0], hidden_train, weight_step=True)
    train_loss = _nll(log_prob, train[1])
    loss = train_loss + beta * (raw[1:] - raw[:-1]).pow(2).mean() if len(raw) > 1 else train_loss
    weights = model.weight_parameters()
    grads = torch.autograd.grad(loss, weights)
    average_(grads, world)
    norm, coef = _clip_coef(grads, clip)
    for p, g in zip(weights, grads, strict=True):
        p.grad = g * coef
    group["lr"] = base_lr * scale
    try:
        w_opt.step()
    finally:
        group["lr"] = base_lr
    losses = torch.stack([train_loss.detach(), valid_loss.detach()])
    average_([losses], world)  # every rank logs the same numbers, and all take the same branch on a NaN
    return StepResult(*losses.tolist(), norm, h_train.detach(), h_valid.detach())


@torch.no_grad()
def evaluate(model: torch.nn.Module, source: torch.Tensor, bptt: int) -> float:
    """Mean NLL per token over a batchified split, dropout off (the reference's evaluate); exp() is perplexity."""
    model.eval()
    hidden = model.init_hidden(source.size(1))
    total, count = 0.0, 0
    for start in range(0, len(source) - 1, bptt):
        length = min(bptt, len(source) - 1 - start)  # the last window is shorter: its last row has no target
        words, targets = source[start:start + length], source[start + 1:start + 1 + length]
        log_prob, hidden, _ = model(words, hidden)
        total += _nll(log_prob, targets).item() * targets.numel()
        count += targets.numel()
    return total / count

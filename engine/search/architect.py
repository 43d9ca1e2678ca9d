"""The architecture step of DARTS: move the alphas down the validation loss, first or second order.

First order treats the weights as constants: grad = dL_val(w, alpha)/dalpha.

Second order (the paper's "unrolled" gradient) asks how the validation loss changes when alpha changes
*and the weights then take their next SGD step under the new alpha*:

    w'   = w - eta * (momentum * buf + dL_train(w, alpha)/dw + wd * w)      the exact next SGD step (no clipping)
    grad = dL_val(w', alpha)/dalpha  -  eta * d2L_train(w, alpha)/(dalpha dw) . dL_val(w', alpha)/dw'

The second term is a Hessian-vector product; it is estimated by central finite differences (two extra
forward/backward passes instead of a double backward through the whole supernet). See `_implicit`.

The model's weights (and its BatchNorm running statistics) are exactly as before once a step returns:
only the alphas and the Adam state change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from engine.nn.supernet import SearchNetwork, buffers_kept
from engine.runtime.device import autocast
from engine.runtime.distributed import SINGLE, World, average_

__all__ = ["Architect"]


class Architect:
    """Owns the Adam optimiser of the architecture parameters (`.optimizer`, for checkpoints)."""

    def __init__(self, model: SearchNetwork, a_lr: float, a_betas: tuple[float, float] = (0.5, 0.999),
                 a_weight_decay: float = 1e-3, order: str = "first", r: float = 0.01, world: World = SINGLE,
                 cost: Callable[[Mapping[str, torch.Tensor]], torch.Tensor] | None = None):
        if order not in ("first", "second"):
            raise ValueError(f"order must be 'first' or 'second', got {order!r}")
        self.model = model
        self.order = order
        self.world = world  # under torchrun: every gradient below is averaged over the ranks where it is made
        self.r = r  # finite-difference radius of the Hessian-vector product, relative to ||v|| (DARTS: 0.01)
        self.cost = cost  # op weights -> a penalty on the expected cost of the cells (engine/nn/cost.py), or None
        self.optimizer = torch.optim.Adam(model.arch_parameters(), lr=a_lr, betas=a_betas,
                                          weight_decay=a_weight_decay)

    def step(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
             eta: float, w_optimizer: torch.optim.Optimizer, amp: bool = False,
             device: torch.device | None = None) -> dict[str, float]:
        """One Adam step on the alphas. `eta` is the current weight learning rate (second order only).

        Returns "valid_loss" and "valid_acc" of the validation batch (at w for first order, at the unrolled
        w' for second order) and "alpha_grad_norm". A non-finite gradient leaves the alphas and Adam's state
        untouched (the caller sees it in the returned figures), so one bad batch cannot turn them into NaN.
        """
        grads, stats = self.gradient(x_train, y_train, x_val, y_val, eta, w_optimizer, amp, device)
        grad_norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item()
        if math.isfinite(grad_norm):
            for alpha, grad in zip(self.model.arch_parameters(), grads, strict=True):
                alpha.grad = grad
            self.optimizer.step()
        return {**stats, "alpha_grad_norm": grad_norm}

    @torch.no_grad()
    def measure(self, x_val: torch.Tensor, y_val: torch.Tensor, amp: bool = False,
                device: torch.device | None = None) -> dict[str, float]:
        """The validation figures of `step` without a step (architecture warm-up); changes nothing but the RNG."""
        device = device if device is not None else x_val.device
        with buffers_kept(self.model):
            _, loss, logits = self._valid_loss(x_val, y_val, amp, device)
        return {**self._figures(loss, logits, y_val), "alpha_grad_norm": 0.0}

    def _figures(self, loss: torch.Tensor, logits: torch.Tensor, y_val: torch.Tensor) -> dict[str, float]:
        """Validation loss and accuracy of the batch (of the global batch, averaged over the ranks)."""
        figures = torch.stack([loss.detach().float(), (logits.argmax(1) == y_val).float().mean()])
        average_([figures], self.world)
        return {"valid_loss": figures[0].item(), "valid_acc": figures[1].item()}

    def gradient(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                 eta: float, w_optimizer: torch.optim.Optimizer, amp: bool = False,
                 device: torch.device | None = None) -> tuple[list[torch.Tensor], dict[str, float]]:
        """The architecture gradient (one tensor per arch parameter) and validation figures; changes nothing."""
        device = device if device is not None else x_val.device
        # The arch step only measures; BatchNorm running statistics should follow the weight-step batches.
        with buffers_kept(self.model):
            if self.order == "first":
                objective, loss, logits = self._valid_loss(x_val, y_val, amp, device)
                alphas = self.model.arch_parameters()
                # The plain path reproduces the reference, whose loss.backward() also computes the weight
                # gradients (and throws them away); the fast path asks for the alphas' gradients only.
                targets = alphas if self.model.fast else alphas + self.model.weight_parameters()
                grads = list(torch.autograd.grad(objective, targets, allow_unused=True)[: len(alphas)])
                grads = [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads, strict=True)]
                average_(grads, self.world)
            else:
                grads, loss, logits = self._unrolled(x_train, y_train, x_val, y_val, eta, w_optimizer, amp, device)
        return grads, self._figures(loss, logits, y_val)

    def _valid_loss(self, x_val: torch.Tensor, y_val: torch.Tensor, amp: bool,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(objective, validation loss, logits): the objective adds the variant's extra architecture loss
        (FairDARTS's zero-one loss, DrNAS's KL regulariser) to the cross-entropy; it depends on the alphas only,
        so in the unrolled step it changes dalpha and not the weights' gradient v."""
        with autocast(device, amp):
            logits = self.model(x_val)  # (B, classes)
        loss = F.cross_entropy(logits.float(), y_val)
        arch = self.model.arch()
        extra = self.model.variant.arch_loss_extra(arch)
        objective = loss if extra is None else loss + extra.float()
        if self.cost is not None:  # cost-aware search: the expected cost under the variant's op weights
            objective = objective + self.cost(self.model.variant.weights(arch)).float()
        return objective, loss.detach(), logits.detach()

    def _unrolled(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                  eta: float, w_optimizer: torch.optim.Optimizer, amp: bool,
                  device: torch.device) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        weights = self.model.weight_parameters()
        alphas = self.model.arch_parameters()
        w0 = [w.detach().clone() for w in weights]  # restored bit for bit at the end
        try:
            with autocast(device, amp):
                train_loss = self.model.loss(x_train, y_train)
            dw = torch.autograd.grad(train_loss, weights)
            average_(dw, self.world)  # w' is the next step of the global batch
            with torch.no_grad():
                for w, g, (momentum, wd, buf) in zip(weights, dw, _sgd_terms(weights, w_optimizer), strict=True):
                    step = g + wd * w if buf is None else momentum * buf + g + wd * w
                    w.sub_(eta * step)  # w -> w'
            objective, valid_loss, logits = self._valid_loss(x_val, y_val, amp, device)
            grads = torch.autograd.grad(objective, alphas + weights, allow_unused=True)
            grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(alphas + weights, grads, strict=True))
            average_(grads, self.world)
            dalpha, v = grads[: len(alphas)], grads[len(alphas):]  # v = dL_val(w')/dw'
            implicit = self._implicit(weights, w0, v, x_train, y_train)
            grads = [da - eta * h for da, h in zip(dalpha, implicit, strict=True)]
            return grads, valid_loss, logits
        finally:
            with torch.no_grad():
                for w, saved in zip(weights, w0, strict=True):
                    w.copy_(saved)

    def _implicit(self, weights: list[torch.nn.Parameter], w0: list[torch.Tensor], v: tuple[torch.Tensor, ...],
                  x_train: torch.Tensor, y_train: torch.Tensor) -> list[torch.Tensor]:
        """d2L_train(w, alpha)/(dalpha dw) . v, by a central difference of dL_train/dalpha along v.

        Where the loss is smooth, dL_train(w + R v)/dalpha = dL_train(w)/dalpha + R * (d2L/dalpha dw) v + O(R^2),
        so (g(w + R v) - g(w - R v)) / 2R is the Hessian-vector product with an O(R^2) error, for the cost of
        two gradients instead of a double backward (which would keep the whole supernet's second-order
        graph in memory). R = r / ||v|| makes the step r long whatever the scale of v. The supernet is not
        smooth (ReLU, max pooling): once kinks fall inside the radius, the difference is the slope of a
        secant, not the Hessian at w. That is the reference's estimator, and it is what runs; docs/darts.md
        gives the measured gap to exact double backpropagation. The passes run without autocast: the
        difference of two nearly equal gradients is what is being measured, and a half-precision forward
        would round the O(r) weight change away.
        """
        alphas = self.model.arch_parameters()
        R = self.r / torch.linalg.vector_norm(torch.cat([t.flatten() for t in v])).item()
        sides = []
        for sign in (1.0, -1.0):  # w+ = w + R v, then w- = w - R v; both around the original w, not w'
            with torch.no_grad():
                for w, w_orig, vi in zip(weights, w0, v, strict=True):
                    torch.add(w_orig, vi, alpha=sign * R, out=w)
            g = torch.autograd.grad(self.model.loss(x_train, y_train), alphas, allow_unused=True)
            sides.append([torch.zeros_like(a) if gi is None else gi for a, gi in zip(alphas, g, strict=True)])
            average_(sides[-1], self.world)
        return [(plus - minus) / (2 * R) for plus, minus in zip(*sides, strict=True)]


def _sgd_terms(weights: list[torch.nn.Parameter], w_optimizer: torch.optim.Optimizer,
               ) -> list[tuple[float, float, torch.Tensor | None]]:
    """(momentum, weight_decay, momentum buffer or None) of each weight, as the SGD optimiser will use them."""
    groups = {id(p): g for g in w_optimizer.param_groups for p in g["params"]}
    terms = []
    for w in weights:
        if id(w) not in groups:
            raise ValueError("every weight parameter must be in the weight optimiser for the unrolled step")
        group = groups[id(w)]
        if group.get("nesterov") or group.get("dampening"):
            raise ValueError("the unrolled step is the plain momentum SGD step: no nesterov, no dampening")
        buf = w_optimizer.state.get(w, {}).get("momentum_buffer") if group["momentum"] else None
        terms.append((group["momentum"], group["weight_decay"], buf))
    return terms

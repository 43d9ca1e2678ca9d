"""Collapse indicators: signs that a DARTS search is drifting towards a cell of skip connections.

Three kinds of evidence, all cheap enough to watch live (docs/collapse.md has the sources):

- `indicators`: every logged step, the mean per-edge entropy of the op weights (log 8 = 2.079 for a uniform
  row, 0 for a one-hot one) and, in the current genotype, the number of skip connections and of
  parameter-free ops (`space.PARAM_FREE`) per cell kind.
- `dominant_eigenvalue`: the largest eigenvalue of the Hessian of the validation loss with respect to the
  architecture parameters, by power iteration on exact Hessian-vector products (double backward). RobustDARTS
  (Zela et al., ICLR 2020) shows that it rises sharply when the search starts to overfit the architecture.
- `EarlyStopRule`: RobustDARTS's early stop on that series: local averages over `window` measurements; stop
  when the newest is more than `ratio` times the one `delta` measurements earlier, and keep the genotype of
  the measurement that earlier average is centred on (automl/RobustDARTS, src/utils.py EVLocalAvg).

`cap_skips`, P-DARTS's skip-connection cap, is a rule of derivation: it lives with the variants
(engine/variants/skip_cap.py) and is imported here for the loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.space.cnn.cell import CELL_KINDS, PARAM_FREE
from engine.variants import cap_skips, check_max_skip
from engine.variants.skip_cap import SKIP

__all__ = ["edge_entropy", "count_ops", "indicators", "dominant_eigenvalue", "EarlyStopRule", "cap_skips",
           "check_max_skip", "CollapseMonitor", "METRIC_KEYS"]

# Keys every logged metrics row carries (`hessian_eig` and `early_stop_step` only on the rows that measure or fire).
METRIC_KEYS = tuple(f"{name}_{kind}" for name in ("entropy", "skips", "param_free") for kind in CELL_KINDS)


def edge_entropy(weights: Any) -> float:
    """Mean over edges of the entropy (nats) of each edge's op weights, (edges, ops). A row that does not sum to
    one (FairDARTS's independent sigmoids) is normalised first, so the figure always reads as "how undecided"."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f"op weights must be a non-empty (edges, ops) matrix, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("op weights must be finite and non-negative")
    total = w.sum(axis=1, keepdims=True)
    p = np.divide(w, total, out=np.full_like(w, 1.0 / w.shape[1]), where=total > 0)
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return float(-plogp.sum(axis=1).mean())


def count_ops(genotype: Any, cell: str = "normal") -> dict[str, int]:
    """{"skips": skip connections, "param_free": ops without weights} among the kept (op, input) pairs of `cell`."""
    ops = [op for op, _ in getattr(genotype, cell)]
    return {"skips": sum(op == SKIP for op in ops), "param_free": sum(op in PARAM_FREE for op in ops)}


def indicators(weights: Mapping[str, Any], genotype: Any) -> dict[str, float | int]:
    """A metrics row's per-step indicators: entropy_normal/reduce, skips_normal/reduce, param_free_normal/reduce."""
    row: dict[str, float | int] = {}
    for kind in CELL_KINDS:
        row[f"entropy_{kind}"] = round(edge_entropy(weights[kind]), 6)
    for kind in CELL_KINDS:
        row[f"skips_{kind}"] = count_ops(genotype, kind)["skips"]
    for kind in CELL_KINDS:
        row[f"param_free_{kind}"] = count_ops(genotype, kind)["param_free"]
    return row


# ---------------------------------------------------------------------------------------------- Hessian
def dominant_eigenvalue(model: Any, x: Any, y: Any, iters: int = 20, tol: float = 1e-4, world: Any = None,
                        seed: int = 0) -> float:
    """The largest (algebraic) eigenvalue of d2 L_val / d alpha2 on the batch (x, y), where alpha are
    `model.arch_parameters()` and L_val the cross-entropy of `model(x)`.

    Power iteration on Hessian-vector products, each an exact double backward through one retained graph, so
    every product is of the same function (a sampling variant draws its sample once). Power iteration finds the
    eigenvalue of largest magnitude; when that one is negative, a second iteration on H - lambda I finds the
    largest. Stops when the Rayleigh quotient moves less than `tol` (relative) or after `iters` products.

    Leaves the search as it was: BatchNorm running statistics are left alone, the global RNG is forked and the
    start vector comes from its own generator (`seed`). Runs in float32 without autocast. Under torchrun
    (`world`), each product is averaged over the ranks: the Hessian of the global batch's loss."""
    import torch
    import torch.nn.functional as F

    from engine.nn.supernet import buffers_kept
    from engine.runtime.distributed import SINGLE, average_

    world = world or SINGLE
    params = list(model.arch_parameters())
    device = params[0].device
    forked = [device.index or 0] if device.type == "cuda" else []
    with buffers_kept(model), torch.random.fork_rng(devices=forked), torch.enable_grad():
        loss = F.cross_entropy(model(x).float(), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)

        def hvp(v: torch.Tensor) -> torch.Tensor:  # (n,) float64 on the CPU -> H v, the same
            v = v.to(device=device, dtype=params[0].dtype)
            parts, start = [], 0
            for p in params:
                parts.append(v[start:start + p.numel()].view_as(p))
                start += p.numel()
            out = torch.autograd.grad(grads, params, grad_outputs=parts, retain_graph=True, allow_unused=True)
            out = [torch.zeros_like(p) if o is None else o.detach() for p, o in zip(params, out, strict=True)]
            average_(out, world)
            return torch.cat([o.reshape(-1) for o in out]).double().cpu()

        n = sum(p.numel() for p in params)
        gen = torch.Generator().manual_seed(seed)
        start = torch.randn(n, generator=gen, dtype=torch.float64)
        top = _power(hvp, start, 0.0, iters, tol)
        if top < 0:  # the most negative one dominated: shift it to zero, the largest becomes dominant
            top = top + _power(hvp, start, top, iters, tol)
        return float(top)


def _power(hvp: Any, start: Any, shift: float, iters: int, tol: float) -> float:
    """Dominant eigenvalue of H - shift*I by power iteration (Rayleigh quotient of the unit iterate)."""
    v = start / start.norm()
    value = 0.0
    for k in range(max(int(iters), 1)):
        hv = hvp(v) - shift * v
        new = float(v @ hv)
        norm = float(hv.norm())
        if norm == 0.0 or not math.isfinite(norm):
            return 0.0 if norm == 0.0 else float("nan")
        v = hv / norm
        if k and abs(new - value) <= tol * max(abs(new), 1e-12):
            return new
        value = new
    return value


# ---------------------------------------------------------------------------------------------- early stop
class EarlyStopRule:
    """RobustDARTS's early stop (DARTS-ES) on a series of dominant eigenvalues measured at regular steps.

    Local average j = mean of the `window` measurements j-window+1 .. j (so centred on measurement j - window//2).
    The rule fires at the first measurement where local average j exceeds `ratio` times local average j-delta
    (which must be positive); the genotype to keep is the one of measurement (j - delta) - window//2, the centre
    of that earlier average. Defaults as in automl/RobustDARTS (window 5, delta 4, factor 1.3; the paper's
    "ratio below 0.75" is the same test turned over)."""

    def __init__(self, window: int = 5, delta: int = 4, ratio: float = 1.3):
        if window < 1 or delta < 1 or not ratio > 1:
            raise ValueError(f"early stop needs window >= 1, delta >= 1 and ratio > 1; got {window}, {delta}, {ratio}")
        self.window, self.delta, self.ratio = window, delta, ratio
        self.steps: list[int] = []
        self.values: list[float] = []
        self.fired: int | None = None  # the step whose genotype the rule keeps, once it has fired

    def averages(self) -> list[float]:
        """The local averages so far (one per measurement from the window-th on)."""
        w = self.window
        return [float(np.mean(self.values[j - w + 1:j + 1])) for j in range(w - 1, len(self.values))]

    def update(self, step: int, value: float) -> int | None:
        """Add a measurement; return the step to go back to when the rule fires now (once), else None."""
        self.steps.append(int(step))
        self.values.append(float(value))
        if self.fired is not None:
            return None
        avg = self.averages()
        if len(avg) <= self.delta:
            return None
        now, before = avg[-1], avg[-1 - self.delta]
        if not (before > 0 and math.isfinite(now) and now > self.ratio * before):
            return None
        j_before = len(self.values) - 1 - self.delta  # measurement index that ends the earlier average
        self.fired = self.steps[j_before - self.window // 2]
        return self.fired

    def truncate(self, step: int) -> None:
        """Forget measurements after `step` (a rollback or a resume redoes them)."""
        keep = sum(s <= step for s in self.steps)
        self.steps, self.values = self.steps[:keep], self.values[:keep]
        if self.fired is not None and (not self.steps or self.fired > self.steps[-1] or not self._fires_again()):
            self.fired = None

    def _fires_again(self) -> bool:
        steps, values, self.steps, self.values, self.fired = self.steps, self.values, [], [], None
        for s, v in zip(steps, values, strict=True):
            self.update(s, v)
        return self.fired is not None


# ---------------------------------------------------------------------------------------------- in the loop
class CollapseMonitor:
    """What the search loop asks: the indicators of a logged row, the eigenvalue every `hessian_every` steps and
    the early-stop rule on that series (with the genotype of each measurement, to go back to)."""

    def __init__(self, hessian_every: int = 0, world: Any = None, rule: EarlyStopRule | None = None):
        self.hessian_every = int(hessian_every)
        self.world = world
        self.rule = rule or EarlyStopRule()
        self.genotypes: dict[int, Any] = {}

    def due(self, step: int) -> bool:
        """Whether this step measures the eigenvalue (the loop then logs it, whatever `log_every` says)."""
        return self.hessian_every > 0 and step % self.hessian_every == 0

    def measure(self, model: Any, genotype: Any, valid: Sequence[Any], step: int) -> dict[str, Any]:
        """The collapse keys of a metrics row at `step`: the indicators, and where due `hessian_eig` (and
        `early_stop_step`, the step the rule goes back to, on the row where it fires)."""
        row: dict[str, Any] = indicators(model.op_weights(), genotype)
        if self.due(step):
            eig = dominant_eigenvalue(model, valid[0], valid[1], world=self.world)
            row["hessian_eig"] = round(eig, 7) if math.isfinite(eig) else None
            self.genotypes[step] = genotype
            if math.isfinite(eig):
                fired = self.rule.update(step, eig)
                if fired is not None:
                    row["early_stop_step"] = fired
        return row

    def stop_genotype(self) -> Any:
        return None if self.rule.fired is None else self.genotypes.get(self.rule.fired)

    def truncate(self, step: int) -> None:
        self.rule.truncate(step)
        self.genotypes = {s: g for s, g in self.genotypes.items() if s <= step}

    def restore(self, metrics: Sequence[Mapping[str, Any]], alphas: Sequence[Mapping[str, Any]], variant: Any,
                max_skip: int | None = None) -> None:
        """On resume: replay the recorded eigenvalues (metrics rows up to now) and rebuild their genotypes."""
        by_step = {int(r["step"]): r for r in alphas}
        for row in metrics:
            eig = row.get("hessian_eig")
            if isinstance(eig, (int, float)) and math.isfinite(eig):
                step = int(row["step"])
                self.rule.update(step, float(eig))
                if step in by_step:
                    from engine.variants import arch_of

                    self.genotypes[step] = cap_skips(variant, arch_of(by_step[step]), max_skip)

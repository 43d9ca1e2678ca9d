"""What a sweep found: per member, per group of members that differ only by the seed, and between two groups.

A group's figures are the final values of its members (mean, sample standard deviation, range), how often each
op won each edge across its seeds (beside the mean op weights), and the distinct cells it found with how many
seeds found each. Two groups are compared with an exact two-sided permutation test of the difference of their
means: every way of splitting the pooled members into two groups of the same sizes is enumerated, and the
p-value is the share of splits whose difference is at least as large as the one observed. It assumes only that,
were the settings irrelevant, the seeds' results would be exchangeable between the groups; it assumes no
normal distribution, which four seeds could not show. With 4 and 4 members the smallest possible p-value is
2/70 (about 0.03), so a small sweep can say "larger than the seed-to-seed spread" only for a clear difference.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.runs import rundir
from engine.sweep.run import member_states
from engine.sweep.spec import Member, Sweep

__all__ = ["MemberResult", "GroupSummary", "member_results", "group_summaries", "permutation_test", "compare_groups",
           "compare_values", "FIGURES"]

# The final figures a group summarises: metrics.jsonl keys, and the skip count of the final normal cell; a
# training's test accuracy (the second stage).
FIGURES = ("valid_acc", "train_acc", "skips_normal", "hessian_eig", "test_acc")


@dataclass
class MemberResult:
    member: Member
    state: str
    step: int
    figures: dict[str, float | None]
    genotype: str | None                              # the final cell in the reference's text form
    winners: dict[str, np.ndarray] = field(default_factory=dict)   # cell kind -> (edges,) index of the op that won
    weights: dict[str, np.ndarray] = field(default_factory=dict)   # cell kind -> (edges, ops) op weights


def _last(rows: list[dict[str, Any]], key: str) -> float | None:
    for row in reversed(rows):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def member_results(sweep: Sweep, kind: str = "search") -> list[MemberResult]:
    """Each member's state and final figures, read from its run directory (a pending member has none); the
    searches, or with kind="train" the trainings of the second stage."""
    from engine.variants import record_genotype, record_weights, run_skip_cap

    out, states = [], member_states(sweep)
    for member in sweep.members if kind == "search" else sweep.trainings:
        run_dir = sweep.run_dir(member)
        state = states[member.name]
        if not (run_dir / rundir.CONFIG).exists():
            out.append(MemberResult(member, state, 0, dict.fromkeys(FIGURES), None))
            continue
        metrics, alphas = rundir.read_metrics(run_dir), rundir.read_alphas(run_dir)
        config = rundir.read_config(run_dir).get("config", {})
        figures = {key: _last(metrics, key) for key in FIGURES}
        result = MemberResult(member, state, int(metrics[-1]["step"]) if metrics else 0, figures, None)
        if member.kind == "train":
            genotype = rundir.latest_genotype(run_dir)
            result.genotype = None if genotype is None else genotype.to_darts()
        elif alphas:
            weights = record_weights(alphas[-1], config)
            result.weights = {k: weights[k] for k in ("normal", "reduce")}
            result.winners = {k: np.argmax(w, axis=1) for k, w in result.weights.items()}
            genotype = record_genotype(alphas[-1], config, run_skip_cap(config))
            result.genotype = genotype.to_darts()
            figures["skips_normal"] = float(sum(op == "skip_connect" for op, _ in genotype.normal))
        out.append(result)
    return out


@dataclass
class GroupSummary:
    settings: tuple[tuple[str, Any], ...]
    members: list[MemberResult]
    stats: dict[str, dict[str, float | int | None]]    # figure -> n, mean, std, min, max
    win_freq: dict[str, np.ndarray]                    # cell kind -> (edges, ops): share of seeds whose op won
    mean_weights: dict[str, np.ndarray]                # cell kind -> (edges, ops)
    cells: list[tuple[str, int]]                       # distinct final cells, most often found first

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings) or "all members"

    def values(self, figure: str) -> list[float]:
        return [v for r in self.members if (v := r.figures.get(figure)) is not None]


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    a = np.asarray(values, dtype=np.float64)
    return {"n": len(a), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else None,
            "min": float(a.min()), "max": float(a.max())}


def group_summaries(results: list[MemberResult]) -> list[GroupSummary]:
    """One summary per group (the members' settings without the seed), in the sweep's order."""
    groups: dict[tuple[tuple[str, Any], ...], list[MemberResult]] = {}
    for r in results:
        groups.setdefault(tuple((k, repr(v)) for k, v in r.member.group), []).append(r)
    out = []
    for members in groups.values():
        stats = {key: _stats([v for r in members if (v := r.figures.get(key)) is not None]) for key in FIGURES}
        with_alphas = [r for r in members if r.weights]
        win_freq, mean_weights = {}, {}
        for kind in ("normal", "reduce"):
            if not with_alphas:
                continue
            shape = with_alphas[0].weights[kind].shape
            counts = np.zeros(shape)
            for r in with_alphas:
                counts[np.arange(shape[0]), r.winners[kind]] += 1
            win_freq[kind] = counts / len(with_alphas)
            mean_weights[kind] = np.mean([r.weights[kind] for r in with_alphas], axis=0)
        cells = Counter(r.genotype for r in members if r.genotype is not None).most_common()
        out.append(GroupSummary(members[0].member.group, members, stats, win_freq, mean_weights, cells))
    return out


def permutation_test(a: list[float], b: list[float]) -> float:
    """Exact two-sided permutation p-value of mean(a) - mean(b) (see the module's docstring)."""
    if not a or not b:
        raise ValueError("each group needs at least one value")
    pooled = np.asarray(a + b, dtype=np.float64)
    observed = abs(np.mean(a) - np.mean(b))
    n, total = len(a), pooled.sum()
    hits = count = 0
    for chosen in itertools.combinations(range(len(pooled)), n):
        s = pooled[list(chosen)].sum()
        diff = abs(s / n - (total - s) / (len(pooled) - n))
        hits += diff >= observed - 1e-12  # ties count as at least as large
        count += 1
    return hits / count


def compare_groups(g1: GroupSummary, g2: GroupSummary, figure: str = "valid_acc") -> str:
    """One plain sentence: is the difference between the groups larger than the seed-to-seed spread?"""
    return compare_values(figure, g1.label, g1.values(figure), g2.label, g2.values(figure))


def compare_values(figure: str, label_a: str, a: list[float], label_b: str, b: list[float]) -> str:
    """compare_groups on any per-seed figure: `a` and `b`, one value a seed of each group."""
    if len(a) < 2 or len(b) < 2:
        return (f"{figure}: too few finished seeds to compare ({len(a)} and {len(b)}; at least 2 each, "
                "and 4 or more to resolve anything but a large difference)")
    p = permutation_test(a, b)
    diff = float(np.mean(a) - np.mean(b))
    spread = max(float(np.std(a, ddof=1)), float(np.std(b, ddof=1)))
    verdict = ("larger than the seed-to-seed spread" if p <= 0.05
               else "not distinguishable from the seed-to-seed spread")
    return (f"{figure}: {label_a} minus {label_b} = {diff:+.4f} (seed spread up to {spread:.4f}); "
            f"{verdict} (exact permutation test, p = {p:.3f}, {len(a)} vs {len(b)} seeds)")

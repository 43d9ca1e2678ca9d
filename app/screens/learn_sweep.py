"""The collapse lesson's second half: how often collapse happens, read from a sweep shipped with dartboard (the
`collapse` preset searched with several seeds by DARTS and by beta-DARTS, assets/sweeps/collapse), where the
first half plays one recording per variant."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from app import nav, state
from app.figures import alt, collapse
from app.figures.sweeps import band_figure
from app.screens.sweeps import shipped_key
from engine.runs import examples
from engine.sweep.report import MemberResult, compare_values, member_results
from engine.sweep.spec import Sweep, SweepError, load_sweep

__all__ = ["COLLAPSED_SKIPS", "SeedRun", "seed_runs", "collapse_rates", "render"]

# A normal cell "collapsed" when it keeps more skip connections than the paper's own DARTS_V2 cell (2 of 8):
# a cell the paper would call healthy is not counted, whatever the supernet did on the way.
COLLAPSED_SKIPS = 3
_VARIANTS = {"darts": "DARTS", "beta_darts": "beta-DARTS"}


@dataclass(frozen=True)
class SeedRun:
    """One member of the sweep: its variant, seed, and the normal cell's counts it measured."""
    variant: str
    seed: int
    state: str
    final_skips: int
    final_free: int
    peak_skips: int          # the most skip connections from `settled` on
    valid_acc: float | None
    metrics: list[dict[str, Any]]

    @property
    def collapsed(self) -> bool:
        return self.final_skips >= COLLAPSED_SKIPS


def seed_runs(sweep: Sweep, results: Sequence[MemberResult], settled: int) -> list[SeedRun]:
    """Every finished member of the sweep (`results`: member_results(sweep)), in its order, with the counts its
    metrics recorded."""
    out = []
    for r in results:
        if r.state != "finished":
            continue
        metrics = state.metrics_records(sweep.run_dir(r.member))
        steps, skips, free = collapse.normal_cell_counts(metrics)
        if not steps:
            continue
        later = [k for s, k in zip(steps, skips, strict=True) if s >= settled]
        out.append(SeedRun(str(r.member.settings.get("variant", "")), int(r.member.settings["seed"]), r.state,
                           skips[-1], free[-1], max(later, default=0), r.figures.get("valid_acc"), metrics))
    return out


def collapse_rates(runs: Sequence[SeedRun]) -> dict[str, tuple[int, int]]:
    """variant -> (seeds whose final normal cell collapsed, seeds), in the sweep's order."""
    out: dict[str, tuple[int, int]] = {}
    for r in runs:
        hit, n = out.get(r.variant, (0, 0))
        out[r.variant] = (hit + r.collapsed, n + 1)
    return out


def _name(variant: str) -> str:
    return _VARIANTS.get(variant, variant)


def _table(runs: Sequence[SeedRun]) -> pd.DataFrame:
    return pd.DataFrame([{"variant": _name(r.variant), "seed": r.seed, "skips (last cell)": r.final_skips,
                          "parameter-free (last cell)": r.final_free, "most skips": r.peak_skips,
                          "collapsed": "yes" if r.collapsed else "no", "supernet valid acc": r.valid_acc}
                         for r in runs])


def render(prose: Callable[..., None], settled: int, lecture: bool = False) -> None:
    """The sweep's answer, or a note that this copy of dartboard does not ship it."""
    st.subheader("How often? The same preset over several seeds")
    path = examples.shipped_sweep(examples.COLLAPSE_SWEEP)
    try:
        sweep = load_sweep(path) if path is not None else None
    except SweepError as e:
        st.warning(f"The shipped collapse sweep cannot be read: {e}")
        return
    results = member_results(sweep) if sweep is not None else []
    runs = seed_runs(sweep, results, settled) if sweep is not None else []
    if not runs:
        st.info("The lesson's sweep (assets/sweeps/collapse) is not in this copy of dartboard.")
        return
    rates = collapse_rates(runs)
    prose("lesson_seeds", seeds=str(len(sweep.seeds)), collapsed=str(COLLAPSED_SKIPS), settled=str(settled))
    st.markdown("\n".join(f"- **{_name(v)}**: {hit} of {n} seeds ended with a collapsed normal cell "
                          f"({COLLAPSED_SKIPS} or more skip connections of 8)" for v, (hit, n) in rates.items()))
    groups = {_name(v): [r.metrics for r in runs if r.variant == v] for v in rates}
    band = band_figure(groups, "skips_normal", "Skip connections in the normal cell: mean and range over the seeds",
                       height=420 if lecture else 360)
    band.update_yaxes(range=[-0.2, 8.2], title="skip connections")
    st.plotly_chart(band, key="learn.collapse_seeds.band", alt=alt.plotly_alt(band))
    st.dataframe(_table(runs), hide_index=True, width="stretch",
                 column_config={"supernet valid acc": st.column_config.NumberColumn(format="%.3f")})
    if len(rates) == 2:  # in plain words, the test the Sweeps page uses on its groups
        first, second = rates
        figures = {"skip connections in the last normal cell": lambda r: float(r.final_skips),
                   f"most skip connections from step {settled} on": lambda r: float(r.peak_skips),
                   "supernet validation accuracy": lambda r: r.valid_acc}
        lines = []
        for figure, value in figures.items():
            a, b = ([value(r) for r in runs if r.variant == v and value(r) is not None] for v in (first, second))
            lines.append(compare_values(figure, _name(first), a, _name(second), b))
        st.markdown("\n".join(f"- {line}" for line in lines))
    prose("lesson_seeds_result", settled=str(settled))
    if st.button("Open the sweep", key="learn.collapse_lesson.sweep",
                 help="every member, the op each edge chose across the seeds, and the distinct cells, on the Sweeps "
                      "page"):
        nav.switch_to("sweeps", {"sweep": shipped_key(sweep.path.name)})

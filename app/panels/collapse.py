"""Collapse indicators on the live panel: op-weight entropy, skip and parameter-free counts of the current genotype,
the Hessian's dominant eigenvalue with RobustDARTS's early-stop warning, and P-DARTS's skip cap
(engine/search/collapse.py, docs/collapse.md); and the cells' expected and derived cost of a cost-aware
search (engine/nn/cost.py). `frames` and `early_stop_note` are plain functions, tested without Streamlit."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from app.figures import alt, glossary

__all__ = ["render", "frames", "history", "early_stop_note", "SERIES", "SECTIONS", "EIGEN_OFF"]

# chart -> (title, [(metrics key, series label)])
SERIES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "entropy": ("Mean op-weight entropy per edge (nats; uniform = ln 8 = 2.08)",
                [("entropy_normal", "normal"), ("entropy_reduce", "reduce")]),
    "counts": ("Current genotype: skip connections and parameter-free ops",
               [("skips_normal", "skips, normal"), ("param_free_normal", "param-free, normal"),
                ("skips_reduce", "skips, reduce"), ("param_free_reduce", "param-free, reduce")]),
    "eigen": ("Dominant eigenvalue of the valid loss's Hessian (architecture)", [("hessian_eig", "eigenvalue")]),
    # cost-aware search (engine/nn/cost.py): the search network's cells, expected under the op weights vs derived
    "params": ("Parameters of the cells: expected under the op weights vs the derived genotype",
               [("expected_params", "expected"), ("cell_params", "derived genotype")]),
    "madds": ("Mult-adds of the cells (one sample): expected vs the derived genotype",
              [("expected_madds", "expected"), ("cell_madds", "derived genotype")]),
}
# What the page says where the eigenvalue chart would be, in the sidebar's words.
EIGEN_OFF = ("No Hessian eigenvalue measured: to turn it on, set **Hessian eigenvalue every (steps)** above 0 in "
             "the sidebar's **Collapse indicators and cost** box before Start (and **Early stop (RobustDARTS)** to "
             "act on it).")
# the live panel's two rows of these charts
SECTIONS = {"Collapse indicators": ("entropy", "counts", "eigen"), "Cost of the cells": ("params", "madds")}


def frames(metrics: Sequence[Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """Long-form data (step, series, value) of each chart; a chart whose keys no row has is left out."""
    out = {}
    for chart, (_, keys) in SERIES.items():
        rows = [{"step": int(m["step"]), "series": label, "value": float(m[k])}
                for m in metrics for k, label in keys if isinstance(m.get(k), (int, float))]
        if rows:
            out[chart] = pd.DataFrame(rows, columns=["step", "series", "value"])
    return out


def early_stop_note(metrics: Sequence[Mapping[str, Any]], config: Mapping[str, Any] | None) -> str | None:
    """The warning to show once RobustDARTS's rule has fired (a row with `early_stop_step`), else None."""
    fired = [m for m in metrics if isinstance(m.get("early_stop_step"), int)]
    if not fired:
        return None
    row = fired[0]
    then = ("the search stopped and kept the genotype of that step" if (config or {}).get("early_stop")
            else "early_stop is off, so the search goes on; the cell of that step is the one RobustDARTS would keep")
    return (f"Early stop (RobustDARTS) fired at step {row['step']}: the dominant eigenvalue's local average rose "
            f"more than 1.3x within 4 measurements, from about step {row['early_stop_step']}; {then}.")


def _cost_caption(config: Mapping[str, Any] | None) -> str:
    """What the cost charts count, and whether the search is penalised for it."""
    c = config or {}
    what = ("The cells' ops only (no stem, preprocessing or classifier), at the search network's size; the "
            "expected cost weights each op's cost by its op weight.")
    if not c.get("cost_weight"):
        return what + (" Not penalised, so these lines only watch the cost: for a cost-aware search set "
                       "**Cost penalty weight** above 0 (and a **Cost budget**) in the sidebar's **Collapse "
                       "indicators and cost** box before Start.")
    budget = c.get("cost_budget")
    return (what + f" Penalised: {c['cost_weight']} x expected {c.get('cost_kind', 'params')} in millions"
            + (f" above a budget of {budget:,.0f}." if budget else "."))


def _chart(data: pd.DataFrame, title: str, key: str) -> None:
    spec = {"title": title, "width": "container", "height": 200, "mark": {"type": "line", "point": True},
            "encoding": {"x": {"field": "step", "type": "quantitative", "scale": {"zero": False}},
                         "y": {"field": "value", "type": "quantitative", "title": None},
                         "color": {"field": "series", "type": "nominal", "legend": {"orient": "bottom",
                                                                                    "title": None}}}}
    with st.container(key=key):
        st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))


def _cap(snap: Any, key: str) -> None:
    """P-DARTS's cap on the current architecture: the genotype with at most K skips per normal cell, to download."""
    from engine.search.collapse import count_ops
    from engine.variants import derive

    if not snap.alphas or "normal" not in snap.alphas:
        return
    cap = (snap.config or {}).get("max_skip")
    k = st.number_input("Cap skip connections per normal cell at K (P-DARTS keeps 2)", 0, 64,
                        value=2 if not isinstance(cap, int) else min(max(cap, 0), 64), key=f"{key}.collapse.max_skip")
    try:
        capped = derive(snap.alphas, snap.config or "darts", max_skip=int(k))
    except (ValueError, KeyError) as e:
        st.caption(f"No capped genotype: {e}")
        return
    st.code(capped.to_darts(), language="python")
    st.caption(f"{count_ops(capped)['skips']} skip connection(s) in the normal cell.")
    st.download_button("Download the capped genotype (JSON)", json.dumps({"genotype": capped.to_dict(),
                                                                          "max_skip": int(k)}, indent=2),
                       file_name=f"genotype-max-skip-{int(k)}.json", mime="application/json",
                       key=f"{key}.collapse.download")


def history(snap: Any, read: Any = None) -> list[Mapping[str, Any]]:
    """The metrics rows the charts and the early-stop warning read: the snapshot's, which keep the latest 500
    logged steps, or, once a long run that measures the Hessian's eigenvalue has scrolled older rows out of them,
    the whole metrics.jsonl (so an early stop that fired long ago still warns, and the eigenvalue curve keeps its
    start). Only such a run pays for the re-read on each refresh: without eigenvalues there is no early stop,
    and the other charts are fine with the latest 500 steps."""
    metrics = list(snap.metrics or ())
    measures = int((getattr(snap, "config", None) or {}).get("hessian_every") or 0) > 0
    if not measures or not metrics or int(metrics[0].get("step", 1)) <= 1 or not getattr(snap, "run_dir", None):
        return metrics
    if read is None:
        from .. import state

        read = state.metrics_records
    try:
        full = read(snap.run_dir)
    except OSError:
        return metrics
    return list(full) if full and int(full[-1].get("step", 0)) >= int(metrics[-1].get("step", 0)) else metrics


def render(snap: Any, key: str = "live") -> None:
    """The collapse section of the live panel for a snapshot (its metrics rows, config and alphas)."""
    metrics = history(snap)
    data = frames(metrics)
    if not data:
        return  # a run without the indicators (recorded before they existed)
    with st.expander("What these charts mean"):
        for term in ("Entropy (nats)", "Hessian eigenvalue", "Early stop (RobustDARTS)", "Mult-adds",
                     "Cost penalty weight"):
            st.markdown(f"**{term}**: {glossary.explain(term)}")
    for section, names in SECTIONS.items():
        charts = [c for c in names if c in data]
        if not charts:
            continue
        st.subheader(section)
        if section == "Collapse indicators":
            note = early_stop_note(metrics, snap.config)
            if note:
                st.warning(note)
        else:
            st.caption(_cost_caption(snap.config))
        for place, chart in zip(st.columns(len(charts)), charts, strict=True):
            with place:
                _chart(data[chart], SERIES[chart][0], f"{key}.collapse.{chart}")
        if section == "Collapse indicators" and "eigen" not in data:
            st.caption(EIGEN_OFF)
    with st.expander("Skip-connection cap (P-DARTS)"):
        _cap(snap, key)

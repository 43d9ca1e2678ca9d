"""The alpha-argmax cell beside DARTS-PT's, for a search where `python -m engine derive RUN --method pt` ran: per
cell the op weights beside the accuracy PT measured with each op removed, the two cells drawn together with the
table of where they differ, and one sentence per edge where the two rules disagree (docs/derivation.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from app.figures import alt, cells_dot, heatmaps, pt, tables
from app.panels import cells
from engine.derive.rows import decisions, genotype_of_rows, read_rows
from engine.runs.catalog import RunInfo
from engine.runs.handle import RunHandle
from engine.runs.rundir import RunDirError
from engine.space.cnn.cell import PRIMITIVES, edge_endpoints

__all__ = ["render"]

_RULES = ("alpha argmax", "PT")


def _last_alphas(info: RunInfo, nodes: int) -> tuple[dict[str, np.ndarray], Any]:
    """The op weights of the run's last recorded alphas and the cell its own rule derives from them: what PT's
    "largest weight" means, on the alphas PT started from (a finished or stopped search's last record)."""
    run = RunHandle(info.path)
    records = run.alphas()
    if records:
        return run.weights(records[-1]), run.genotype_of(records[-1])
    blank = np.full((len(edge_endpoints(nodes)), len(PRIMITIVES)), np.nan)
    return {kind: blank for kind in cells.CELLS}, None


def render(info: RunInfo, key: str = "runs.pt") -> None:
    """Draws nothing for a run PT never ran on; says so, and draws nothing else, for a run it cannot read."""
    nodes = (info.config or {}).get("nodes", 4)
    if not isinstance(nodes, int) or nodes < 1:
        return
    rows = read_rows(info.path, nodes)
    if not rows:
        return
    try:
        weights, argmax = _last_alphas(info, nodes)
    except (RunDirError, OSError, ValueError, KeyError) as err:
        st.caption(f"DARTS-PT ran on this search, but its alphas cannot be read: {err}")
        return
    total = decisions(nodes)
    st.markdown("**Two ways to read this supernet: the largest op weight, and DARTS-PT**")
    st.caption(f"PT (`python -m engine derive RUN --method pt`) removed each op in turn and measured the supernet's "
               f"accuracy without it, keeping the op whose removal hurt most. {len(rows)} of {total} decisions "
               "made" + ("." if len(rows) >= total else "; run the same command again to continue it."))
    lecture = cells.lecture_on()
    for kind, title in cells.CELLS.items():
        left, right = st.columns(2)
        w = pt.row_weights(rows, kind, weights[kind])
        spec, data = heatmaps.heatmap_vega(w, title=f"{title}: op weights", lecture=lecture)
        with left.container(key=f"{key}.weights.{kind}"):
            st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))
        spec, data = pt.masked_vega(pt.masked_accuracy(rows, kind, nodes), pt.kept_ops(rows, kind, nodes),
                                    title=f"{title}: accuracy with the op removed (outlined: kept)",
                                    lecture=lecture)
        with right.container(key=f"{key}.masked.{kind}"):
            st.vega_lite_chart(data, spec, width="stretch", alt=alt.vega_alt(spec))
    lines = pt.disagreements(rows)
    if lines:
        st.markdown(f"**Where the two rules disagree** ({len(lines)} edge(s))")
        st.markdown("\n".join(f"- {line}" for line in lines))
    else:
        st.caption("On every edge decided so far, PT kept the op with the largest op weight.")
    found = genotype_of_rows(rows, nodes)
    if found is None or argmax is None:
        return
    _cells_side_by_side(argmax, found)


def _cells_side_by_side(argmax: Any, found: Any) -> None:
    for kind, title in cells.CELLS.items():
        cols = st.columns(2)
        for col, rule, genotype in zip(cols, _RULES, (argmax, found), strict=True):
            with col:
                st.caption(f"{title}, {rule}")
                st.graphviz_chart(cells_dot.cell_dot(genotype, cell=kind), width="stretch",
                                  alt=alt.cell_alt(genotype, kind))
    frame = tables.compare_genotypes_frame(argmax, found, names=_RULES)
    st.dataframe(frame, hide_index=True, width="stretch")
    st.caption(f"{(frame['same'] == 'yes').sum()} of {len(frame)} edges are the same. Which cell is better shows "
               "only once both are trained (docs/derivation.md has both trained on a demo search).")

"""Zero-cost proxies beside trained accuracies (the Runs page's trainings compared, on request): each training's
cell scored as `python -m engine score` scores it, and the proxies' rank correlation with the test accuracies over
these cells (engine/derive/proxies.py; docs/derivation.md says what they are worth)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from app import state
from engine.runs import rundir
from engine.runs.catalog import RunInfo

__all__ = ["render"]


def render(chosen: Sequence[RunInfo], frame: pd.DataFrame) -> None:
    """Each training's proxies beside its test accuracy, and their rank correlation over these cells."""
    from engine.derive.proxies import proxy_correlation

    rows = []
    with st.spinner("Scoring the cells' untrained networks..."):
        for t in chosen:
            rec = rundir.read_config(t.path)
            try:
                scores = state.proxy_scores(json.dumps(rec["genotype"], sort_keys=True),
                                            json.dumps(rec["config"], sort_keys=True))
            except (KeyError, TypeError, ValueError, RuntimeError, OSError) as err:  # a run this code cannot rebuild
                st.warning(f"{t.run_id}: no proxies ({type(err).__name__}: {err})")
                continue
            rows.append({"run": t.run_id, "test_acc": t.test_acc, "proxies": scores})
    if not rows:
        return
    table = frame[frame["run"].isin([r["run"] for r in rows])][["run", "genotype", "test acc"]].copy()
    for key, label in (("synflow", "synflow"), ("naswot", "NASWOT"), ("grad_norm", "grad-norm")):
        table[label] = [r["proxies"][key] for r in rows]
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"test acc": st.column_config.NumberColumn(format="%.4f")})
    corr = proxy_correlation(rows)
    st.caption("Proxies of freshly initialised networks on one batch: not accuracy. "
               + ("Rank correlation with test accuracy over these "
                  f"{corr[0]} cells: " + ", ".join(f"{k} {'-' if v is None else f'{v:+.2f}'}"
                                                   for k, v in corr[1].items())
                  + ". On the DARTS space the literature finds these proxies weak (docs/derivation.md)."
                  if corr is not None else "Three trained cells or more give a rank correlation."))

"""Cell scores in seconds on the Train page: the chosen genotype's parameters, mult-adds and zero-cost proxies at a
training preset's size, each as a percentile of the shipped reference set, and, where this runs root holds finished
trainings of that preset, each column's rank correlation with their test accuracies (what `python -m engine score`
prints; engine/derive/proxies.py, docs/derivation.md). Labelled as proxies, never as accuracy."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from app import state

__all__ = ["render", "COLUMNS", "SCORE_LABEL"]

SCORE_LABEL = "Score it (seconds)"
COLUMNS = {"parameters": "parameters", "mult_adds": "mult-adds", "synflow": "synflow", "naswot": "NASWOT",
           "grad_norm": "grad-norm"}


def scores_of(spec: str, preset: str) -> dict[str, Any]:
    """{"scores", "percentiles" (None when the reference was scored at another size), "reference_cells"} of a
    GENOTYPE argument (a known name, random:SEED, a search run) at a training preset's size."""
    from engine.train.source import resolve_genotype

    genotype, _ = resolve_genotype(spec)
    return _scores(json.dumps(genotype.to_dict(), sort_keys=True), preset)


@st.cache_data(max_entries=128, show_spinner=False)
def _scores(genotype_json: str, preset: str) -> dict[str, Any]:
    from engine.derive import proxies
    from engine.space.cnn.genotype import Genotype
    from engine.train.config import from_train_preset

    scores = proxies.score_genotype(Genotype.from_dict(json.loads(genotype_json)), preset)
    try:
        reference = proxies.load_reference()
    except proxies.ReferenceError:
        return {"scores": scores, "percentiles": None, "reference_cells": 0}
    same = proxies.comparable(reference, from_train_preset(preset))
    return {"scores": scores, "percentiles": proxies.reference_percentiles(scores, reference) if same else None,
            "reference_cells": len(reference["cells"]) if same else 0}


def _correlation(preset: str) -> tuple[int, dict[str, float | None]]:
    """(trained cells, each column's Spearman correlation with their test accuracy) over this runs root's
    finished trainings of `preset` (the scores of each cached like any other)."""
    from engine.derive import proxies

    trained = proxies.trained_cells(state.registry().runs_dir, preset)
    scored = [_scores(json.dumps(t["genotype"].to_dict(), sort_keys=True), preset)["scores"] for t in trained]
    return len(trained), proxies.correlations(scored, [t["test_acc"] for t in trained]) if trained else {}


def render(spec: str, label: str, preset: str) -> None:
    """The expander with the score button; the table once asked (a few seconds the first time a cell is scored)."""
    with st.expander("Score this cell in seconds: proxies, not accuracy"):
        st.caption("The untrained network the preset trains for this cell, scored on one batch of its training "
                   "images: parameters, mult-adds and three zero-cost proxies (synflow, NASWOT, grad-norm), each "
                   "ranked among the shipped reference cells. On the DARTS space these proxies rank cells about as "
                   "well as the parameter count does (NAS-Bench-Suite-Zero; docs/derivation.md): a first signal, "
                   "not a result.")
        if not st.button(SCORE_LABEL, key="train.score"):
            return
        try:
            with st.spinner("Scoring the untrained network..."):
                result = scores_of(spec, preset)
                n, corr = _correlation(preset)
        except (ValueError, RuntimeError, OSError) as err:  # a genotype or preset this cannot build: say why
            st.error(f"Cannot score {label}: {err}")
            return
        pct = result["percentiles"]
        st.dataframe(pd.DataFrame({"score": list(COLUMNS.values()),
                                   "value": [result["scores"][k] for k in COLUMNS],
                                   "percentile": [None if pct is None else pct[k] for k in COLUMNS]}),
                     hide_index=True, width="stretch",
                     column_config={"percentile": st.column_config.NumberColumn(format="%.0f%%")})
        st.caption((f"Percentile among {result['reference_cells']} reference cells (random cells and the published "
                    "ones, assets/proxies/reference.json). " if pct is not None else
                    f"No percentiles: the reference set was scored at another preset than {preset}. ")
                   + (f"Rank correlation with test accuracy over the {n} finished {preset} trainings here: "
                      + ", ".join(f"{COLUMNS[k]} {'-' if v is None else f'{v:+.2f}'}" for k, v in corr.items())
                      + "." if n >= 3 else
                      f"{n} finished {preset} trainings here: three or more give a rank correlation with accuracy."))

"""The Learn page's answer to "is the biggest alpha the best op?": a shipped demo search read by the argmax rule and
by DARTS-PT side by side (app/panels/pt_view.py), after the derivation rule it questions."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from app.panels import pt_view
from engine.runs import examples

__all__ = ["render", "RECORDING"]

RECORDING = "demo-pt"   # scripts/record_example.py --name demo-pt: a demo search and DARTS-PT's pt.jsonl on it


def render(prose: Callable[[str], None], key: str = "learn.pt") -> None:
    recording = examples.example(RECORDING)
    if recording is None:  # an installation without the recording: the rule above stands alone
        return
    st.subheader("The largest op weight, or what the supernet needs? DARTS-PT")
    prose("pt")
    pt_view.render(recording, key=key)

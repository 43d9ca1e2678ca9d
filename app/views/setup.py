"""Sidebar run setup: a preset, then the fields people change most, validated by the engine's rules.

Each row of widgets has a slot under it; a `ConfigError` from building the config lands in the slot of the
field it names, so a bad value reads as a message next to the box (never an exception box), and
Start stays disabled until the config is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from engine.config import DATASETS, DEVICES, ORDERS, PRESETS, ConfigError, SearchConfig, from_preset
from engine.variants import variant_names

__all__ = ["FIELDS", "START_LABEL", "render"]

START_LABEL = "Start search"

# field -> (label, kind, choices or number step, help)
FIELDS: dict[str, tuple[str, str, Any, str]] = {
    "dataset": ("Dataset", "select", DATASETS, "embedded = the Fashion-MNIST subset shipped with dartboard"),
    "variant": ("Variant", "select", variant_names(), "how alphas become op weights"),
    "order": ("Order", "select", ORDERS, "architecture gradient: first order, or second order (unrolled, slower)"),
    "epochs": ("Epochs", "int", 1, None),
    "batch_size": ("Batch size", "int", 8, None),
    "init_channels": ("Channels (C)", "int", 2, "channels of the first cell; 16 in the paper"),
    "layers": ("Cells", "int", 1, "cells in the search network; 8 in the paper"),
    "w_lr": ("Weight lr", "float", 0.005, "weight learning rate: SGD, cosine-annealed"),
    "a_lr": ("Arch. lr", "float", 1e-4, "architecture learning rate: Adam on the alphas"),
    "seed": ("Seed", "int", 1, None),
    "device": ("Device", "select", DEVICES, "auto = CUDA, then MPS, then CPU"),
}
# How the fields sit in the sidebar: one per row, or two side by side.
_ROWS = (("dataset",), ("variant", "order"), ("epochs", "batch_size"), ("init_channels", "layers"), ("w_lr", "a_lr"),
         ("seed", "device"))
# A ConfigError about a field without its own box is shown under the box that causes it.
_SHOWN_AT = {"w_lr_min": "w_lr", "image_size": "dataset", "subset": "dataset"}


def _widget(field: str, default: Any, key: str) -> Any:
    label, kind, extra, help_text = FIELDS[field]
    if kind == "select":
        options = list(extra)
        return st.selectbox(label, options, index=options.index(default) if default in options else 0,
                            key=key, help=help_text)
    if kind == "int":
        return st.number_input(label, value=int(default), step=int(extra), key=key, help=help_text)
    return st.number_input(label, value=float(default), step=float(extra), format="%g", key=key, help=help_text)


def build_config(preset: str, values: Mapping[str, Any]) -> SearchConfig:
    """The preset with the sidebar's values; raises ConfigError for the first bad field."""
    return from_preset(preset, dict(values))


def render(on_start: Callable[[SearchConfig], None], busy: bool,
           presets: Mapping[str, SearchConfig] = PRESETS) -> SearchConfig | None:
    """Draw the setup into the current container (the sidebar); return the valid config, or None."""
    st.header("Run setup")
    names = list(presets)
    preset = st.selectbox("Preset", names, index=0, key="setup.preset",
                          help="a starting point; the fields below override it")
    base = presets[preset]
    values: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    for row in _ROWS:
        for col, field in zip(st.columns(len(row)), row, strict=True):
            with col:
                # keyed by preset: choosing another preset resets the boxes to that preset's values
                values[field] = _widget(field, getattr(base, field), key=f"setup.{preset}.{field}")
        slot = st.empty()  # under the row, full width: a message about any of its fields
        slots.update(dict.fromkeys(row, slot))
    general = st.empty()
    config: SearchConfig | None = None
    try:
        config = build_config(preset, values)
    except ConfigError as err:
        slot = slots.get(_SHOWN_AT.get(err.field, err.field), general)
        slot.error(str(err))
    if busy:
        st.caption("A search is running; stop it before starting another.")
    st.button(START_LABEL, type="primary", disabled=config is None or busy, on_click=on_start,
              args=(config,), width="stretch")
    return config

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
from engine.variants import all_variant_options, variant_names, variant_options, variant_summary

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
# The variants' own options (docs/variants.md), shown under the variant picker for the chosen variant only,
# with the architecture warm-up, which every variant reads.
VARIANT_FIELDS: dict[str, tuple[str, str, Any, str]] = {
    "arch_warmup_epochs": ("Arch. warm-up epochs", "int", 1,
                           "epochs with the architecture frozen before it is searched (PC-DARTS: 15 of 50)"),
    "pc_k": ("K (partial channels)", "int", 1, "1/K of each edge's channels go through the mixed op; must divide C"),
    "gdas_tau_max": ("tau at start", "float", 0.5, "Gumbel-softmax temperature of the first epoch"),
    "gdas_tau_min": ("tau at end", "float", 0.05, "temperature of the last epoch (linear in between; not above "
                                                   "the start)"),
    "fair_zero_one_weight": ("Zero-one loss weight", "float", 1.0,
                             "pushes every sigmoid weight towards 0 or 1 (FairDARTS: 10)"),
    "fair_threshold": ("Keep threshold", "float", 0.05, "an edge is kept when its strongest sigmoid reaches this"),
    "drnas_kl_weight": ("KL weight", "float", 1e-3, "weight of KL(Dirichlet || Dirichlet(1)); 0 turns it off"),
}
_CONFIG_DEFAULTS = SearchConfig()
# How the fields sit in the sidebar: one per row, or two side by side.
_ROWS = (("dataset",), ("variant", "order"), ("epochs", "batch_size"), ("init_channels", "layers"), ("w_lr", "a_lr"),
         ("seed", "device"))
# A ConfigError about a field without its own box is shown under the box that causes it.
_SHOWN_AT = {"w_lr_min": "w_lr", "image_size": "dataset", "subset": "dataset"}


def _widget(field: str, default: Any, key: str) -> Any:
    label, kind, extra, help_text = FIELDS[field] if field in FIELDS else VARIANT_FIELDS[field]
    if kind == "select":
        options = list(extra)
        return st.selectbox(label, options, index=options.index(default) if default in options else 0,
                            key=key, help=help_text)
    if kind == "int":
        return st.number_input(label, value=int(default), step=int(extra), key=key, help=help_text)
    return st.number_input(label, value=float(default), step=float(extra), format="%g", key=key, help=help_text)


def build_config(preset: str, values: Mapping[str, Any]) -> SearchConfig:
    """The preset with the sidebar's values; raises ConfigError for the first bad field. Picking another variant
    than the preset's puts the preset's own variant options back to their defaults (they would be refused)."""
    values = dict(values)
    chosen = values.get("variant", PRESETS[preset].variant if preset in PRESETS else "darts")
    mine = set(variant_options(chosen)) if chosen in variant_names() else set()
    for name in all_variant_options():
        if name not in mine and name not in values:
            values[name] = getattr(_CONFIG_DEFAULTS, name)
    return from_preset(preset, values)


def _variant_options(preset: str, base: SearchConfig, variant: str, values: dict[str, Any],
                     slots: dict[str, Any]) -> None:
    """The chosen variant's options (and the warm-up), two to a row, with the variant's one-line summary."""
    if variant not in variant_names():
        return
    st.caption(variant_summary(variant))
    shown = ["arch_warmup_epochs", *variant_options(variant)]
    for start in range(0, len(shown), 2):
        row = [f for f in shown[start:start + 2] if f in VARIANT_FIELDS]
        for col, field in zip(st.columns(len(row)), row, strict=True):
            default = getattr(base if base.variant == variant or field == "arch_warmup_epochs" else _CONFIG_DEFAULTS,
                              field)
            with col:
                values[field] = _widget(field, default, key=f"setup.{preset}.{variant}.{field}")
        slot = st.empty()
        slots.update(dict.fromkeys(row, slot))


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
        if "variant" in row:
            _variant_options(preset, base, values["variant"], values, slots)
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

"""Sidebar run setup: a preset, then the fields people change most, validated by the engine's rules.

Each row of widgets has a slot under it. Every problem is reported at once, each in the slot of the field it
names and in the words of the sidebar (`Channels (C)`, not `init_channels`): the engine's rules
(`engine.search.config.config_errors`), then what would only fail after Start (a batch larger than each half of the
data, a device this machine does not have). Integer boxes take a fraction without rounding it, so it can be
refused visibly. Start stays disabled until nothing is wrong.

`run_settings` is the read-only summary of the run on screen, shown above the setup of a new search.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from app.figures import glossary
from app.panels import setup_rnn
from engine.search.config import (
    DATASETS,
    DEVICES,
    ORDERS,
    PRESETS,
    ConfigError,
    SearchConfig,
    config_errors,
    from_preset,
)
from engine.search.rnn_config import RNN_PRESETS, RNNSearchConfig
from engine.variants import all_variant_options, option_spec, variant_names, variant_options, variant_summary

__all__ = ["FIELDS", "labels", "START_LABEL", "render", "run_settings", "message", "problems", "preflight",
           "glossary_box"]

START_LABEL = "Start search"

# field -> (label, kind, choices or number step, help)
FIELDS: dict[str, tuple[str, str, Any, str]] = {
    "dataset": ("Dataset", "select", DATASETS, "embedded = the Fashion-MNIST subset shipped with dartboard"),
    "variant": ("Variant", "select", (), "how alphas become op weights"),  # choices: the variants known when drawn
    "order": ("Order", "select", ORDERS, "architecture gradient: first order, or second order (unrolled, slower)"),
    "epochs": ("Epochs", "int", 1, None),
    "batch_size": ("Batch size", "int", 8, None),
    "init_channels": ("Channels (C)", "int", 2, "channels of the first cell; 16 in the paper"),
    "layers": ("Cells", "int", 1, "cells in the search network; 8 in the paper"),
    "w_lr": ("Weight lr", "float", 0.005, "weight learning rate: SGD, cosine-annealed"),
    "a_lr": ("Arch. lr", "float", 1e-4, "architecture learning rate: Adam on the alphas"),
    "seed": ("Seed", "int", 1, None),
    "device": ("Device", "select", DEVICES, "auto = CUDA, then MPS, then CPU"),
    "threads": ("CPU threads", "int", 1, "torch threads of the search; 0 = auto: every core on a quiet machine, "
                                          "on a busy one the idle cores less one (docs/threads.md)"),
}
# The architecture warm-up, which every variant reads, shown under the variant picker with the chosen variant's own
# options; those each variant declares itself (label, box, step or choices, help: engine/variants/).
WARMUP_FIELD: dict[str, tuple[str, str, Any, str]] = {
    "arch_warmup_epochs": ("Arch. warm-up epochs", "int", 1,
                           "epochs with the architecture frozen before it is searched (PC-DARTS: 15 of 50)"),
}
# Collapse indicators and cost-aware search (docs/collapse.md), in an expander below the main fields. A select's
# "none" and a budget of 0 stand for None.
EXTRA_FIELDS: dict[str, tuple[str, str, Any, str]] = {
    "hessian_every": ("Hessian eigenvalue every (steps)", "int", 1,
                      "dominant eigenvalue of the valid loss's Hessian (architecture), every N steps; 0 = off; "
                      "one costs about 10-15 search steps"),
    "early_stop": ("Early stop (RobustDARTS)", "select", (False, True),
                   "stop when the eigenvalue's rise fires RobustDARTS's rule; needs the eigenvalue"),
    "max_skip": ("Skip cap per normal cell", "select", ("none", 0, 1, 2, 3, 4),
                 "P-DARTS keeps 2: the run's genotype keeps at most this many skip connections"),
    "cost_weight": ("Cost penalty weight", "float", 0.5, "per million parameters / mult-adds of the cells; 0 = off"),
    "cost_kind": ("Cost of", "select", ("params", "madds"), "what the penalty counts: parameters or mult-adds"),
    "derive_method": ("Also derive by", "select", ("argmax", "pt"),
                      "argmax: the largest op weight on each edge (DARTS); pt: also DARTS-PT on the final supernet "
                      "once the search ends (minutes on a CPU; the Runs page shows both cells)"),
    "cost_budget": ("Cost budget (0 = none)", "float", 1000.0,
                    "penalise only the cells' expected cost above this (the live cost chart shows the scale)"),
}
_EXTRA_ROWS = (("hessian_every", "early_stop"), ("max_skip", "derive_method"), ("cost_weight", "cost_kind"),
               ("cost_budget",))
# What a message calls each field: the box's label; a field without a box says it comes from the preset.
_PRESET_ONLY = {
    "data_root": "Data folder", "download": "Download", "subset": "Training images", "image_size": "Image size",
    "in_channels": "Input channels", "num_classes": "Classes", "train_portion": "Train split share",
    "nodes": "Nodes per cell", "w_lr_min": "Final weight lr", "w_momentum": "Weight momentum",
    "w_weight_decay": "Weight decay", "w_grad_clip": "Gradient clip", "a_betas": "Arch. Adam betas",
    "a_weight_decay": "Arch. weight decay", "amp": "Mixed precision", "fast": "Fast path",
    "log_every": "Log every (steps)", "checkpoint_every_s": "Checkpoint every (s)", "preset": "Preset",
}
_CONFIG_DEFAULTS = SearchConfig()
# How the fields sit in the sidebar: one per row, or two side by side.
_ROWS = (("dataset",), ("variant", "order"), ("epochs", "batch_size"), ("init_channels", "layers"), ("w_lr", "a_lr"),
         ("seed", "device"), ("threads",))
# A ConfigError about a field without its own box is shown under the box that causes it.
_SHOWN_AT = {"w_lr_min": "w_lr", "image_size": "dataset", "subset": "dataset", "train_portion": "batch_size"}
# Training images of each dataset (its training set, before `subset`) and classes: the batch check before Start.
_DATA_SIZES = {"cifar10": (50_000, 10), "cifar100": (50_000, 100), "mnist": (60_000, 10),
               "fashion_mnist": (60_000, 10), "svhn": (73_257, 10)}


def _variant_fields() -> dict[str, tuple[str, str, Any, str]]:
    """The warm-up and every option of every known variant (a variant registered at run time too), as sidebar
    fields read from the options' declarations."""
    out = dict(WARMUP_FIELD)
    for name in all_variant_options():
        option = option_spec(name)
        if option is not None:
            out[name] = (option.label, option.kind, option.choices or option.step, option.help)
    return out


def _fields() -> dict[str, tuple[str, str, Any, str]]:
    """Every field with a box; the variant picker offers the variants known now (one registered at run time too)."""
    label, kind, _, help_text = FIELDS["variant"]
    fields = {**FIELDS, "variant": (label, kind, variant_names(), help_text), **_variant_fields(), **EXTRA_FIELDS}
    for name, term in glossary.FIELD_TERMS.items():  # the technical words' help in plain language
        if name in fields:
            label, kind, extra, help_text = fields[name]
            fields[name] = (label, kind, extra, f"{help_text}\n\n**{term}:** {glossary.explain(term)}"
                            if help_text else f"**{term}:** {glossary.explain(term)}")
    return fields


def labels() -> dict[str, str]:
    """What a message calls each field: its box's label, or its name with "(preset)" for one without a box."""
    return {**{f: v[0] for f, v in _fields().items()}, **{f: f"{label} (preset)" for f, label in _PRESET_ONLY.items()}}


def _names() -> re.Pattern[str]:
    """Field names as words of a message (the longest first, so `w_lr_min` is not read as `w_lr`)."""
    return re.compile(r"\b(" + "|".join(sorted(map(re.escape, labels()), key=len, reverse=True)) + r")\b")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def message(err: ConfigError) -> str:
    """The engine's error in the sidebar's words: `Channels (C): 3 is not valid: an even integer from 2 to 512`."""
    names = labels()
    allowed = _names().sub(lambda m: names[m.group(1)], err.allowed)
    return f"{names.get(err.field, err.field)}: {_number(err.value)} is not valid: {allowed}"


def _as_int(field: str, value: Any) -> tuple[Any, ConfigError | None]:
    """An integer box's value as an int; a fraction (or anything not a whole number) is an error, never rounded."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value):
        return value, ConfigError(field, value, "a whole number (no fraction, no letters)")
    return int(value), None


def _filled(preset: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The sidebar's values, with the preset's own variant options put back to their defaults when another
    variant is picked (they would be refused)."""
    values = dict(values)
    chosen = values.get("variant", PRESETS[preset].variant if preset in PRESETS else "darts")
    mine = set(variant_options(chosen)) if chosen in variant_names() else set()
    for name in all_variant_options():
        if name not in mine and name not in values:
            values[name] = getattr(_CONFIG_DEFAULTS, name)
    return values


def build_config(preset: str, values: Mapping[str, Any]) -> SearchConfig:
    """The preset with the sidebar's values; raises ConfigError for the first bad field."""
    return from_preset(preset, _filled(preset, values))


@functools.cache
def _embedded_size() -> tuple[int, int]:
    import numpy as np

    from engine.datasets import EMBEDDED_ASSET

    with np.load(EMBEDDED_ASSET) as data:
        labels = data["train_labels"]
    return len(labels), len(np.unique(labels))


def _data_size(c: SearchConfig) -> tuple[int, int] | None:
    """(images the search splits, classes), when known without reading the data; None when not."""
    if c.dataset == "embedded":
        size, classes = _embedded_size()
    elif c.dataset == "fake":
        from engine.datasets import FAKE_DEFAULT_SIZE

        size, classes = c.subset or FAKE_DEFAULT_SIZE, c.num_classes
    elif c.dataset in _DATA_SIZES:
        size, classes = _DATA_SIZES[c.dataset]
    elif c.subset is not None:  # an image folder: at most `subset` images
        size, classes = c.subset, 1
    else:
        return None
    return (size if c.subset is None else min(size, c.subset)), classes


def preflight(c: SearchConfig) -> list[ConfigError]:
    """What a valid config would fail on after Start: a batch larger than a half of the search split, a device
    this machine does not have."""
    out: list[ConfigError] = []
    sized = _data_size(c)
    if sized is not None:
        n, classes = sized
        # each class is cut floor(n_c * share) / the rest, so the weight half holds between n*share - classes and
        # floor(n*share) images: a batch above these bounds cannot fill a single step
        weights_max = math.floor(n * c.train_portion)
        arch_max = min(n, math.floor(n - n * c.train_portion + classes))
        most = min(weights_max, arch_max)
        if c.batch_size > most:
            out.append(ConfigError("batch_size", c.batch_size,
                                   f"at most {most}: the data has {n} images and train_portion={c.train_portion:g} "
                                   f"puts about {weights_max} in the weight half and {n - weights_max} in the "
                                   "architecture half; a step takes one batch from each"))
    if c.device != "auto":
        from engine.runtime.device import select_device

        try:
            select_device(c.device)
        except ConfigError as err:
            out.append(err)
    return out


def _first_causes(errors: list[ConfigError]) -> list[ConfigError]:
    """Leave out an error that follows from another one (a rule naming a field that is itself wrong: the warm-up
    against Epochs=0, K against Channels (C)=3), and repeats of one field."""
    wrong, names = {e.field for e in errors}, _names()
    kept: dict[str, ConfigError] = {}
    for err in errors:
        if err.field not in kept and not (set(names.findall(err.allowed)) - {err.field}) & wrong:
            kept[err.field] = err
    return list(kept.values()) or errors[:1]


def problems(preset: str, values: Mapping[str, Any]) -> tuple[SearchConfig | None, list[ConfigError]]:
    """The config of the sidebar's values and every problem with it (all of them, not the first): integer boxes
    holding a fraction, the engine's rules, then (only for a config the rules accept) the checks before Start."""
    values, errors, fields = dict(values), [], _fields()
    for field in [*values]:
        kind = fields.get(field, ("", ""))[1]
        if kind == "int":
            values[field], err = _as_int(field, values[field])
            if err is not None:
                errors.append(err)
    if errors:  # the engine's rules on a fraction would only repeat it; check the other fields with the preset's
        bad = {e.field for e in errors}
        fixed = {f: v for f, v in values.items() if f not in bad}
        errors += [e for e in config_errors(preset, _filled(preset, fixed)) if e.field not in bad]
        return None, _first_causes(errors)
    errors = config_errors(preset, _filled(preset, values))
    if errors:
        return None, _first_causes(errors)
    config = build_config(preset, values)
    errors = preflight(config)
    return (None if errors else config), errors


def _widget(field: str, default: Any, key: str) -> Any:
    label, kind, extra, help_text = _fields()[field]
    if kind == "select":
        options = list(extra)
        return st.selectbox(label, options, index=options.index(default) if default in options else 0,
                            key=key, help=help_text)
    # integers too are float boxes shown as "%g": a typed fraction stays a fraction, and is refused, not rounded
    return st.number_input(label, value=float(default), step=float(extra), format="%g", key=key, help=help_text)


def _variant_options(preset: str, base: SearchConfig, variant: str, values: dict[str, Any],
                     slots: dict[str, Any]) -> None:
    """The chosen variant's options (and the warm-up), two to a row, with the variant's one-line summary."""
    if variant not in variant_names():
        return
    st.caption(variant_summary(variant))
    shown = ["arch_warmup_epochs", *variant_options(variant)]
    for start in range(0, len(shown), 2):
        row = shown[start:start + 2]
        for col, field in zip(st.columns(len(row)), row, strict=True):
            default = getattr(base if base.variant == variant or field == "arch_warmup_epochs" else _CONFIG_DEFAULTS,
                              field)
            with col:
                values[field] = _widget(field, default, key=f"setup.{preset}.{variant}.{field}")
        slot = st.empty()
        slots.update(dict.fromkeys(row, slot))


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value)
    return "none" if value is None else _number(value) if not isinstance(value, str) else value


def settings_rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of a run's config: the sidebar's fields, the variant's options, then the rest."""
    if "corpus" in config:  # a recurrent search: its sidebar's fields, then the rest under their own names
        shown = setup_rnn.FIELDS
        return ([(label, _show(config[f])) for f, (label, *_) in shown.items() if f in config]
                + [(f, _show(v)) for f, v in config.items() if f not in shown])
    variant = config.get("variant", "darts")
    own = ["arch_warmup_epochs", *(variant_options(variant) if variant in variant_names() else ())]
    order = [*FIELDS, *own, *EXTRA_FIELDS, *(f for f in _PRESET_ONLY if f != "preset")]
    names = labels()
    return [(names[f], _show(config[f])) for f in order if f in config]


def run_settings(run_id: str, config: Mapping[str, Any]) -> None:
    """The settings of the run on screen, read-only: what that run searches with (not the fields below)."""
    with st.container(border=True, key="setup.run_settings"):
        st.markdown("**Settings of the run on screen** (read-only)")
        st.caption(f"`{run_id}`")
        if not config:
            st.caption("Not known yet (the run has not written its config).")
            return
        st.table({"setting": [r[0] for r in settings_rows(config)], "value": [r[1] for r in settings_rows(config)]})


def glossary_box() -> None:
    """The technical words of the Search page, each in plain language (app/figures/glossary.py)."""
    with st.expander("Words on this page"):
        for term, text in glossary.TERMS.items():
            st.markdown(f"**{term}**: {text}")


def _threads_note(value: Any) -> None:
    if value == 0:
        from engine.runtime.threads import resolve_threads

        st.caption(f"CPU threads 0 = auto: {resolve_threads(0)} on this machine now (chosen again at Start).")


def render(on_start: Callable[[SearchConfig | RNNSearchConfig], None], busy: bool,
           presets: Mapping[str, SearchConfig] = PRESETS, title: str = "Run setup",
           rnn_presets: Mapping[str, RNNSearchConfig] = RNN_PRESETS) -> SearchConfig | RNNSearchConfig | None:
    """Draw the setup into the current container (the sidebar); return the valid config, or None. The menu
    offers the convolutional presets, then the recurrent ones (their own fields: app/panels/setup_rnn.py)."""
    st.header(title)
    names = [*presets, *(name for name in rnn_presets if name not in presets)]
    preset = st.selectbox("Preset", names, index=0, key="setup.preset",
                          format_func=lambda name: f"{name} (recurrent)" if name not in presets else name,
                          help="a starting point; the fields below override it. The recurrent presets search "
                               "the paper's recurrent cell on text")
    if preset not in presets:
        return setup_rnn.render(preset, rnn_presets[preset], on_start, busy, START_LABEL)
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
        if "threads" in row:
            _threads_note(values["threads"])
    with st.expander("Collapse indicators and cost", expanded=any(
            getattr(base, f) != getattr(_CONFIG_DEFAULTS, f) for f in EXTRA_FIELDS)):
        for row in _EXTRA_ROWS:
            for col, field in zip(st.columns(len(row)), row, strict=True):
                with col:
                    shown = getattr(base, field)
                    shown = ("none" if shown is None else shown) if field == "max_skip" else shown
                    shown = 0.0 if field == "cost_budget" and shown is None else shown
                    values[field] = _widget(field, shown, key=f"setup.{preset}.{field}")
            slot = st.empty()
            slots.update(dict.fromkeys(row, slot))
        values["max_skip"] = None if values["max_skip"] == "none" else values["max_skip"]
        values["cost_budget"] = values["cost_budget"] or None  # 0: no budget
    general = st.empty()
    config, errors = problems(preset, values)
    by_slot: dict[int, tuple[Any, list[str]]] = {}
    for err in errors:
        slot = slots.get(_SHOWN_AT.get(err.field, err.field), general)
        by_slot.setdefault(id(slot), (slot, []))[1].append(message(err))
    for slot, texts in by_slot.values():
        slot.error("\n\n".join(dict.fromkeys(texts)))
    if busy:
        st.caption("A search is running; stop it before starting another.")
    st.button(START_LABEL, type="primary", disabled=config is None or busy, on_click=on_start,
              args=(config,), width="stretch")
    return config

"""The sidebar setup of a recurrent search (the presets of engine/search/rnn_config.py): the fields people change
most, each problem under its row in the sidebar's words, Start disabled until nothing is wrong. The sidebar's
preset menu (app/panels/setup.py) hands a recurrent preset to `render` here."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from engine.core.config import DEVICES, ConfigError, collect_errors
from engine.search.rnn_config import RNNSearchConfig, from_rnn_preset
from engine.space.rnn.config import ORDERS
from engine.variants import space_variants, variant_summary

__all__ = ["FIELDS", "render", "problems", "message"]

# field -> (label, kind, choices or number step, help)
FIELDS: dict[str, tuple[str, str, Any, str]] = {
    "corpus": ("Corpus", "text", None, "embedded = the public-domain text shipped with dartboard; or a folder "
                                       "with train.txt, valid.txt and test.txt (Penn Treebank, WikiText-2)"),
    "order": ("Order", "select", ORDERS, "architecture gradient: first order, or second order (unrolled, slower)"),
    # Only the variants whose `spaces` name the recurrent cell; each with its options at their defaults (the
    # convolutional sidebar has their boxes). docs/variants.md, "On the recurrent cell".
    "variant": ("Variant", "select", space_variants("rnn"), "how each edge's op choice is relaxed: the softmax of "
                                                           "DARTS, or a variant whose idea applies to any softmax "
                                                           "over ops (PC-DARTS and GDAS need the convolutional cell)"),
    "epochs": ("Epochs", "int", 1, None),
    "batch_size": ("Batch size", "int", 8, "sequences side by side; 256 in the paper"),
    "bptt": ("BPTT (words)", "int", 5, "words a step backpropagates through; 35 in the paper"),
    "nhid": ("Hidden size", "int", 8, "the cell's state and the word embedding (tied); 300 in the paper's search"),
    "max_vocab": ("Vocabulary", "int", 500, "the most frequent words kept; the rest become <unk>"),
    "w_lr": ("Weight lr", "float", 1.0, "SGD on the network weights; 20 in the paper"),
    "a_lr": ("Arch. lr", "float", 1e-3, "Adam on the alphas; 3e-3 in the paper"),
    "seed": ("Seed", "int", 1, None),
    "device": ("Device", "select", DEVICES, "auto = CUDA, then MPS, then CPU"),
    "threads": ("CPU threads", "int", 1, "torch threads of the search; 0 = auto. One is fastest for small cells"),
}
_ROWS = (("corpus",), ("variant",), ("order", "epochs"), ("batch_size", "bptt"), ("nhid", "max_vocab"),
         ("w_lr", "a_lr"), ("seed", "device"), ("threads",))


def message(err: ConfigError) -> str:
    label = FIELDS.get(err.field, (err.field,))[0]
    if err.field == "emsize":  # follows the hidden size here: say it in the box's words
        label = FIELDS["nhid"][0]
    return f"{label}: {err.value!r} is not valid: {err.allowed}"


def problems(preset: str, values: Mapping[str, Any]) -> tuple[RNNSearchConfig | None, list[ConfigError]]:
    """The config of the sidebar's values and every problem with it: integer boxes holding a fraction first,
    then the engine's rules."""
    values, errors = dict(values), []
    for field, value in list(values.items()):
        if FIELDS[field][1] == "int":
            if isinstance(value, float) and math.isfinite(value) and value == int(value):
                values[field] = int(value)
            else:
                errors.append(ConfigError(field, value, "a whole number (no fraction, no letters)"))
    if "nhid" in values:
        values["emsize"] = values["nhid"]  # the decoder is tied to the embedding: one box for both
    if errors:
        return None, errors
    errors = collect_errors(lambda: from_rnn_preset(preset, **values))
    return (None, errors) if errors else (from_rnn_preset(preset, **values), [])


def _widget(field: str, default: Any, key: str) -> Any:
    label, kind, extra, help_text = FIELDS[field]
    if kind == "select":
        options = list(extra)
        return st.selectbox(label, options, index=options.index(default) if default in options else 0, key=key,
                            help=help_text)
    if kind == "text":
        return st.text_input(label, value=str(default), key=key, help=help_text).strip()
    return st.number_input(label, value=float(default), step=float(extra), format="%g", key=key, help=help_text)


def render(preset: str, base: RNNSearchConfig, on_start: Callable[[Any], None], busy: bool,
           start_label: str) -> RNNSearchConfig | None:
    """The fields of a recurrent preset, their problems and Start; returns the valid config, or None."""
    st.caption("The paper's recurrent cell for language modelling: 8 nodes, 36 edges, 5 ops (tanh, relu, sigmoid, "
               "identity, none); each node keeps one input.")
    values: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    for row in _ROWS:
        for col, field in zip(st.columns(len(row)), row, strict=True):
            with col:
                values[field] = _widget(field, getattr(base, field), key=f"setup.{preset}.{field}")
        if row == ("variant",):
            st.caption(variant_summary(values["variant"]))
        slot = st.empty()
        slots.update(dict.fromkeys(row, slot))
    general = st.empty()
    config, errors = problems(preset, values)
    by_slot: dict[int, tuple[Any, list[str]]] = {}
    for err in errors:
        slot = slots.get("nhid" if err.field == "emsize" else err.field, general)
        by_slot.setdefault(id(slot), (slot, []))[1].append(message(err))
    for slot, texts in by_slot.values():
        slot.error("\n\n".join(dict.fromkeys(texts)))
    if busy:
        st.caption("A search is running; stop it before starting another.")
    st.button(start_label, type="primary", disabled=config is None or busy, on_click=on_start, args=(config,),
              width="stretch")
    return config

"""The settings of a recurrent search, torch-free: one frozen config, its checks and its presets (the recurrent
twin of engine/search/config.py).

Every field is checked where the config is built, so a bad value (a BPTT of 0, a hidden size of a million, an
embedding that is not the hidden size) is one ConfigError naming the field before anything runs. `rnn-paper` is
the paper's search (Appendix A.1.2; quark0/darts rnn/train_search.py's defaults); `rnn-demo` a laptop-sized one
on the embedded corpus (docs/darts.md, section 6, has its measured step time).

`variant` names the relaxation of the op choice, as in SearchConfig, with its options flat under their names; the
variants that need the convolutional cell are refused with their reason (engine/variants/spaces.py; docs/variants.md,
"On the recurrent cell"). The size limits live with the space (engine/space/rnn/config.py), where the networks read
them too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from engine.core.config import ConfigError, FrozenConfig, check, check_known, check_run_fields, is_int, is_num
from engine.space.rnn.config import ORDERS, check_language_model
from engine.variants.spaces import SpaceRules

__all__ = ["RNNSearchConfig", "RNN_PRESETS", "from_rnn_preset"]

_RULES = SpaceRules()  # the variants' options and their checks on this space


@dataclass(frozen=True, init=False)
class RNNSearchConfig(FrozenConfig):
    corpus: str = "embedded"       # "embedded" (assets/corpus/kjv-nt) or a directory with train/valid/test.txt
    max_vocab: int = 10_000        # the vocabulary cap (the paper's Penn Treebank has 10,000 words)
    emsize: int = 300
    nhid: int = 300
    nodes: int = 8
    bptt: int = 35
    batch_size: int = 256
    epochs: int = 50
    order: str = "second"
    w_lr: float = 20.0
    w_weight_decay: float = 5e-7
    clip: float = 0.25
    tar_beta: float = 1e-3         # temporal activation regularisation (Merity et al. 2017)
    a_lr: float = 3e-3
    a_weight_decay: float = 1e-3
    dropout: float = 0.75          # on the cell's output
    dropouth: float = 0.25         # on every state a W_n reads
    dropoutx: float = 0.75         # on x_t
    dropouti: float = 0.2          # on the embedded words
    dropoute: float = 0.0          # whole words (off during search, as the reference)
    seed: int = 3                  # the reference's search seed
    device: str = "auto"
    # torch CPU threads; 0 = auto (engine/runtime/threads.py). One by default: the cell's small matrix products
    # ran many times slower on two threads of a loaded 2-core machine (docs/darts.md, section 6)
    threads: int = 1
    amp: bool = False
    log_every: int = 10
    checkpoint_every_s: float = 60.0
    # The relaxation of each edge's op choice (engine/variants/): one whose `spaces` include "rnn"; docs/variants.md,
    # "On the recurrent cell". Its options are taken flat like fields (`beta_decay_weight=25`) and kept here as the
    # sorted (name, value) pairs that differ from their defaults, as SearchConfig keeps them.
    variant: str = "darts"
    options: tuple[tuple[str, Any], ...] = ()

    def __init__(self, **values: Any) -> None:
        """Every field and variant option by name; a field or option left out takes its default."""
        options = dict(values.pop("options", ()))
        for f in fields(self):
            if f.name != "options":
                object.__setattr__(self, f.name, values.pop(f.name, f.default))
        check_known(type(self), values)
        options.update(values)
        defaults = _RULES.option_defaults()
        object.__setattr__(self, "options", tuple(sorted(
            (name, value) for name, value in options.items() if not _is_default(value, defaults[name]))))
        self.__post_init__()

    def __getattr__(self, name: str) -> Any:
        """A variant option read like a field (`config.beta_decay_weight`): its value here, or its default."""
        defaults = _RULES.option_defaults() if not name.startswith("_") else {}
        if name not in defaults:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return dict(self.options).get(name, defaults[name])

    @classmethod
    def known_keys(cls) -> dict[str, tuple[Any, str]]:
        keys = {k: v for k, v in super().known_keys().items() if k != "options"}
        for name, default in (_RULES.option_defaults()).items():
            keys[name] = (default, type(default).__name__)
        return keys

    def to_dict(self) -> dict[str, Any]:
        """Flat, as config.json holds it: every field, then the options of the variants this space takes and of
        this config's own variant (at their defaults unless set), so a reader rebuilds the run's variant from it."""
        data = {k: v for k, v in super().to_dict().items() if k != "options"}
        names = _RULES.recorded_options(self.variant)
        return {**data, **{name: getattr(self, name) for name in names}}

    def variant_options(self) -> dict[str, Any]:
        """Every option this config holds (defaults included), for `engine.variants.make_variant`."""
        defaults = _RULES.option_defaults()
        return {**defaults, **dict(self.options)}

    def __post_init__(self) -> None:
        check_language_model(self)
        check(is_int(self.nodes) and 1 <= self.nodes <= 32, "nodes", self.nodes, "an integer from 1 to 32")
        check(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        check(is_int(self.epochs) and self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        check(self.order in ORDERS, "order", self.order, f"one of {', '.join(ORDERS)}")
        for name in ("w_lr", "clip", "a_lr"):
            value = getattr(self, name)
            check(is_num(value) and value > 0, name, value, "a positive number")
        for name in ("w_weight_decay", "tar_beta", "a_weight_decay"):
            value = getattr(self, name)
            check(is_num(value) and value >= 0, name, value, "a number >= 0")
        check(is_int(self.threads) and 0 <= self.threads <= 1024, "threads", self.threads,
              "an integer from 0 (auto) to 1024")
        check_run_fields(self)
        _RULES.validate("rnn", {**self.to_dict(), **dict(self.options)}, dict(self.options))


def _is_default(value: Any, default: Any) -> bool:
    """Whether `value` is an option's declared default: equal, and an integer where the default is one (4.0 is
    not an int option's 4), while a whole number stands for a float default (as SearchConfig reads them)."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    if isinstance(default, int) and not isinstance(value, int):
        return False
    return value == default


RNN_PRESETS: dict[str, RNNSearchConfig] = {
    # The paper's search (Appendix A.1.2): 300/300, BPTT 35, batch 256, 50 epochs, second order.
    "rnn-paper": RNNSearchConfig(),
    # The same, first order (the paper's cheaper search).
    "rnn-paper-first-order": RNNSearchConfig(order="first"),
    # A laptop-sized search on the embedded corpus: a capped vocabulary, a small cell state, short sequences.
    "rnn-demo": RNNSearchConfig(max_vocab=2_000, emsize=32, nhid=32, bptt=20, batch_size=32, epochs=10,
                                order="first", log_every=1),
    # For tests: a few steps take well under a second each; an epoch of the embedded corpus is long, so a test
    # stops it (or sets epochs and reads a few steps).
    "rnn-smoke": RNNSearchConfig(max_vocab=300, emsize=8, nhid=8, nodes=8, bptt=8, batch_size=8, epochs=1,
                                 order="first", log_every=1, checkpoint_every_s=3600.0),
}


def from_rnn_preset(name: str, **overrides: Any) -> RNNSearchConfig:
    """A preset with `overrides` applied (each checked as any field is)."""
    if name not in RNN_PRESETS:
        raise ConfigError("preset", name, f"one of {', '.join(RNN_PRESETS)}")
    base = RNN_PRESETS[name].to_dict()
    check_known(RNNSearchConfig, overrides)
    return RNNSearchConfig.from_dict(base | overrides)

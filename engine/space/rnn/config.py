"""The settings of a recurrent search, torch-free: one frozen config, its checks and its presets.

Every field is checked where the config is built, so a bad value (a BPTT of 0, a hidden size of a million, an
embedding that is not the hidden size) is one ConfigError naming the field before anything runs. `rnn-paper` is
the paper's search (Appendix A.1.2; quark0/darts rnn/train_search.py's defaults); `rnn-demo` a laptop-sized one
on the embedded corpus (docs/darts.md, section 6, has its measured step time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.core.config import ConfigError, FrozenConfig, check, check_run_fields, is_int, is_num

__all__ = ["RNNSearchConfig", "RNN_PRESETS", "from_rnn_preset", "ORDERS", "MAX_HIDDEN", "MAX_BPTT", "MAX_VOCAB"]

ORDERS = ("first", "second")
MAX_HIDDEN = 8192      # the W_n alone are 8 x nhid x 2 nhid floats: 4 GiB of float32 at this size
MAX_BPTT = 4096
MAX_VOCAB = 1_000_000


@dataclass(frozen=True)
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

    def __post_init__(self) -> None:
        check(isinstance(self.corpus, str) and bool(self.corpus.strip()), "corpus", self.corpus,
              "'embedded' or a directory with train.txt, valid.txt and test.txt")
        check(is_int(self.max_vocab) and 3 <= self.max_vocab <= MAX_VOCAB, "max_vocab", self.max_vocab,
              f"an integer from 3 to {MAX_VOCAB}")
        for name in ("emsize", "nhid"):
            value = getattr(self, name)
            check(is_int(value) and 1 <= value <= MAX_HIDDEN, name, value, f"an integer from 1 to {MAX_HIDDEN}")
        check(self.emsize == self.nhid, "emsize", self.emsize,
              f"equal to nhid ({self.nhid}): the decoder is tied to the embedding")
        check(is_int(self.nodes) and 1 <= self.nodes <= 32, "nodes", self.nodes, "an integer from 1 to 32")
        check(is_int(self.bptt) and 1 <= self.bptt <= MAX_BPTT, "bptt", self.bptt, f"an integer from 1 to {MAX_BPTT}")
        check(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        check(is_int(self.epochs) and self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        check(self.order in ORDERS, "order", self.order, f"one of {', '.join(ORDERS)}")
        for name in ("w_lr", "clip", "a_lr"):
            value = getattr(self, name)
            check(is_num(value) and value > 0, name, value, "a positive number")
        for name in ("w_weight_decay", "tar_beta", "a_weight_decay"):
            value = getattr(self, name)
            check(is_num(value) and value >= 0, name, value, "a number >= 0")
        for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
            value = getattr(self, name)
            check(is_num(value) and 0 <= value < 1, name, value, "a probability in [0, 1)")
        check(is_int(self.threads) and 0 <= self.threads <= 1024, "threads", self.threads,
              "an integer from 0 (auto) to 1024")
        check_run_fields(self)


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
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ConfigError(unknown[0], overrides[unknown[0]], f"unknown field; known fields: {', '.join(sorted(base))}")
    return RNNSearchConfig.from_dict(base | overrides)

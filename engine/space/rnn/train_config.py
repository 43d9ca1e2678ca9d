"""The settings of training a recurrent genotype's network, torch-free: one frozen config, its checks and presets.

The second phase of the recurrent DARTS (paper Appendix A.2.2; quark0/darts rnn/train.py): the network a genotype
builds (engine/nn/rnn_network.py) trained from scratch by SGD, switched to averaged SGD when the validation loss
stops improving, and scored by its test perplexity. Every field is checked where the config is built, so a bad
value is one ConfigError naming the field before anything runs. docs/darts.md, section 6, has the settings' sources
and what `rnn-train-demo` measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.config import ConfigError, FrozenConfig, check, check_known, check_run_fields, is_int, is_num
from engine.space.rnn.config import check_language_model

__all__ = ["RNNTrainConfig", "RNN_TRAIN_PRESETS", "RESUMABLE_RNN_TRAIN_FIELDS", "from_rnn_train_preset",
           "ONE_THREAD_NHID"]

# Up to this hidden size a recurrent training runs on one torch thread: its small matrix products ran several times
# slower on two threads of a loaded 2-core machine (docs/darts.md, section 6).
ONE_THREAD_NHID = 256

# Fields a resumed training may change: how it runs, where the corpus now lies (its fingerprint must not change),
# and lr: the way out of a non-finite loss, which pauses the run with that advice.
RESUMABLE_RNN_TRAIN_FIELDS = frozenset({"device", "log_every", "checkpoint_every_s", "corpus", "lr"})
# Presets whose corpus must be the user's: Penn Treebank cannot ship here, and training the paper's 23M-parameter
# network on the embedded corpus by mistake would look like a reproduction while being none.
_USER_CORPUS = frozenset({"darts-ptb-eval"})


@dataclass(frozen=True)
class RNNTrainConfig(FrozenConfig):
    corpus: str = "embedded"       # "embedded" (assets/corpus/kjv-nt) or a directory with train/valid/test.txt
    max_vocab: int = 10_000        # the vocabulary cap (Penn Treebank has 10,000 words)
    emsize: int = 850
    nhid: int = 850
    bptt: int = 35
    batch_size: int = 64
    eval_batch_size: int = 10      # the reference's validation columns
    test_batch_size: int = 1       # the reference's: the test split read as one stream
    epochs: int = 8000             # the reference's upper limit; the paper trains until convergence
    lr: float = 20.0
    weight_decay: float = 8e-7
    clip: float = 0.25
    tar_beta: float = 1e-3         # temporal activation regularisation (Merity et al. 2017)
    asgd: bool = True              # switch SGD to averaged SGD when validation stops improving
    nonmono: int = 5               # ... i.e. is worse than the best of all but the last `nonmono` epochs
    dropout: float = 0.75          # on the cell's output
    dropouth: float = 0.25         # on every state a W_n reads
    dropoutx: float = 0.75         # on x_t
    dropouti: float = 0.2          # on the embedded words
    dropoute: float = 0.1          # whole words (the paper's 0.1; the reference's flag defaults to 0)
    seed: int = 1267               # the reference's
    device: str = "auto"
    amp: bool = False
    log_every: int = 10
    checkpoint_every_s: float = 120.0

    def __post_init__(self) -> None:
        check_language_model(self)
        for name in ("batch_size", "eval_batch_size", "test_batch_size"):
            value = getattr(self, name)
            check(is_int(value) and 1 <= value <= 65_536, name, value, "an integer from 1 to 65536")
        check(is_int(self.epochs) and 1 <= self.epochs <= 100_000, "epochs", self.epochs,
              "an integer from 1 to 100000")
        for name in ("lr", "clip"):
            value = getattr(self, name)
            check(is_num(value) and value > 0, name, value, "a positive number")
        for name in ("weight_decay", "tar_beta"):
            value = getattr(self, name)
            check(is_num(value) and value >= 0, name, value, "a number >= 0")
        check(isinstance(self.asgd, bool), "asgd", self.asgd, "true or false")
        check(is_int(self.nonmono) and 0 <= self.nonmono <= 10_000, "nonmono", self.nonmono,
              "an integer from 0 to 10000 (epochs)")
        check_run_fields(self)


RNN_TRAIN_PRESETS: dict[str, RNNTrainConfig] = {
    # The paper's evaluation (Appendix A.2.2; rnn/train.py): 850/850, BPTT 35, batch 64, SGD lr 20, clip 0.25,
    # weight decay 8e-7, the paper's dropouts, ASGD once validation stops improving. A GPU job on Penn Treebank,
    # which the user must point `corpus` at (from_rnn_train_preset refuses the embedded corpus here).
    "darts-ptb-eval": RNNTrainConfig(),
    # A laptop-sized evaluation on the embedded corpus, the sizes of the `rnn-demo` search (docs/darts.md has its
    # measured time and perplexity): the paper's learning rate, clip and dropouts, a few epochs.
    "rnn-train-demo": RNNTrainConfig(max_vocab=2_000, emsize=64, nhid=64, bptt=20, batch_size=32, epochs=8,
                                     eval_batch_size=10, test_batch_size=10, log_every=10, checkpoint_every_s=60.0),
    # For tests: seconds on the embedded corpus (wide batches make few steps; a tiny vocabulary and cell).
    "rnn-train-smoke": RNNTrainConfig(max_vocab=50, emsize=8, nhid=8, bptt=20, batch_size=512, epochs=2,
                                      eval_batch_size=64, test_batch_size=64, nonmono=0, log_every=1,
                                      checkpoint_every_s=1e9, seed=0),
}


def from_rnn_train_preset(name: str, overrides: Mapping[str, Any] | None = None) -> RNNTrainConfig:
    """A preset with `overrides` applied (each checked as any field is)."""
    if name not in RNN_TRAIN_PRESETS:
        raise ConfigError("preset", name, f"one of {', '.join(RNN_TRAIN_PRESETS)}")
    overrides = dict(overrides or {})
    check_known(RNNTrainConfig, overrides)
    if name in _USER_CORPUS and overrides.get("corpus", "embedded") == "embedded":
        raise ConfigError("corpus", overrides.get("corpus", "embedded"),
                          f"a directory with Penn Treebank's train.txt, valid.txt and test.txt (--set corpus=DIR): "
                          f"{name} is the paper's evaluation, and that corpus does not ship with dartboard")
    return RNN_TRAIN_PRESETS[name].replace(**overrides)

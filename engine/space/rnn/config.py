"""The recurrent space's size limits and the checks every language-model config shares, torch-free: what the
search's and the training's configs check (engine/search/rnn_config.py, engine/space/rnn/train_config.py) and
what the networks refuse (engine/nn/rnn_network.py)."""

from __future__ import annotations

from typing import Any

from engine.core.config import check, is_int, is_num

__all__ = ["ORDERS", "MAX_HIDDEN", "MAX_BPTT", "MAX_VOCAB", "check_language_model"]

ORDERS = ("first", "second")
MAX_HIDDEN = 8192      # the W_n alone are 8 x nhid x 2 nhid floats: 4 GiB of float32 at this size
MAX_BPTT = 4096
MAX_VOCAB = 1_000_000


def check_language_model(c: Any) -> None:
    """The fields a recurrent search and a recurrent training share: corpus, vocabulary, sizes, BPTT, dropouts."""
    check(isinstance(c.corpus, str) and bool(c.corpus.strip()), "corpus", c.corpus,
          "'embedded' or a directory with train.txt, valid.txt and test.txt")
    check(is_int(c.max_vocab) and 3 <= c.max_vocab <= MAX_VOCAB, "max_vocab", c.max_vocab,
          f"an integer from 3 to {MAX_VOCAB}")
    for name in ("emsize", "nhid"):
        value = getattr(c, name)
        check(is_int(value) and 1 <= value <= MAX_HIDDEN, name, value, f"an integer from 1 to {MAX_HIDDEN}")
    check(c.emsize == c.nhid, "emsize", c.emsize, f"equal to nhid ({c.nhid}): the decoder is tied to the embedding")
    check(is_int(c.bptt) and 1 <= c.bptt <= MAX_BPTT, "bptt", c.bptt, f"an integer from 1 to {MAX_BPTT}")
    for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
        value = getattr(c, name)
        check(is_num(value) and 0 <= value < 1, name, value, "a probability in [0, 1)")

"""The recurrent space's size limits, torch-free: what a config checks (engine/search/rnn_config.py,
engine/space/rnn/train_config.py) and what the networks refuse (engine/nn/rnn_network.py)."""

from __future__ import annotations

__all__ = ["ORDERS", "MAX_HIDDEN", "MAX_BPTT", "MAX_VOCAB"]

ORDERS = ("first", "second")
MAX_HIDDEN = 8192      # the W_n alone are 8 x nhid x 2 nhid floats: 4 GiB of float32 at this size
MAX_BPTT = 4096
MAX_VOCAB = 1_000_000

"""Word-level text corpora for the recurrent search space: a directory with train.txt, valid.txt and test.txt.

The layout and tokenisation are those of quark0/darts rnn/data.py (and of Penn Treebank as Mikolov prepared it):
words are split on whitespace and every line ends with `<eos>`. A file may also be stored compressed as
`train.txt.bz2` or `train.txt.gz` (the embedded corpus is). Unlike the reference, the vocabulary is built from
the training split only and capped: the `max_vocab - 1` most frequent training words keep their own id (ties go
to the word seen first), every other word becomes `<unk>` (id 0). A word the training text never saw cannot be
learnt, and a cap keeps the embedding, the largest matrix of the network, within a laptop's memory.

`batchify` and `get_batch` cut a split into the reference's BPTT batches: the token stream as `batch` parallel
columns, read `bptt` rows at a time, each row's target the row below it.
"""

from __future__ import annotations

import bz2
import gzip
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.datasets.base import REPO_ROOT, DataError

__all__ = ["CorpusError", "Corpus", "load_corpus", "batchify", "get_batch", "bptt_starts", "SPLITS", "EOS", "UNK",
           "EMBEDDED_CORPUS", "MAX_VOCAB", "MAX_CORPUS_BYTES"]

SPLITS = ("train", "valid", "test")
EOS, UNK = "<eos>", "<unk>"
MAX_VOCAB = 1_000_000            # ids past this would make an embedding of gigabytes at any useful width
MAX_CORPUS_BYTES = 512 * 2**20   # per split, decompressed: far above Penn Treebank (5 MB) or WikiText-103's valid
MAX_BPTT = 4096
EMBEDDED_CORPUS = REPO_ROOT / "assets" / "corpus" / "kjv-nt"
_SUFFIXES = ("", ".bz2", ".gz")


class CorpusError(DataError, ValueError):
    """A corpus directory or one of its files cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Corpus:
    words: tuple[str, ...]   # id -> word; words[0] is <unk>
    train: np.ndarray        # int64 token ids, each split's lines joined, <eos> after every line
    valid: np.ndarray
    test: np.ndarray
    source: str

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
        return getattr(self, name)


def _split_path(directory: Path, split: str) -> Path | None:
    return next((p for s in _SUFFIXES if (p := directory / f"{split}.txt{s}").is_file()), None)


def _read(path: Path, max_bytes: int) -> str:
    """The text of one split file, decompressed with a cap (a small .bz2 may unpack to gigabytes)."""
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
    try:
        with opener(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except (OSError, EOFError, ValueError) as e:  # unreadable, or a corrupt archive
        raise CorpusError(f"cannot read corpus file {path}: {getattr(e, 'strerror', None) or e}") from None
    if len(data) > max_bytes:
        limit = f"{max_bytes // 2**20} MiB" if max_bytes >= 2**20 else f"{max_bytes} bytes"
        raise CorpusError(f"corpus file {path} is larger than {limit} (decompressed); refusing to read it")
    if b"\0" in data:
        raise CorpusError(f"corpus file {path} holds NUL bytes: a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file {path} is not UTF-8 text (byte {e.start}): a binary file?") from None


def _lines(text: str) -> list[list[str]]:
    return [line.split() + [EOS] for line in text.splitlines() if line.strip()]


def load_corpus(directory: str | os.PathLike = EMBEDDED_CORPUS, max_vocab: int = 10_000,
                max_bytes: int = MAX_CORPUS_BYTES) -> Corpus:
    """The corpus in `directory`, its vocabulary capped at `max_vocab` words (with <unk> and <eos>)."""
    if type(max_vocab) is not int or not 3 <= max_vocab <= MAX_VOCAB:
        raise CorpusError(f"max_vocab must be an integer in 3..{MAX_VOCAB} (<unk>, <eos> and a word), "
                          f"got {max_vocab!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise CorpusError(f"corpus directory {directory} does not exist or is not a directory")
    paths = {split: _split_path(directory, split) for split in SPLITS}
    missing = [f"{s}.txt" for s, p in paths.items() if p is None]
    if missing:
        raise CorpusError(f"corpus directory {directory} lacks {', '.join(missing)} (a corpus needs train.txt, "
                          f"valid.txt and test.txt, each may be .bz2 or .gz)")
    lines = {}
    for split, path in paths.items():
        lines[split] = _lines(_read(path, max_bytes))
        if not lines[split]:
            raise CorpusError(f"corpus file {path} has no words")
    counts = Counter(w for line in lines["train"] for w in line)  # insertion order = first appearance
    counts.pop(UNK, None)
    ranked = sorted(counts, key=lambda w: -counts[w])  # stable: ties keep the order of first appearance
    words = (UNK, *ranked[:max_vocab - 1])
    index = {w: i for i, w in enumerate(words)}
    ids = {s: np.fromiter((index.get(w, 0) for line in ls for w in line), dtype=np.int64) for s, ls in lines.items()}
    return Corpus(words, ids["train"], ids["valid"], ids["test"], str(directory))


def batchify(ids: np.ndarray, batch: int) -> torch.Tensor:
    """Token ids as `batch` parallel columns, (len // batch, batch); the remainder is dropped (the reference's)."""
    if type(batch) is not int or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    rows = len(ids) // batch
    if rows < 2:
        raise ValueError(f"{len(ids)} tokens make fewer than 2 rows of batch {batch}: a batch needs an input row and "
                         f"its target; use a smaller batch or a larger split")
    return torch.from_numpy(np.ascontiguousarray(ids[:rows * batch].reshape(batch, rows).T))


def get_batch(source: torch.Tensor, start: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows start..start+bptt of a batchified split and their targets, the rows one below; shorter at the end."""
    if type(bptt) is not int or not 1 <= bptt <= MAX_BPTT:
        raise ValueError(f"bptt must be an integer in 1..{MAX_BPTT}, got {bptt!r}")
    if not 0 <= start < len(source) - 1:
        raise ValueError(f"batch start {start} is outside 0..{len(source) - 2}")
    length = min(bptt, len(source) - 1 - start)
    return source[start:start + length], source[start + 1:start + 1 + length]


def bptt_starts(source: torch.Tensor, bptt: int) -> range:
    """The start row of every BPTT batch of one pass over a batchified split."""
    if type(bptt) is not int or not 1 <= bptt <= MAX_BPTT:
        raise ValueError(f"bptt must be an integer in 1..{MAX_BPTT}, got {bptt!r}")
    return range(0, len(source) - 1, bptt)

"""Word-level corpora (engine/datasets/corpus.py) and the embedded one (assets/corpus/kjv-nt, built by
scripts/build_corpus.py)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.datasets.corpus import EMBEDDED_CORPUS, EOS, UNK, CorpusError, batchify, bptt_starts, get_batch, load_corpus

ROOT = Path(__file__).resolve().parents[1]


def _write(directory: Path, **splits: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in splits.items():
        (directory / name.replace("_", ".")).write_bytes(text if isinstance(text, bytes) else text.encode())
    return directory


def _corpus(tmp_path: Path, train="a b a\nc a b\n", valid="a z\n", test="b\n") -> Path:
    return _write(tmp_path / "c", train_txt=train, valid_txt=valid, test_txt=test)


def test_the_vocabulary_ranks_training_words_and_maps_the_rest_to_unk(tmp_path):
    c = load_corpus(_corpus(tmp_path), max_vocab=4)
    # train counts: a 3, b 2, <eos> 2, c 1; ties (b, <eos>) keep the order of first appearance; c is cut by the cap
    assert c.words == (UNK, "a", "b", EOS) and c.vocab_size == 4
    assert c.train.tolist() == [1, 2, 1, 3, 0, 1, 2, 3]
    assert c.valid.tolist() == [1, 0, 3]  # z was never seen in train
    assert c.test.tolist() == [2, 3] and c.train.dtype == np.int64
    assert load_corpus(_corpus(tmp_path), max_vocab=10).words == (UNK, "a", "b", EOS, "c")


def test_compressed_splits_read_like_plain_ones(tmp_path):
    plain = load_corpus(_corpus(tmp_path))
    d = _write(tmp_path / "z", train_txt_bz2=bz2.compress(b"a b a\nc a b\n"), valid_txt_gz=gzip.compress(b"a z\n"),
               test_txt=b"b\n")
    packed = load_corpus(d)
    assert packed.words == plain.words and packed.train.tolist() == plain.train.tolist()
    assert packed.valid.tolist() == plain.valid.tolist()


def test_an_existing_unk_token_is_the_unk_id(tmp_path):
    c = load_corpus(_corpus(tmp_path, train="<unk> a <unk>\n"))
    assert c.words[0] == UNK and c.words.count(UNK) == 1 and c.train.tolist()[:3] == [0, 1, 0]


def test_batchify_and_bptt_batches_follow_the_reference():
    ids = np.arange(23, dtype=np.int64)
    source = batchify(ids, 4)  # 5 rows of 4 columns; the last 3 tokens are dropped
    assert source.shape == (5, 4) and source.dtype == torch.int64
    assert source[:, 1].tolist() == [5, 6, 7, 8, 9]  # column k is the k-th contiguous stretch of the stream
    x, y = get_batch(source, 0, 3)
    assert torch.equal(y, source[1:4]) and torch.equal(x, source[0:3])
    x, y = get_batch(source, 3, 3)  # the last batch is shorter
    assert x.shape == (1, 4) and torch.equal(y, source[4:5])
    assert list(bptt_starts(source, 3)) == [0, 3]


@pytest.mark.parametrize("call, message", [
    (lambda: batchify(np.arange(7), 4), "7 tokens make fewer than 2 rows of batch 4"),
    (lambda: batchify(np.arange(7), 0), "batch must be a positive integer, got 0"),
    (lambda: get_batch(batchify(np.arange(20), 2), 0, 0), "bptt must be an integer in 1..4096, got 0"),
    (lambda: get_batch(batchify(np.arange(20), 2), 9, 5), r"batch start 9 is outside 0..8"),
    (lambda: bptt_starts(batchify(np.arange(20), 2), 5000), "bptt must be an integer in 1..4096, got 5000"),
])
def test_bad_batch_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_directory_without_the_three_files_names_the_missing_ones(tmp_path):
    d = _write(tmp_path / "part", train_txt="a b\n")
    with pytest.raises(CorpusError, match=r"lacks valid\.txt, test\.txt \(a corpus needs train\.txt"):
        load_corpus(d)
    with pytest.raises(CorpusError, match="does not exist or is not a directory"):
        load_corpus(tmp_path / "nowhere")
    with pytest.raises(ValueError):  # a CorpusError is a ValueError, as every bad input of the engine
        load_corpus(tmp_path / "nowhere")


@pytest.mark.parametrize("valid, message", [
    (b"", r"valid\.txt has no words"),
    (b"  \n\t\n", r"valid\.txt has no words"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "holds NUL bytes: a binary file"),
    (b"caf\xe9 au lait\n", r"is not UTF-8 text \(byte 3\)"),
])
def test_an_empty_or_binary_file_is_named(tmp_path, valid, message):
    with pytest.raises(CorpusError, match=message):
        load_corpus(_corpus(tmp_path, valid=valid))


def test_a_file_too_large_or_a_broken_archive_is_named(tmp_path):
    with pytest.raises(CorpusError, match=r"train\.txt is larger than 64 bytes \(decompressed\)"):
        load_corpus(_corpus(tmp_path, train="word " * 100), max_bytes=64)
    d = _write(tmp_path / "broken", train_txt_bz2=b"BZh9 not really", valid_txt="a\n", test_txt="a\n")
    with pytest.raises(CorpusError, match=r"cannot read corpus file .*train\.txt\.bz2"):
        load_corpus(d)


@pytest.mark.parametrize("cap", [0, 2, 10**7, 2.5, True])
def test_a_vocabulary_cap_out_of_range_is_named(tmp_path, cap):
    with pytest.raises(CorpusError, match="max_vocab must be an integer in 3..1000000"):
        load_corpus(_corpus(tmp_path), max_vocab=cap)


def _build_script():
    spec = importlib.util.spec_from_file_location("build_corpus", ROOT / "scripts" / "build_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_embedded_corpus_is_what_the_build_script_records():
    script = _build_script()
    for split, digest in script.TEXT_SHA256.items():
        text = bz2.decompress((EMBEDDED_CORPUS / f"{split}.txt.bz2").read_bytes())
        assert hashlib.sha256(text).hexdigest() == digest, split
    assert [script.split_of(c) for c in range(10)] == ["train"] * 8 + ["valid", "test"]
    assert script.normalise("And he said, Father's house; LORD.") == "and he said father's house lord"


def test_the_embedded_corpus_loads_with_a_capped_vocabulary():
    c = load_corpus(max_vocab=2_000)
    assert c.vocab_size == 2_000 and c.words[0] == UNK and EOS in c.words
    assert len(c.train) > 100_000 and len(c.valid) > 10_000 and len(c.test) > 10_000
    assert 0 < (c.valid == 0).mean() < 0.1  # capped: some words are <unk>, most are not
    full = load_corpus()
    assert full.vocab_size < 10_000 and (full.train == 0).sum() == 0  # the whole training vocabulary fits in 10k

"""engine/search/data.py and engine/datasets/: the search split, batching, every kind of source, and the asset."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import socket
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.datasets import base as base_mod
from engine.datasets import folder as folder_mod
from engine.datasets import idx as idx_mod
from engine.search.config import PRESETS, SearchConfig, from_preset
from engine.search.data import DataError, SearchData, load_search_data

REPO = Path(__file__).resolve().parents[1]
ASSET = REPO / "assets" / "fashion_mnist_subset.npz"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason=(
    f"{DEBIAN_FASHION} is absent: apt-get install dataset-fashion-mnist"))


def _labels(data: SearchData, part: str) -> Counter:
    """Every label of a part, drawn through the public API (one batch = the whole part)."""
    n = min(data.num_train, data.num_valid)
    return Counter(int(y) for _, ys in data.batches(part, 0, n) for y in ys)


@pytest.fixture(scope="module")
def embedded() -> SearchData:
    return load_search_data(SearchConfig())


@pytest.fixture(scope="module")
def demo() -> SearchData:
    return load_search_data(from_preset("demo"))


def test_embedded_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the embedded dataset must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert load_search_data(SearchConfig()).num_train == 5000


def test_embedded_is_fashion_mnist_split_in_balanced_halves(embedded):
    d = embedded
    assert (d.name, d.in_channels, d.image_size, d.num_classes) == ("embedded", 1, 28, 10)
    assert d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot"
    assert (d.num_train, d.num_valid) == (5000, 5000)
    assert _labels(d, "train") == {c: 500 for c in range(10)} == _labels(d, "valid")
    x, y = next(d.batches("train", 0, 64))
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    xs = torch.cat([x for x, _ in d.batches("train", 0, 1000)])
    assert abs(float(xs.mean())) < 0.05 and abs(float(xs.std()) - 1) < 0.05     # normalised


def test_demo_subset_is_class_balanced_and_resized(demo):
    half = PRESETS["demo"].subset // 2
    assert (demo.num_train, demo.num_valid, demo.image_size) == (half, half, 16)
    assert _labels(demo, "train") == {c: half // 10 for c in range(10)} == _labels(demo, "valid")
    assert next(demo.batches("valid", 0, 64))[0].shape == (64, 1, 16, 16)
    assert demo.steps_per_epoch(64) == half // 64 and demo.steps_per_epoch(half + 1) == 0


def test_halves_are_disjoint_and_cover_the_subset(demo):
    train, valid = demo._parts["train"], demo._parts["valid"]
    assert len(np.intersect1d(train, valid)) == 0 and len(np.union1d(train, valid)) == PRESETS["demo"].subset


def test_same_seed_same_batches_other_epoch_or_seed_differs(demo):
    again = load_search_data(from_preset("demo"))
    assert again.fingerprint == demo.fingerprint
    for (x1, y1), (x2, y2) in zip(demo.batches("train", 3, 64), again.batches("train", 3, 64), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    first = next(demo.batches("train", 0, 64))[1]
    assert not torch.equal(first, next(demo.batches("train", 1, 64))[1])
    assert not torch.equal(first, next(demo.batches("valid", 0, 64))[1])
    other = load_search_data(from_preset("demo").replace(seed=3))
    assert other.fingerprint != demo.fingerprint


def test_start_skips_batches_without_loading_them(monkeypatch, smoke):
    data = load_search_data(smoke.replace(subset=96))      # 48 + 48, batch 8: 6 steps
    full = list(data.batches("train", 2, 8))
    assert len(full) == data.steps_per_epoch(8) == 6
    decoded = []
    real_take = base_mod.Pool.take
    monkeypatch.setattr(base_mod.Pool, "take", lambda self, i: decoded.append(len(i)) or real_take(self, i))
    rest = list(data.batches("train", 2, 8, start=4))
    assert decoded == [8, 8]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[4:], rest, strict=True))
    assert list(data.batches("train", 2, 8, start=6)) == []


def test_bad_batch_arguments_raise(embedded):
    with pytest.raises(ValueError, match="part"):
        embedded.batches("test", 0, 8)
    with pytest.raises(ValueError, match="start"):
        embedded.batches("train", 0, 1000, start=6)


def test_fake_follows_the_config(smoke):
    d = load_search_data(smoke)
    assert (d.name, d.num_train, d.num_valid, d.in_channels, d.num_classes, d.classes) == ("fake", 16, 16, 3, 4, None)
    x, y = next(d.batches("train", 0, 8))
    assert x.shape == (8, 3, 8, 8) and int(y.max()) < 4
    big = load_search_data(SearchConfig(dataset="fake", image_size=32, in_channels=1, num_classes=7))
    assert (big.num_train, big.num_valid, big.num_classes) == (256, 256, 7)
    assert load_search_data(smoke).fingerprint == d.fingerprint


def _write_tree(root: Path, modes: list[str], size: tuple[int, int] = (12, 12), per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for c, mode in enumerate(modes):
        folder = root / f"class_{'abc'[c]}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i}.png")
    return root


def test_image_folder_grey_and_rgb(tmp_path):
    grey = load_search_data(SearchConfig(dataset="imagefolder", data_root=str(_write_tree(tmp_path / "g", ["L"] * 3))))
    assert (grey.in_channels, grey.image_size, grey.classes, grey.num_classes) == (1, 12, ["class_a", "class_b",
                                                                                            "class_c"], 3)
    assert grey.num_train + grey.num_valid == 12
    assert next(grey.batches("train", 0, 4))[0].shape == (4, 1, 12, 12)
    rgb_root = str(_write_tree(tmp_path / "c", ["RGB", "RGB"], size=(20, 12)))
    rgb = load_search_data(SearchConfig(dataset="imagefolder", data_root=rgb_root))
    assert (rgb.in_channels, rgb.image_size) == (3, 12)                    # shorter side of the first image
    small = load_search_data(SearchConfig(dataset="imagefolder", data_root=rgb_root, image_size=8))
    assert next(small.batches("valid", 0, 2))[0].shape == (2, 3, 8, 8)
    mixed = load_search_data(SearchConfig(dataset="imagefolder", data_root=str(_write_tree(tmp_path / "m",
                                                                                           ["L", "RGB"]))))
    assert mixed.in_channels == 3


def test_image_folder_decoded_per_batch_matches_in_memory(tmp_path, monkeypatch):
    cfg = SearchConfig(dataset="imagefolder", data_root=str(_write_tree(tmp_path / "t", ["RGB"] * 3)), subset=10)
    held = load_search_data(cfg)
    monkeypatch.setattr(folder_mod, "MEMORY_BUDGET_BYTES", 0)
    lazy = load_search_data(cfg)
    assert lazy._pool.images is None and held._pool.images is not None
    assert lazy.fingerprint == held.fingerprint and (lazy.num_train, lazy.num_valid) == (5, 5)
    for (x1, y1), (x2, y2) in zip(held.batches("train", 1, 2), lazy.batches("train", 1, 2), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_image_folder_errors_name_the_path(tmp_path):
    def load(root: Path) -> SearchData:
        return load_search_data(SearchConfig(dataset="imagefolder", data_root=str(root)))

    with pytest.raises(DataError, match="not found"):
        load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="class"):
        load(tmp_path / "empty")
    with pytest.raises(DataError, match="at least 2"):
        load(_write_tree(tmp_path / "one", ["L"]))
    broken = _write_tree(tmp_path / "broken", ["L", "L"])
    (broken / "class_a" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="0.png"):
        load(broken)


def _write_idx(path: Path, array: np.ndarray) -> None:
    raw = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)


@pytest.mark.parametrize("layout", ["flat-gz", "torchvision"])
def test_idx_files_flat_or_in_torchvision_layout(tmp_path, layout):
    raw = tmp_path if layout == "flat-gz" else tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if layout == "flat-gz" else ""
    _write_idx(raw / f"train-images-idx3-ubyte{suffix}", np.arange(20 * 28 * 28, dtype=np.uint8).reshape(20, 28, 28))
    _write_idx(raw / f"train-labels-idx1-ubyte{suffix}", np.arange(20, dtype=np.uint8) % 10)
    d = load_search_data(SearchConfig(dataset="mnist", data_root=str(tmp_path), batch_size=5))
    assert (d.num_train, d.num_valid, d.in_channels, d.image_size, d.classes[0]) == (10, 10, 1, 28, "0 - zero")


def test_bad_idx_file_is_a_data_error(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0\0\x0d\x03garbage")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_search_data(SearchConfig(dataset="fashion_mnist", data_root=str(tmp_path)))


@pytest.mark.parametrize("dataset, expected", [
    ("cifar10", ["CIFAR-10", "cifar-10-batches-py", "download=true"]),
    ("cifar100", ["CIFAR-100", "cifar-100-python", "download=true"]),
    ("svhn", ["SVHN", "train_32x32.mat", "download=true"]),
    ("mnist", ["MNIST", "MNIST/raw", "download=true"]),
    ("fashion_mnist", ["Fashion-MNIST", "apt-get install dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist"]),
])
def test_missing_dataset_says_where_and_how(tmp_path, dataset, expected):
    with pytest.raises(DataError) as err:
        load_search_data(SearchConfig(dataset=dataset, data_root=str(tmp_path / "data")))
    assert str(tmp_path / "data") in str(err.value)
    for text in expected:
        assert text in str(err.value)


def test_missing_or_broken_asset_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_mod, "EMBEDDED_ASSET", tmp_path / "gone.npz")
    with pytest.raises(DataError, match="build_embedded_dataset.py"):
        load_search_data(SearchConfig())
    (tmp_path / "gone.npz").write_bytes(b"PK garbage")
    with pytest.raises(DataError, match="build_embedded_dataset.py"):
        load_search_data(SearchConfig())


@needs_debian
def test_full_fashion_mnist_from_the_debian_package():
    d = load_search_data(SearchConfig(dataset="fashion_mnist", data_root=str(DEBIAN_FASHION)))
    assert (d.num_train, d.num_valid, d.in_channels, d.image_size) == (30000, 30000, 1, 28)
    assert d.classes[0] == "T-shirt/top" and d.num_classes == 10
    assert abs(d.mean[0] - 0.2860) < 1e-3 and abs(d.std[0] - 0.3530) < 1e-3    # Fashion-MNIST's known figures
    assert _labels(d, "train") == {c: 3000 for c in range(10)}


@needs_debian
def test_asset_holds_the_source_images_it_names():
    source = idx_mod.read_idx(DEBIAN_FASHION / "train-images-idx3-ubyte.gz")
    with np.load(ASSET, allow_pickle=False) as z:
        assert np.array_equal(source[z["train_indices"]], z["train_images"])
        assert np.bincount(z["test_labels"]).tolist() == [200] * 10


@needs_debian
@pytest.mark.slow
def test_build_script_reproduces_the_shipped_asset(tmp_path):
    spec = importlib.util.spec_from_file_location("build_embedded", REPO / "scripts" / "build_embedded_dataset.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = hashlib.sha256(ASSET.read_bytes()).hexdigest()
    assert script.build(DEBIAN_FASHION, tmp_path / "again.npz") == shipped
    assert shipped in (REPO / "assets" / "README.md").read_text()

"""The search-space seam: the convolutional cell described once, and everything the engine asks of a space."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from engine.space import DEFAULT_SPACE, get_space, space_names
from engine.space.cnn.cell import edge_labels
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype, derive_genotype
from engine.space.weights import softmax


def test_the_cnn_space_is_the_papers_cell():
    space = get_space("cnn")
    assert DEFAULT_SPACE == "cnn" and "cnn" in space_names()
    assert space.weights_shape(4) == (14, 8) and space.weights_shape(2) == (5, 8)
    assert space.primitives[0] == "none" and space.cell_kinds == ("normal", "reduce")
    assert space.inputs_per_node == 2 and space.data_kind == "image"
    assert space.edge_labels(4) == edge_labels(4)


def test_a_space_derives_parses_and_names_its_network():
    space = get_space()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(14, 8)), rng.normal(size=(14, 8))
    assert space.derive({"normal": softmax(a), "reduce": softmax(b)}) == derive_genotype(a, b)
    v2 = space.known_genotypes["DARTS_V2"]
    assert space.parse_genotype(v2.to_darts()) == v2 == space.genotype_from_dict(v2.to_dict())
    module, _, name = space.network.partition(":")
    network = getattr(importlib.import_module(module), name)
    assert network(8, 10, 5, False, KNOWN_GENOTYPES["DARTS_V2"]).__class__.__name__ == name
    assert isinstance(v2, Genotype)
    dot = space.dot(v2)
    assert dot.startswith("digraph") and dot.count("sep_conv_3x3") == 5  # DARTS_V2's normal cell has five


def test_an_unknown_space_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown search space 'lstm'; known: cnn, rnn"):
        get_space("lstm")


def test_softmax_is_stable_for_large_alphas():
    w = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(w, [[1.0, 0.0], [0.5, 0.5]]) and np.isfinite(w).all()

"""Genotype: the derivation rule, text round trips, safe parsing, known cells, non-DARTS layouts, diffs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from engine.space.cnn.cell import PRIMITIVES, edge_endpoints, edge_labels, nodes_of, num_edges
from engine.space.cnn.genotype import (
    KNOWN_GENOTYPES,
    Genotype,
    GenotypeChange,
    derive_genotype,
    diff_genotypes,
    genotype_from_weights,
)

# The reference's genotypes.py lines, verbatim (docs/darts.md).
DARTS_V1_LINE = "DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"  # noqa: E501
DARTS_V2_LINE = "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"  # noqa: E501
OP = {name: k for k, name in enumerate(PRIMITIVES)}


def alphas_for(cell: tuple[tuple[str, int], ...], nodes: int = 4) -> np.ndarray:
    """Raw alphas whose derivation is `cell`: each kept edge has one strong op, the first of a node stronger."""
    a = np.zeros((num_edges(nodes), len(PRIMITIVES)))  # (edges, ops)
    for k, (op, j) in enumerate(cell):
        node = k // 2
        a[num_edges(node) + j, OP[op]] = 3.0 if k % 2 == 0 else 2.0
    return a


def test_known_genotypes_are_the_papers_cells():
    assert {"DARTS_V1", "DARTS_V2"} <= set(KNOWN_GENOTYPES)
    assert "DARTS_V1 = " + KNOWN_GENOTYPES["DARTS_V1"].to_darts() == DARTS_V1_LINE
    assert "DARTS_V2 = " + KNOWN_GENOTYPES["DARTS_V2"].to_darts() == DARTS_V2_LINE
    assert Genotype.parse(DARTS_V2_LINE) == KNOWN_GENOTYPES["DARTS_V2"]
    assert Genotype.parse(DARTS_V1_LINE) == KNOWN_GENOTYPES["DARTS_V1"]
    assert str(KNOWN_GENOTYPES["DARTS_V2"]) == DARTS_V2_LINE[len("DARTS_V2 = "):]
    with pytest.raises(TypeError):
        KNOWN_GENOTYPES["mine"] = KNOWN_GENOTYPES["DARTS_V2"]  # shared by every session: read-only


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
def test_round_trips(name):
    g = KNOWN_GENOTYPES[name]
    assert Genotype.parse(g.to_json()) == g
    assert Genotype.from_dict(json.loads(g.to_json())) == g
    assert Genotype.parse(g.to_darts()) == g
    assert Genotype.parse(f"{name} = {g.to_darts()}") == g
    assert Genotype.parse(json.dumps({"step": 10, "epoch": 1, "genotype": g.to_dict()})) == g  # a genotypes.jsonl row


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
def test_derive_recovers_a_cell_from_its_alphas(name):
    g = KNOWN_GENOTYPES[name]
    assert derive_genotype(alphas_for(g.normal), alphas_for(g.reduce)) == g


def test_parse_accepts_the_reference_log_form_with_range():
    text = DARTS_V2_LINE.replace("DARTS_V2", "genotype").replace("[2, 3, 4, 5]", "range(2, 6)")
    assert "range(2, 6)" in text
    g = Genotype.parse("\n  " + text + "\n")
    assert g == KNOWN_GENOTYPES["DARTS_V2"] and g.normal_concat == (2, 3, 4, 5)


def test_ties_go_to_the_lower_edge_and_the_lower_op():
    zeros = np.zeros((14, 8))
    g = derive_genotype(zeros, zeros)  # every weight 1/8: first two edges of each node, first real op
    assert g.normal == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4
    a = np.zeros((14, 8))
    a[12, OP["dil_conv_3x3"]] = a[12, OP["sep_conv_3x3"]] = 4.0  # op tie on row 12 (input 3 -> node 3)
    a[13, OP["avg_pool_3x3"]] = 4.0  # one strong op: weight 0.89 > 0.47 of each tied op on row 12
    b = np.zeros((14, 8))
    b[13, OP["dil_conv_5x5"]] = b[11, OP["sep_conv_5x5"]] = 1.5  # edge tie: row 11 (input 2) before 13 (input 4)
    ga, gb = derive_genotype(a, b), derive_genotype(b, a)
    assert ga.normal[6:] == (("avg_pool_3x3", 4), ("sep_conv_3x3", 3))
    assert gb.normal[6:] == (("sep_conv_5x5", 2), ("dil_conv_5x5", 4))
    assert gb.reduce[6:] == ga.normal[6:]


def test_a_dominant_none_loses_the_edge_and_never_appears():
    a = np.zeros((14, 8))
    a[:, OP["none"]] = 10.0  # none wins every edge's softmax
    a[0, OP["sep_conv_5x5"]] = 9.0  # still the strongest real op anywhere, by raw alpha and by weight
    g = derive_genotype(a, a)
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    assert g.normal[:2] == (("sep_conv_5x5", 0), ("max_pool_3x3", 1))


def _raw_alpha_ranking(a: np.ndarray) -> list[tuple[str, int]]:
    """The known third-party bug: rank edges by raw alphas instead of softmax weights."""
    out, start = [], 0
    for i in range(4):
        rows = sorted(range(start, start + i + 2), key=lambda r: -a[r, 1:].max())[:2]
        out += [(PRIMITIVES[1 + int(a[r, 1:].argmax())], r - start) for r in rows]
        start += i + 2
    return out


@pytest.mark.parametrize("case", ["flat_row", "dominant_none"])
def test_edges_are_ranked_by_softmax_not_by_raw_alphas(case):
    a = np.zeros((14, 8))  # node 1 (rows 2, 3, 4) decides; other nodes stay at ties
    if case == "flat_row":
        a[2, 1:] = 1.0  # largest raw alpha (1.0), but spread over 7 ops: weight e/(1+7e) = 0.137
    else:
        a[2, OP["none"]], a[2, OP["sep_conv_3x3"]] = 5.0, 1.0  # largest raw real alpha, weight 0.017
    a[3, OP["dil_conv_3x3"]] = 0.8  # weight 0.241
    a[4, OP["sep_conv_5x5"]] = 0.9  # weight 0.260
    ours = derive_genotype(a, a).normal
    assert ours[2:4] == (("sep_conv_5x5", 2), ("dil_conv_3x3", 1))
    assert _raw_alpha_ranking(a)[2:4] != list(ours[2:4])
    assert ("sep_conv_5x5", 2) in _raw_alpha_ranking(a)[2:4]  # raw ranking keeps row 2, softmax drops it


def test_derive_takes_torch_tensors_and_other_node_counts():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(14, 8)), rng.normal(size=(14, 8))
    ta = torch.tensor(a, dtype=torch.float32, requires_grad=True)
    assert derive_genotype(ta, torch.tensor(b)) == derive_genotype(a.astype(np.float32), b)
    g3 = derive_genotype(rng.normal(size=(9, 8)), rng.normal(size=(9, 8)))  # 9 rows: 3 nodes
    assert len(g3.normal) == 6 and g3.normal_concat == (2, 3, 4)
    with pytest.raises(ValueError, match=r"\(edges, 8\)"):
        derive_genotype(np.zeros((14, 7)), np.zeros((14, 8)))
    with pytest.raises(ValueError, match="13 edges"):
        derive_genotype(np.zeros((13, 8)), np.zeros((13, 8)))
    with pytest.raises(ValueError, match="must agree"):
        derive_genotype(np.zeros((14, 8)), np.zeros((9, 8)))
    with pytest.raises(ValueError, match="NaN"):
        derive_genotype(np.full((14, 8), np.nan), np.zeros((14, 8)))


def test_edge_labels_and_endpoints():
    labels = edge_labels(4)
    assert labels[:5] == ["c_{k-2} -> 0", "c_{k-1} -> 0", "c_{k-2} -> 1", "c_{k-1} -> 1", "0 -> 1"]
    assert labels[-1] == "2 -> 3" and len(labels) == 14
    assert edge_endpoints(2) == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1)]
    assert [num_edges(s) for s in (1, 2, 3, 4, 5)] == [2, 5, 9, 14, 20]
    assert [nodes_of(num_edges(n)) for n in range(1, 9)] == list(range(1, 9))
    with pytest.raises(ValueError, match="13 edges"):
        nodes_of(13)


V2 = DARTS_V2_LINE[len("DARTS_V2 = "):]
ALLOWED = "allowed: max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5"


@pytest.mark.parametrize("text, message", [
    (V2.replace("('dil_conv_3x3', 2)", "('conv_9x9', 2)"), "unknown op 'conv_9x9'; " + ALLOWED),
    (V2.replace("('dil_conv_3x3', 2)", "('none', 2)"), "'none' is not an op of a genotype"),
    (V2.replace("normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)", "normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 2)"),
     "node 0 takes input 2; node 0 may take inputs 0..1"),
    (V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "node 3 may take inputs 0..4"),
    (V2.replace(", ('dil_conv_3x3', 2)]", "]"), "normal has 7 (op, input) pairs; a DARTS cell has 2 per node"),
    (V2.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[2, 6]"), "reduce_concat [2, 6] must name"),
    ("__import__('os').system('x')", "expected `Genotype(key=value, ...)`"),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=__import__('os').system('x')"), "not a plain literal"),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=list(range(2, 6))"), "not a plain literal"),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=CONCAT"), "not a plain literal: 'CONCAT'"),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 10**9)"), "not a plain literal"),
    (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 100000)"), "not a plain literal"),
    (V2.replace("('sep_conv_3x3', 0)", "(print('pwned'), 0)", 1), "not a plain literal: \"print('pwned')\""),
    (V2.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', True)", 1), "not a plain literal: 'True'"),
    (V2.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', 0.0)", 1), "not a plain literal: '0.0'"),
    ("genotypes." + V2, "expected `Genotype("),
    ("import os; " + V2, "expected `Genotype("),
    (V2.replace("Genotype(", "Genotype(**{'a': 1}, "), "named fields only"),
    (V2.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[2, 3, 4, 5], normal=[]"), "gives normal twice"),
    (V2.replace("reduce_concat=", "colour='red', reduce_concat="), "unknown ['colour']"),
    ("Genotype(normal=[", "neither JSON nor Genotype(...) text"),
    ('{"normal": [["sep_conv_3x3", 0]', "genotype JSON is not valid"),
    ('{"normal": []}', "missing ['normal_concat', 'reduce', 'reduce_concat']"),
    ('{"normal": [["sep_conv_3x3", 0, 1]], "normal_concat": [2], "reduce": [], "reduce_concat": []}',
     "normal pair 0 must be (op_name, input_index)"),
])
def test_parse_rejects_with_a_clear_message(text, message, capsys):
    with pytest.raises(ValueError) as err:
        Genotype.parse(text)
    assert message in str(err.value)
    assert capsys.readouterr().out == ""  # nothing was run


def test_fewer_inputs_per_node_can_be_expressed():
    # A FairDARTS-style cell: node 1 keeps one input, node 2 none (so nobody reads it and it is not concatenated).
    g = Genotype(normal=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 2), ("sep_conv_5x5", 1),
                         ("avg_pool_3x3", 3)],
                 normal_concat=[2, 3, 5], normal_fanin=[2, 1, 0, 2], **{k: getattr(KNOWN_GENOTYPES["DARTS_V2"], k)
                                                                        for k in ("reduce", "reduce_concat")})
    assert g.cell_nodes("normal") == ((("sep_conv_3x3", 0), ("skip_connect", 1)), (("dil_conv_3x3", 2),), (),
                                      (("sep_conv_5x5", 1), ("avg_pool_3x3", 3)))
    assert g.fanin("normal") == (2, 1, 0, 2) and g.fanin("reduce") == (2, 2, 2, 2)
    assert Genotype.parse(g.to_json()) == g and Genotype.parse(g.to_darts()) == g
    assert "normal_fanin=[2, 1, 0, 2]" in g.to_darts() and "reduce_fanin" not in g.to_darts()
    assert dataclasses.replace(g, normal_fanin=(2, 1, 0, 2)) == g
    with pytest.raises(ValueError, match="input 4 is node 2, which has no inputs"):
        dataclasses.replace(g, normal=g.normal[:4] + (("avg_pool_3x3", 4),))
    with pytest.raises(ValueError, match="must name distinct nodes with inputs"):
        dataclasses.replace(g, normal_concat=(2, 3, 4, 5))
    with pytest.raises(ValueError, match="does not account for the 5 pairs"):
        dataclasses.replace(g, normal_fanin=(2, 2, 0, 2))
    with pytest.raises(ValueError, match=r"normal_fanin \[2, 2, 2, 2\] does not account for the 5 pairs"):
        dataclasses.replace(g, normal_fanin=(2, 2, 2, 2))
    # two per node written out is the DARTS layout itself: one canonical form
    v2 = KNOWN_GENOTYPES["DARTS_V2"]
    assert dataclasses.replace(v2, normal_fanin=(2, 2, 2, 2)) == v2


def test_genotype_is_immutable_and_hashable():
    g = KNOWN_GENOTYPES["DARTS_V2"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.normal = ()  # type: ignore[misc]
    assert len({g, Genotype.parse(g.to_json()), KNOWN_GENOTYPES["DARTS_V1"]}) == 2


def test_diff_lists_changed_slots():
    v1, v2 = KNOWN_GENOTYPES["DARTS_V1"], KNOWN_GENOTYPES["DARTS_V2"]
    assert diff_genotypes(v2, v2) == ()
    changed = dataclasses.replace(v2, normal=v2.normal[:7] + (("sep_conv_5x5", 3),))
    assert diff_genotypes(v2, changed) == (
        GenotypeChange("normal", 3, 0, ("dil_conv_3x3", 2), ("sep_conv_5x5", 3)),)
    assert len(diff_genotypes(None, v2)) == 16
    assert {(c.cell, c.node) for c in diff_genotypes(v1, v2)} == {  # nodes 0, 2: the same pairs, other order
        ("normal", 1), ("normal", 3), ("reduce", 1), ("reduce", 3)}
    swapped = dataclasses.replace(v2, normal=(v2.normal[1], v2.normal[0], *v2.normal[2:]))
    assert swapped != v2 and diff_genotypes(v2, swapped) == ()  # a node's inputs are a set: order is no change


def test_genotype_from_weights_serves_other_keep_counts_and_scaled_rows():
    w = np.full((14, 8), 1 / 8)  # (edges, ops)
    w[1, 4] = w[4, 5] = w[8, 6] = w[13, 7] = 0.5
    one = genotype_from_weights(w, w, keep=1)
    assert one.fanin("normal") == (1, 1, 1, 1)
    assert one.normal == (("sep_conv_3x3", 1), ("sep_conv_5x5", 2), ("dil_conv_3x3", 3), ("dil_conv_5x5", 4))
    assert genotype_from_weights(w, w, keep=3).fanin("reduce") == (2, 3, 3, 3)
    assert genotype_from_weights(w, w) == derive_genotype(np.log(w), np.log(w))  # softmax(log w) == w
    beta = np.ones((14, 1))
    beta[4] = 0.1  # a PC-DARTS edge weight scales the whole row: row 4 (0.5 -> 0.05) drops out of node 1
    assert genotype_from_weights(w, w).normal[2] == ("sep_conv_5x5", 2)
    assert genotype_from_weights(w * beta, w).normal[2:4] == (("max_pool_3x3", 0), ("max_pool_3x3", 1))


def test_derive_genotype_without_torch_is_the_darts_variants_cell():
    """The torch-free derivation (numpy softmax in engine/space) and the darts variant (torch softmax) agree."""
    from engine import variants

    rng = np.random.default_rng(3)
    for scale in (1e-3, 1.0, 30.0):  # near-uniform, typical, and alphas large enough to overflow a plain exp
        a, b = scale * rng.normal(size=(14, 8)), scale * rng.normal(size=(14, 8))
        assert derive_genotype(a, b) == variants.derive({"normal": a, "reduce": b}, "darts")

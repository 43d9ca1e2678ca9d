"""Zero-cost proxies (engine/derive/proxies.py) on tiny networks whose scores are worked out by hand, the rank
statistics, the reference set and `score` (engine/cli/score.py)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.cli.common import BadInput, Parser
from engine.derive import proxies


def _conv_net(w_conv: torch.Tensor, w_lin: torch.Tensor) -> nn.Module:
    """conv 3x3 (1 -> 2, padding 1) -> BatchNorm -> ReLU -> global mean -> linear 2 -> 3, no biases."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(w_conv)
        net[5].weight.copy_(w_lin)
    return net


def test_parameters_and_mult_adds_of_a_tiny_network_by_hand():
    net = _conv_net(torch.randn(2, 1, 3, 3), torch.randn(3, 2))
    # conv: 2 filters of 1x3x3, BatchNorm: weight and bias for 2 channels, linear: 3x2
    assert proxies.count_parameters(net) == 2 * 9 + 2 * 2 + 3 * 2
    # each of the 4x4 output pixels of each of the 2 filters takes 9 products; the linear layer 2 x 3
    assert proxies.multiply_adds(net, (5, 1, 4, 4)) == 2 * 9 * 16 + 2 * 3


def test_synflow_of_a_tiny_network_by_hand():
    g = torch.Generator().manual_seed(1)
    w_conv, w_lin = torch.randn(2, 1, 3, 3, generator=g), torch.randn(3, 2, generator=g)
    net = _conv_net(w_conv, w_lin)
    before = [p.clone() for p in net.parameters()]
    # With |weights|, no BatchNorm and an all-ones 4x4 input (zero padded), filter c's output summed over the
    # image is sum_k |W_ck| n_k, n_k the pixels where kernel tap k falls inside the image: per axis an offset of
    # -1 or +1 fits 3 of the 4 rows, offset 0 all 4. Everything is positive, so the ReLU passes it all.
    per_axis = np.array([3, 4, 3])
    n = np.outer(per_axis, per_axis)                                    # (3, 3) taps
    W, V = np.abs(w_conv.numpy()[:, 0].astype(np.float64)), np.abs(w_lin.numpy().astype(np.float64))
    h = np.array([(W[c] * n).sum() / 16 for c in range(2)])             # the pooled features
    R = float((V @ h).sum())                                            # sum of the 3 logits
    # dR/dV_jc = h_c, so the linear layer's terms sum to sum_jc V_jc h_c = R; dR/dW_ck = (sum_j V_jc) n_k / 16,
    # so the conv's terms sum to sum_c (sum_j V_jc) h_c = R as well
    conv_terms = sum(V[:, c].sum() * (W[c] * n).sum() / 16 for c in range(2))
    lin_terms = sum(V[j, c] * h[c] for j in range(3) for c in range(2))
    assert proxies.synflow(net, (8, 1, 4, 4)) == pytest.approx(conv_terms + lin_terms, rel=1e-12)
    assert conv_terms + lin_terms == pytest.approx(2 * R)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))  # scored on a copy


def test_naswot_of_a_tiny_network_by_hand():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, -1.0], [-2.0, 3.0], [0.5, 4.0]])
    codes = [[1 if v > 0 else 0 for v in row] for row in x.tolist()]  # which units the ReLU lets through
    K = [[sum(a == b for a, b in zip(ci, cj, strict=True)) for cj in codes] for ci in codes]
    det = (K[0][0] * (K[1][1] * K[2][2] - K[1][2] * K[2][1]) - K[0][1] * (K[1][0] * K[2][2] - K[1][2] * K[2][0])
           + K[0][2] * (K[1][0] * K[2][1] - K[1][1] * K[2][0]))
    assert det > 0
    assert proxies.naswot(net, x) == pytest.approx(math.log(det), abs=1e-12)
    # two images with the same code make K singular: no score
    assert proxies.naswot(net, x[[0, 0, 1]]) == float("-inf")


def test_grad_norm_of_a_tiny_network_by_hand():
    W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
    x = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 1.0], [2.0, 0.5, -1.0], [-1.0, 1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    net = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(W))
    z = x @ W.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(2)[y]).T @ x / len(x)                       # d mean CE / dW
    got = proxies.grad_norm(net, torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    assert got == pytest.approx(float(np.sqrt((grad ** 2).sum())), rel=1e-5)
    assert net.weight.grad is None  # scored on a copy


def test_percentile_and_spearman_by_hand():
    assert proxies.percentile(5, [1, 2, 3, 4]) == 100.0
    assert proxies.percentile(2, [1, 2, 3, 4]) == pytest.approx(100 * 1.5 / 4)  # one below, one tie (half)
    assert proxies.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert proxies.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1, 2, 3) and (2, 1, 3): d = (-1, 1, 0), rho = 1 - 6 * 2 / (3 * 8)
    assert proxies.spearman([1, 2, 3], [5, 4, 6]) == pytest.approx(1 - 6 * 2 / (3 * 8))
    assert proxies.spearman([1, 2], [1, 2]) is None
    assert proxies.spearman([1, 1, 1], [1, 2, 3]) is None


def _score_parser() -> argparse.ArgumentParser:
    from engine.cli.score import add_parser

    p = Parser(prog="score-test")
    add_parser(p.add_subparsers(dest="command", required=True, parser_class=Parser))
    return p


def test_score_prints_proxies_with_percentiles(tmp_path, capsys):
    from engine.cli.score import cmd_score

    args = _score_parser().parse_args(["score", "DARTS_V2", "random:3", "--runs-dir", str(tmp_path),
                                       "--format", "json"])
    assert cmd_score(args) == 0
    out = json.loads(capsys.readouterr().out)
    reference = proxies.load_reference()
    assert [r["cell"] for r in out["rows"]] == ["DARTS_V2", "random:3"]
    assert out["trained_cells"] == 0 and out["reference_cells"] == len(reference["cells"])
    stored = next(c for c in reference["cells"] if c["name"] == "DARTS_V2")
    row = out["rows"][0]
    assert row["scores"]["parameters"] == stored["parameters"]  # the same network the reference scored
    assert row["scores"]["naswot"] == pytest.approx(stored["naswot"], rel=1e-6)
    values = [c["parameters"] for c in reference["cells"]]
    assert row["percentiles"]["parameters"] == pytest.approx(proxies.percentile(stored["parameters"], values))


@pytest.mark.parametrize("spec, words", [("NOT_A_CELL", "neither a known genotype"),
                                         ("|nor_conv_3x3~0|+|skip_connect~0|", "neither a known genotype"),
                                         ("Genotype(normal=[('conv_9x9', 0)])", "not a DARTS genotype")])
def test_score_refuses_a_cell_it_cannot_score_in_one_line(spec, words, tmp_path):
    from engine.cli.score import cmd_score

    args = _score_parser().parse_args(["score", "DARTS_V2", spec, "--runs-dir", str(tmp_path)])
    with pytest.raises((BadInput, ValueError)) as e:
        cmd_score(args)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_score_refuses_a_cell_of_another_size(tmp_path):
    from engine.cli.score import cmd_score

    pairs = ", ".join(["('skip_connect', 0), ('sep_conv_3x3', 1)"] * 3)
    three = f"Genotype(normal=[{pairs}], normal_concat=[2, 3, 4], reduce=[{pairs}], reduce_concat=[2, 3, 4])"
    with pytest.raises(BadInput, match="4-node"):
        cmd_score(_score_parser().parse_args(["score", three, "--runs-dir", str(tmp_path)]))


def test_score_ranks_the_proxies_against_the_trainings_of_the_same_recipe(tmp_path, train_smoke):
    from engine.cli.score import score_rows
    from engine.train.loop import run_training
    from engine.train.source import random_genotype

    cells = [random_genotype(s) for s in range(3)]
    for k, genotype in enumerate(cells):
        assert run_training(train_smoke.replace(seed=k), genotype, tmp_path / f"t{k}") == "finished"
    # another recipe: its accuracy is not comparable, so it is left out
    assert run_training(train_smoke.replace(lr=0.01), random_genotype(9), tmp_path / "other") == "finished"
    trained = proxies.trained_cells(tmp_path, "train-smoke")
    assert sorted(Path(t["run_dir"]).name for t in trained) == ["t0", "t1", "t2"]
    assert [t["genotype"] for t in trained] == cells
    out = score_rows(["DARTS_V2"], "train-smoke", str(tmp_path))
    assert out["trained_cells"] == 3
    assert out["rows"][0]["percentiles"] is None  # the reference was scored at train-demo, not train-smoke
    scores = [proxies.score_genotype(g, "train-smoke") for g in cells]
    accs = [t["test_acc"] for t in trained]
    for k in proxies.COLUMNS:
        assert out["correlation"][k] == proxies.spearman([s[k] for s in scores], accs)


@pytest.mark.parametrize("text, words", [
    ("", "cannot read the proxy reference set"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"format": "something else", "cells": []}', "is not a proxy reference set"),
    (json.dumps({"format": proxies.REFERENCE_FORMAT, "cells": [{"name": "x"}]}), "lacks one of the columns"),
])
def test_a_damaged_reference_set_is_refused_by_name(tmp_path, text, words):
    path = tmp_path / "reference.json"
    path.write_text(text)
    with pytest.raises(proxies.ReferenceError, match=words) as e:
        proxies.load_reference(path)
    assert str(path) in str(e.value)

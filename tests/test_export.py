"""Exports: genotype text that parses back, DOT/SVG cell pictures, the alphas CSV, safe atomic writes."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil

import numpy as np
import pytest

from engine.core.atomic import append_jsonl
from engine.runs import export, rundir
from engine.runs.export import CSV_COLUMNS, GraphvizMissingError, alphas_csv, genotype_to, render_svg, write_export
from engine.space.cnn.cell import source_name
from engine.space.cnn.dot import cell_dot, genotype_dot, weighted_cell_dot
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype

V2 = KNOWN_GENOTYPES["DARTS_V2"]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def _records(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"step": 10 * t, "epoch": t, "normal": rng.normal(size=(14, 8)).tolist(),
             "reduce": rng.normal(size=(14, 8)).tolist()} for t in range(n)]


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
@pytest.mark.parametrize("fmt", ["json", "darts"])
def test_text_exports_parse_back(name, fmt):
    g = KNOWN_GENOTYPES[name]
    assert Genotype.parse(genotype_to(fmt, g)) == g


def test_unknown_format():
    with pytest.raises(ValueError, match="json, darts or dot"):
        genotype_to("yaml", V2)


@pytest.mark.parametrize("cell", ["normal", "reduce"])
def test_dot_has_every_edge_of_the_cell(cell):
    dot = cell_dot(V2, cell)
    for i, pairs in enumerate(V2.cell_nodes(cell)):
        for op, j in pairs:
            assert f'"{source_name(j)}" -> "{i}" [label="{op}"]' in dot
            assert f'"{cell}:{source_name(j)}" -> "{cell}:{i}" [label="{op}"]' in genotype_dot(V2)
    assert all(f'"{i}" -> "c_{{k}}"' in dot for i in range(4))
    assert dot.count(" -> ") == 8 + 4
    assert genotype_to("dot", V2) == genotype_dot(V2)


def test_dot_with_weights_labels_the_kept_ops():
    w = np.full((14, 8), 0.1)  # (edges, ops)
    w[0, 4] = 0.62  # sep_conv_3x3 on c_{k-2} -> 0
    dot = cell_dot(V2, "normal", weights=w)
    assert '"c_{k-2}" -> "0" [label="sep_conv_3x3 0.62", penwidth=3.29]' in dot
    with pytest.raises(ValueError, match=r"must be \(14, 8\)"):
        cell_dot(V2, "normal", weights=np.zeros((9, 8)))


def test_weighted_dot_draws_every_candidate_edge():
    w = np.full((14, 8), 1 / 8)
    w[0, 4] = w[3, 5] = 0.9  # kept ops, strongest on their node
    dot = weighted_cell_dot(w)
    lines = [ln for ln in dot.splitlines() if " -> " in ln and "c_{k}" not in ln]
    assert len(lines) == 14
    assert sum("style=solid" in ln for ln in lines) == 8 and sum("style=dashed" in ln for ln in lines) == 6
    assert 'label="sep_conv_3x3 0.90", penwidth=5.45' in lines[0] and "#1f3b73ea" in lines[0]  # alpha 40 + 215 * 0.9
    assert 'label="sep_conv_5x5 0.90"' in lines[3]


@needs_dot
def test_svg_renders():
    svg = render_svg(genotype_dot(V2))
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg and b"dil_conv_3x3" in svg
    assert b"<svg" in render_svg(weighted_cell_dot(np.full((14, 8), 1 / 8)))


def test_svg_without_dot_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no dot anywhere
    with pytest.raises(GraphvizMissingError) as err:
        render_svg(cell_dot(V2))
    assert "apt-get install graphviz" in str(err.value) and "brew install graphviz" in str(err.value)


def test_alphas_csv_is_long_format():
    records = _records(3)
    rows = list(csv.DictReader(io.StringIO(alphas_csv(records))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3 * 2 * 14 * 8
    first = rows[0]
    assert (first["step"], first["epoch"], first["cell"], first["edge"], first["source"], first["node"], first["op"]) \
        == ("0", "0", "normal", "0", "c_{k-2}", "0", "none")
    assert float(first["alpha"]) == records[0]["normal"][0][0]
    last = rows[-1]
    assert (last["step"], last["cell"], last["edge"], last["source"], last["node"], last["op"]) \
        == ("20", "reduce", "13", "2", "3", "dil_conv_5x5")
    edge0 = [float(r["weight"]) for r in rows[:8]]
    a = np.asarray(records[0]["normal"][0])
    assert np.allclose(edge0, np.exp(a) / np.exp(a).sum()) and abs(sum(edge0) - 1) < 1e-12


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / "config.json").write_text('{"kind": "search", "config": {"variant": "darts"}}')
    return path


@pytest.mark.parametrize("fmt", sorted(export.FORMATS))
def test_write_export_defaults(run, fmt):
    if fmt == "svg" and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    append_jsonl(run / rundir.GENOTYPES, [{"step": 5, "epoch": 0, "genotype": V2.to_dict()}])
    append_jsonl(run / rundir.ALPHAS, _records(2))
    path = write_export(run, fmt)
    assert path == run.resolve() / "exports" / export.FORMATS[fmt]
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind
    if fmt in ("json", "darts"):
        assert Genotype.parse(path.read_text()) == V2
    elif fmt == "csv":
        assert len(path.read_text().splitlines()) == 1 + 2 * 2 * 14 * 8


def test_write_export_given_genotype_and_out(run):
    path = write_export(run, "json", genotype=KNOWN_GENOTYPES["DARTS_V1"], out="exports/cells/v1.json")
    assert path == run.resolve() / "exports" / "cells" / "v1.json"
    assert Genotype.from_dict(json.loads(path.read_text())) == KNOWN_GENOTYPES["DARTS_V1"]
    again = write_export(run, "darts", genotype=V2, out=str(run / "v2.txt"))  # absolute, inside: fine
    assert Genotype.parse(again.read_text()) == V2


def test_write_export_refuses_paths_outside_the_run(run, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (run / "link").symlink_to(outside, target_is_directory=True)
    (run / "file_link.json").symlink_to(outside / "x.json")
    for out in ("../escape.json", str(outside / "x.json"), "link/x.json", "file_link.json", "exports/../../x.json"):
        with pytest.raises(ValueError, match="outside the run directory"):
            write_export(run, "json", genotype=V2, out=out)
    with pytest.raises(ValueError, match="one of the run's own files"):
        write_export(run, "json", genotype=V2, out="config.json")
    assert os.listdir(outside) == []


def test_write_export_errors(run, tmp_path):
    with pytest.raises(ValueError, match="no genotype yet"):
        write_export(run, "json")
    with pytest.raises(ValueError, match="no recorded alphas"):
        write_export(run, "csv")
    with pytest.raises(ValueError, match="not one of"):
        write_export(run, "png", genotype=V2)
    with pytest.raises(ValueError, match="does not exist"):
        write_export(tmp_path / "missing", "json", genotype=V2)


def test_alphas_csv_carries_a_variants_own_state():
    """PC-DARTS's edge weights and GDAS's temperature and sampled ops go into the CSV beside the alphas."""
    record = {**_records(1)[0], "betas_normal": [0.1 * k for k in range(14)], "tau": 4.5,
              "normal_sampled": list(range(14))}
    rows = list(csv.DictReader(io.StringIO(alphas_csv([record]))))
    extra = {}
    for row in rows[2 * 14 * 8:]:
        extra.setdefault(row["cell"], []).append((row["edge"], float(row["alpha"])))
    assert extra["betas_normal"] == [(str(k), pytest.approx(0.1 * k)) for k in range(14)]
    assert extra["tau"] == [("", 4.5)]
    assert [v for _, v in extra["normal_sampled"]] == list(range(14))

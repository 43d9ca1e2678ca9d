"""The variant seam: every path from architecture parameters to op weights or a genotype asks the run's variant.

A test-only variant whose op weights are softmax(-alpha) (the ops DARTS would rank last come first) makes any
path that still computes a softmax of its own disagree with it: the live snapshot, derivation in the loop,
follow mode, Replay, the alphas CSV and resume are each checked against the variant.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pytest
import torch

from app.figures import heatmaps, replay
from engine import variants
from engine.nn.supernet import SearchNetwork
from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.export import alphas_csv, write_export
from engine.runs.follow import snapshot_from_dir
from engine.runs.hooks import Callback
from engine.runs.snapshot import SnapshotBox
from engine.search.build import build_network
from engine.search.loop import run_search
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, num_edges
from engine.space.cnn.genotype import Genotype, derive_genotype, genotype_from_weights


class Reversed(variants.Variant):
    name = "test_reversed"
    summary = "softmax of minus the alphas (tests only)"

    def weights(self, arch):
        return {kind: torch.softmax(-arch[kind], dim=-1) for kind in CELL_KINDS}


def _reversed(a: np.ndarray) -> np.ndarray:
    e = np.exp(-a - (-a).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def reversed_variant():
    variants.register(Reversed)
    yield Reversed.name
    variants.unregister(Reversed.name)


class _StopAt(Callback):
    def __init__(self, control: Control, step: int):
        self.control, self.step = control, step

    def on_step_end(self, event):
        if event.step == self.step:
            self.control.stop()


@pytest.mark.parametrize("name", variants.variant_names())
def test_every_variant_gives_weights_of_the_right_shape_and_the_same_numbers_on_both_paths(name):
    """The forward pass (torch, live parameters) and the readers (numpy records) get the same op weights."""
    net = SearchNetwork(4, 3, 3, variant=name, nodes=3)
    torch.nn.init.normal_(net.alphas_normal, std=1.0)
    live = net.op_weights()
    from_record = variants.op_weights(net.arch_numpy(), name)
    for kind in CELL_KINDS:
        assert live[kind].shape == (num_edges(3), len(PRIMITIVES))
        np.testing.assert_allclose(from_record[kind], live[kind], rtol=1e-5, atol=1e-6)
    assert variants.derive(net.arch_numpy(), name) == net.genotype()


def test_darts_weights_are_row_softmax():
    rec = {"step": 3, "epoch": 0, "normal": np.zeros((14, 8)).tolist(), "reduce": np.eye(14, 8).tolist()}
    w = variants.record_weights(rec, "darts")
    np.testing.assert_allclose(w["normal"], 1 / 8)
    np.testing.assert_allclose(w["reduce"].sum(1), 1.0)
    assert w["reduce"][0, 0] == pytest.approx(np.e / (np.e + 7))


def test_registry_refuses_bad_names_and_duplicates(reversed_variant):
    class Twin(Reversed):
        pass

    with pytest.raises(ValueError, match="already registered"):
        variants.register(Twin)
    with pytest.raises(ValueError, match="built-in"):
        variants.unregister("darts")
    assert reversed_variant in variants.variant_names() and variants.variant_names()[0] == "darts"


def test_a_second_variant_is_shown_derived_replayed_exported_and_resumed_its_own_way(tmp_path, reversed_variant, smoke):
    cfg = smoke.replace(variant=reversed_variant, a_lr=0.05, epochs=2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    control, box = Control(), SnapshotBox()
    assert run_search(cfg, run_dir, control=control, box=box, callbacks=[_StopAt(control, 3)]) == "stopped"

    # live snapshot: the variant's weights of the published alphas, and its genotype
    snap = box.get()
    for kind in CELL_KINDS:
        np.testing.assert_allclose(snap.weights[kind], _reversed(snap.alphas[kind].astype(np.float64)), atol=1e-6)
    mine = genotype_from_weights(snap.weights["normal"], snap.weights["reduce"])
    assert snap.genotype == mine
    assert mine != derive_genotype(snap.alphas["normal"], snap.alphas["reduce"])  # softmax would show another cell

    # derivation in the loop: each genotypes.jsonl row is the variant's cell of the alphas logged at that step
    records = {r["step"]: r for r in rundir.read_alphas(run_dir)}
    rows = rundir.read_genotypes(run_dir)
    assert rows
    for row in rows:
        rec = records[row["step"]]
        want = genotype_from_weights(_reversed(np.asarray(rec["normal"])), _reversed(np.asarray(rec["reduce"])))
        assert Genotype.from_dict(row["genotype"]) == want

    # follow mode (another process's view) and Replay: from the records, through the run's variant
    followed = snapshot_from_dir(run_dir)
    last = rundir.read_alphas(run_dir)[-1]
    for kind in CELL_KINDS:
        np.testing.assert_allclose(followed.weights[kind], _reversed(np.asarray(last[kind])), atol=1e-9)
        np.testing.assert_allclose(replay.record_weights(last, reversed_variant)[kind], followed.weights[kind])
    assert replay.record_genotype(last, reversed_variant) == genotype_from_weights(
        followed.weights["normal"], followed.weights["reduce"])

    # the alphas CSV: the weight column is the variant's (the command line's export reads the run's config)
    for text in (alphas_csv([last], reversed_variant), write_export(run_dir, "csv").read_text()):
        rows_csv = [r for r in csv.DictReader(io.StringIO(text)) if int(r["step"]) == last["step"]]
        got = np.array([float(r["weight"]) for r in rows_csv if r["cell"] == "normal"]).reshape(-1, len(PRIMITIVES))
        np.testing.assert_allclose(got, _reversed(np.asarray(last["normal"])), atol=1e-9)

    # resume: the "change since start" baseline is the variant's weights of the first record
    first = rundir.read_alphas(run_dir)[0]
    box2 = SnapshotBox()
    assert run_search(cfg, run_dir, box=box2, resume=True) == "finished"
    for kind in CELL_KINDS:
        np.testing.assert_allclose(box2.get().initial_weights[kind], _reversed(np.asarray(first[kind])), atol=1e-9)
    final = rundir.read_genotypes(run_dir)[-1]
    last = rundir.read_alphas(run_dir)[-1]
    assert final["kind"] == "final" and final["step"] == last["step"]
    assert Genotype.from_dict(final["genotype"]) == replay.record_genotype(last, reversed_variant)


@pytest.mark.parametrize("nodes", [1, 3, 5])
def test_every_path_follows_the_number_of_nodes(tmp_path, nodes, smoke):
    """A search with `nodes` intermediate nodes derives, exports, draws and builds cells of that many nodes."""
    from engine.nn.network import NetworkCIFAR, count_cifar_parameters, count_parameters
    from engine.runs.export import cell_dot, genotype_to

    cfg = smoke.replace(nodes=nodes, epochs=1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert run_search(cfg, run_dir) == "finished"
    final = Genotype.from_dict(rundir.read_genotypes(run_dir)[-1]["genotype"])
    for kind in CELL_KINDS:
        assert len(final.cell_nodes(kind)) == nodes and len(getattr(final, kind)) == 2 * nodes
        assert getattr(final, f"{kind}_concat") == tuple(range(2, 2 + nodes))
    assert Genotype.parse(genotype_to("darts", final)) == final
    assert Genotype.parse(genotype_to("json", final)) == final
    dot = cell_dot(final, "normal")
    assert sum(" -> " in line and "c_{k}" not in line.split(" -> ")[1] for line in dot.splitlines()) == 2 * nodes
    net = NetworkCIFAR(4, 4, 3, False, final)
    assert count_parameters(net) == count_cifar_parameters(4, 4, 3, final)
    logits, _ = net(torch.randn(2, 3, 8, 8))
    assert logits.shape == (2, 4)
    assert len(heatmaps.weights_frame(variants.record_weights(rundir.read_alphas(run_dir)[-1])["normal"])) == (
        num_edges(nodes))


def test_importing_the_engine_and_the_figures_does_not_load_torch():
    code = ("import sys, engine, engine.search.config, engine.space.cnn.genotype, engine.runs.export\n"
            "import engine.runs.catalog\n"
            "import app.figures.cells_dot, app.figures.collapse, app.figures.curves, app.figures.tables\n"
            "import app.figures.heatmaps, app.figures.labels, app.figures.replay, app.figures.variant_state\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
            "assert engine.SearchConfig is engine.search.config.SearchConfig and 'torch' not in sys.modules\n"
            "from engine import variants\n"  # the declarations, and validation built from them, need no torch
            "cfg = engine.search.config.from_preset('smoke', {'variant': 'pc_darts', 'pc_k': 2})\n"
            "labels = [o.label for n in variants.variant_names() for o in variants.variant_class(n).options]\n"
            "assert cfg.pc_k == 2 and 'K (partial channels)' in labels and variants.variant_class('gdas').lesson\n"
            "assert engine.search.config.config_errors('smoke', {'variant': 'gdas', 'gdas_tau_min': 20.0})\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
            "engine.Controller\n"  # the dashboard's controller: torch waits for its first job
            "assert 'torch' not in sys.modules\n"
            "engine.NetworkCIFAR\n"
            "assert 'torch' in sys.modules\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("order", ["first", "second"])
@pytest.mark.parametrize("name", variants.variant_names())
def test_every_variant_searches_derives_resumes_exactly_and_follows(tmp_path, name, order, smoke):
    """A few smoke steps of each variant: its genotypes are its own derivation of the logged parameters, a search
    stopped mid-epoch and resumed ends with the alphas (and extras) of an uninterrupted one, and follow mode shows
    the variant's weights. Second order where the variant takes it; a one-line refusal where it does not."""
    from engine.core.config import ConfigError
    from engine.nn.network import NetworkCIFAR
    from engine.runs.checkpoint import load_checkpoint

    if order == "second" and variants.second_order_refusal(name):
        with pytest.raises(ConfigError, match=f"first with variant={name}"):
            smoke.replace(variant=name, order=order)
        return
    cfg = smoke.replace(variant=name, order=order, a_lr=0.05)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir()
    cut.mkdir()
    assert run_search(cfg, whole) == "finished"
    control = Control()
    assert run_search(cfg, cut, control=control, callbacks=[_StopAt(control, 3)]) == "stopped"
    assert rundir.read_alphas(cut)[-1]["step"] == 3
    assert run_search(cfg, cut, resume=True) == "finished"

    rows, rows_cut = rundir.read_alphas(whole), rundir.read_alphas(cut)
    assert [r["step"] for r in rows] == [r["step"] for r in rows_cut]
    first, last = variants.arch_of(rows[0]), variants.arch_of(rows[-1])
    assert not np.allclose(first["normal"], last["normal"])  # the architecture moved
    for a, b in zip(rows, rows_cut, strict=True):
        for key, value in variants.arch_of(a).items():
            np.testing.assert_allclose(variants.arch_of(b)[key], value, atol=1e-6, rtol=0, err_msg=key)
    model, model_cut = (load_checkpoint(d / rundir.CHECKPOINT)["model"] for d in (whole, cut))
    net = build_network(cfg, 3, 4)
    for key in [*net._arch_attrs.values(), *net._state_attrs.values()]:
        torch.testing.assert_close(model_cut[key], model[key], atol=1e-6, rtol=0)
    for key in model:  # the weights too
        torch.testing.assert_close(model_cut[key], model[key], atol=1e-6, rtol=0)

    final = rundir.read_genotypes(cut)[-1]
    geno = Genotype.from_dict(final["genotype"])
    assert final["kind"] == "final" and geno == variants.record_genotype(rows_cut[-1], name)
    logits, _ = NetworkCIFAR(4, 4, 3, False, geno)(torch.randn(2, 3, 8, 8))
    assert logits.shape == (2, 4)

    # the alphas CSV of the run (its config names the variant) carries the variant's op weights
    text = write_export(cut, "csv").read_text()
    got = [float(r["weight"]) for r in csv.DictReader(io.StringIO(text))
           if int(r["step"]) == rows_cut[-1]["step"] and r["cell"] == "normal"]
    np.testing.assert_allclose(np.reshape(got, (-1, len(PRIMITIVES))),
                               variants.record_weights(rows_cut[-1], name)["normal"], atol=1e-9)

    followed = snapshot_from_dir(cut)
    assert set(followed.alphas) == set(variants.arch_of(rows_cut[-1]))
    for kind in CELL_KINDS:
        np.testing.assert_allclose(followed.weights[kind], variants.record_weights(rows_cut[-1], name)[kind])
    assert followed.genotype == geno

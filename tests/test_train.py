"""Training the network built from a genotype: config, genotype sources, the loop, exact resume, controls."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from engine.core.config import ConfigError, parse_overrides
from engine.jobs.controller import Controller, Registry
from engine.runs import catalog, rundir
from engine.runs.follow import Follower
from engine.runs.hooks import Callback
from engine.space.cnn.cell import PRIMITIVES
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype
from engine.train.config import TRAIN_PRESETS, TrainConfig, from_train_preset
from engine.train.loop import run_training
from engine.train.resume import load_train_checkpoint
from engine.train.source import GenotypeSourceError, random_genotype, resolve_genotype
from engine.train.step import auxiliary_fits

SMOKE = TRAIN_PRESETS["train-smoke"]
V2 = KNOWN_GENOTYPES["DARTS_V2"]


def test_presets_validate_and_the_paper_recipe_is_the_default():
    paper = TRAIN_PRESETS["darts-cifar10-eval"]
    assert (paper.init_channels, paper.layers, paper.epochs, paper.batch_size) == (36, 20, 600, 96)
    assert (paper.lr, paper.lr_min, paper.momentum, paper.weight_decay, paper.grad_clip) == (0.025, 0, 0.9, 3e-4, 5)
    assert (paper.cutout, paper.drop_path_prob, paper.auxiliary_weight) == (16, 0.2, 0.4)
    assert TrainConfig.from_dict(json.loads(SMOKE.to_json())) == SMOKE
    with pytest.raises(ConfigError, match="init_channels"):
        from_train_preset("train-smoke", {"init_channels": 5})
    with pytest.raises(ConfigError, match="unknown field"):
        parse_overrides(["epoch=3"], TrainConfig)
    parsed = parse_overrides(["subset=none", "flip=off", "lr=0.1"], TrainConfig)
    assert parsed == {"subset": None, "flip": False, "lr": 0.1}


def test_random_cells_are_uniform_draws_from_the_space_and_reproducible():
    g = random_genotype(3)
    assert g == random_genotype(3) and g != random_genotype(4)
    for cell in ("normal", "reduce"):
        for i, node in enumerate(g.cell_nodes(cell)):
            inputs = [j for _, j in node]
            assert len(set(inputs)) == 2 and all(0 <= j <= i + 1 for j in inputs)
            assert all(op in PRIMITIVES and op != "none" for op, _ in node)
    ops = {op for s in range(40) for cell in ("normal", "reduce") for op, _ in getattr(random_genotype(s), cell)}
    assert ops == set(PRIMITIVES) - {"none"}


def test_genotype_sources(tmp_path):
    assert resolve_genotype("DARTS_V2") == (V2, {"kind": "known", "name": "DARTS_V2", "label": "DARTS_V2"})
    g, src = resolve_genotype("random:7")
    assert g == random_genotype(7) and src["label"] == "random:7"
    assert resolve_genotype("random")[1]["kind"] == "random"
    (tmp_path / "g.txt").write_text(V2.to_darts())
    assert resolve_genotype(str(tmp_path / "g.txt"))[0] == V2
    run = tmp_path / "search"
    run.mkdir()
    (run / rundir.CONFIG).write_text(json.dumps({"kind": "search", "config": {}}))
    with pytest.raises(GenotypeSourceError, match="no genotype yet"):
        resolve_genotype(str(run))
    rows = [{"step": 5, "epoch": 0, "kind": "epoch_end", "genotype": random_genotype(1).to_dict()},
            {"step": 10, "epoch": 1, "kind": "final", "genotype": V2.to_dict()}]
    (run / rundir.GENOTYPES).write_text("".join(json.dumps(r) + "\n" for r in rows))
    g, src = resolve_genotype(str(run))
    assert g == V2 and src["kind"] == "search" and src["step"] == 10
    assert resolve_genotype(f"{run}@5")[0] == random_genotype(1)
    with pytest.raises(GenotypeSourceError, match="no genotype recorded at step 6 .*5, 10"):
        resolve_genotype(f"{run}@6")


@pytest.mark.parametrize("spec,needle", [
    ("NOT_A_CELL", "neither a known genotype"), ("random:x", "random:SEED"),
])
def test_bad_genotype_specs(spec, needle):
    with pytest.raises(GenotypeSourceError, match=needle):
        resolve_genotype(spec)


def test_auxiliary_head_fits_only_about_32x32():
    assert auxiliary_fits(32) and not auxiliary_fits(28) and not auxiliary_fits(16)


def _run(tmp_path, name, config=SMOKE, callbacks=None, resume=False, genotype=V2):
    run = tmp_path / name
    run.mkdir(exist_ok=True)
    return run, run_training(config, genotype, run, source={"kind": "known", "label": "DARTS_V2"},
                             callbacks=callbacks, resume=resume)


def test_a_training_writes_a_run_directory_like_a_search(tmp_path):
    run, state = _run(tmp_path, "a")
    assert state == "finished"
    record = rundir.read_config(run)
    assert record["kind"] == "train" and Genotype.from_dict(record["genotype"]) == V2
    assert record["source"]["kind"] == "known" and len(record["dataset"]["fingerprint"]) == 64
    rows = rundir.read_metrics(run)
    assert [r["step"] for r in rows] == list(range(1, 9))
    ends = [r for r in rows if "test_acc" in r]
    assert [r["step"] for r in ends] == [4, 8]
    assert {"step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"} <= set(ends[0])
    assert ends[1]["lr"] < ends[0]["lr"]  # cosine, stepped once an epoch
    ckpt = torch.load(run / rundir.CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 8 and ckpt["epoch"] == 2
    info = catalog.list_runs(tmp_path)[0]
    assert info.kind == "train" and info.state == "finished" and info.genotype == V2 and info.test_acc is not None
    snap = Follower(run).snapshot()
    assert snap.state == "finished" and snap.step == 8 and snap.genotype == V2 and snap.metrics[-1]["step"] == 8


class _StopAt(Callback):
    def __init__(self, control_of, step):
        self.control_of, self.step = control_of, step

    def on_step_end(self, event):
        if event.step == self.step:
            self.control_of().stop()


def test_stop_and_resume_matches_an_uninterrupted_run(tmp_path):
    """Drop path (torch RNG), cutout/crop/flip (seeded by epoch and batch), SGD momentum and the schedule all
    continue exactly: a run stopped mid-epoch and resumed ends with the same weights to 1e-6."""
    cfg = SMOKE.replace(epochs=3)
    a, _ = _run(tmp_path, "a", cfg)
    from engine.runs.control import Control

    run = tmp_path / "b"
    run.mkdir()
    control = Control()
    state = run_training(cfg, V2, run, control=control, callbacks=[_StopAt(lambda: control, 6)])
    assert state == "stopped" and load_train_checkpoint(run / rundir.CHECKPOINT)["step"] == 6
    assert run_training(cfg, V2, run, resume=True) == "finished"
    wa = load_train_checkpoint(a / rundir.CHECKPOINT)["model"]
    wb = load_train_checkpoint(run / rundir.CHECKPOINT)["model"]
    for k in wa:
        np.testing.assert_allclose(wb[k].double().numpy(), wa[k].double().numpy(), atol=1e-6, rtol=0, err_msg=k)
    ma, mb = rundir.read_metrics(a), rundir.read_metrics(run)
    assert [m["step"] for m in mb] == [m["step"] for m in ma]
    for x, y in zip(ma, mb, strict=True):
        assert y["train_loss"] == pytest.approx(x["train_loss"], abs=1e-6)
        assert y.get("test_acc") == x.get("test_acc")


def test_resume_refuses_another_recipe_and_leaves_the_run_as_it_was(tmp_path):
    from engine.runs.snapshot import SnapshotBox

    run, _ = _run(tmp_path, "a", SMOKE.replace(epochs=1))
    box = SnapshotBox()
    state = run_training(SMOKE.replace(epochs=1, lr=0.5), V2, run, resume=True, box=box)
    assert state == "failed" and "lr=0.5" in box.get().error
    assert rundir.read_status(run)["state"] == "finished"


def test_non_finite_loss_rolls_back_and_pauses(tmp_path):
    cfg = SMOKE.replace(lr=10.0, grad_clip=1e9, epochs=3, drop_path_prob=0.0)
    from engine.runs.control import Control

    control = Control()
    done = []
    run = tmp_path / "nan"
    run.mkdir()

    class StopWhenPaused(Callback):
        def on_state(self, status):
            if status["state"] == "paused":
                done.append(status["message"])
                control.stop()

    state = run_training(cfg, V2, run, control=control, callbacks=[StopWhenPaused()])
    if not done:
        pytest.skip("lr=10 did not diverge on this machine's arithmetic")
    assert state == "stopped" and "non-finite loss" in done[0] and "lr=" in done[0]


def test_controller_runs_a_training_with_pause_step_and_stop(tmp_path):
    registry = Registry(tmp_path)
    job = registry.start(SMOKE.replace(epochs=50), genotype=V2, source={"label": "DARTS_V2"})
    assert job.kind == "train"
    job.pause()
    paused = threading.Event()
    for _ in range(600):
        if job.snapshot().state == "paused":
            paused.set()
            break
        threading.Event().wait(0.05)
    assert paused.is_set()
    step = job.snapshot().step
    assert job.step_once()
    for _ in range(600):
        if job.snapshot().step == step + 1:
            break
        threading.Event().wait(0.05)
    assert job.snapshot().step == step + 1
    job.derive_now()  # N/A for a training: nothing happens
    job.stop()
    assert job.join(60)
    assert job.snapshot().state == "stopped"
    resumed = registry.start(resume=job.run_dir, overrides={"log_every": 2})
    resumed.stop()
    assert resumed.join(60) and resumed.snapshot().state in ("stopped", "finished")
    assert isinstance(resumed, Controller) and resumed.kind == "train"


def test_a_write_failing_near_the_end_pauses_and_resume_writes_every_line(tmp_path):
    """metrics.jsonl becomes a dangling link (a real OS error) one step before the end: the training pauses with the
    reason, mid-run or after its last step (whenever the writer thread meets the error), never ends `failed` or
    `finished` with lines missing; fixed and resumed, it finishes with every epoch-end row on disk once."""
    from tests.blocking import block, unblock

    run = tmp_path / "run"
    metrics, asides = run / rundir.METRICS, []

    class Sabotage(Callback):
        def on_step_end(self, event):
            if event.step == event.status["total_steps"] - 1 and not metrics.is_symlink():
                asides.extend(block(metrics))

    run.mkdir()
    job = Controller(SMOKE.replace(epochs=2), run, genotype=V2, callbacks=[Sabotage()]).start()
    try:
        for _ in range(2400):
            if job.snapshot().state in ("paused", "finished", "failed"):
                break
            threading.Event().wait(0.05)
        snap = job.snapshot()
        assert snap.state == "paused" and "cannot write" in snap.message, (snap.state, snap.error)
        assert snap.step >= snap.total_steps - 1
        unblock(metrics, asides)
        job.resume()
        assert job.join(120)
        assert job.snapshot().state == "finished", job.snapshot().error
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        assert rows[-1]["step"] == snap.total_steps and len({r["step"] for r in rows}) == len(rows)
    finally:
        job.stop()
        job.join(60)

"""The search loop on the tiny `smoke` preset: hooks, stop/resume exactness, NaN and failure handling."""

import json

import numpy as np
import pytest
import torch

from engine.runs import rundir
from engine.runs.checkpoint import load_checkpoint
from engine.runs.control import Control
from engine.runs.hooks import Callback
from engine.runs.snapshot import SnapshotBox
from engine.search.loop import run_search
from engine.space.cnn.genotype import Genotype, derive_genotype


class Recorder(Callback):
    def __init__(self, stop_at=None, control=None):
        self.events, self.stop_at, self.control = [], stop_at, control

    def on_run_start(self, info):
        self.events.append("run_start")

    def on_step_end(self, event):
        self.events.append(("step", event.step))
        if self.stop_at is not None and event.step == self.stop_at:
            self.control.stop()

    def on_epoch_end(self, event, genotype_row):
        self.events.append(("epoch", event.epoch))

    def on_exception(self, exc, tb):
        self.events.append("exception")

    def on_run_end(self, status):
        self.events.append(("end", status["state"]))


def test_finished_run_writes_every_file_and_the_final_genotype(smoke, search_run):
    cfg = smoke
    rec = Recorder()
    box = SnapshotBox()
    run_dir, state = search_run("a", cfg, callbacks=[rec], box=box)
    assert state == "finished"
    spe = 2  # smoke: 32 images -> 16/16 split, batch 8
    steps = [("step", s) for s in range(1, cfg.epochs * spe + 1)]
    assert rec.events[0] == "run_start" and rec.events[-1] == ("end", "finished")
    body = [e for e in rec.events[1:-1] if e != ("step", 0)]   # step 0: the initial checkpoint
    assert [e for e in body if e[0] == "step"] == steps
    assert body.index(("epoch", 0)) == body.index(("step", spe)) + 1
    for name in ("config.json", "status.json", "metrics.jsonl", "alphas.jsonl", "genotypes.jsonl", "checkpoint.pt"):
        assert (run_dir / name).exists(), name
    record = rundir.read_config(run_dir)
    assert record["config"] == cfg.to_dict() and record["torch"] == torch.__version__
    assert record["dataset"]["fingerprint"]
    assert rundir.read_status(run_dir)["state"] == "finished"
    metrics = rundir.read_metrics(run_dir)
    assert [m["step"] for m in metrics] == [s for _, s in steps]
    alphas = rundir.read_alphas(run_dir)
    final = rundir.read_genotypes(run_dir)[-1]
    assert final["kind"] == "final" and final["step"] == cfg.epochs * spe
    # the final genotype is the one of the alphas after the last step (not the start of the last epoch)
    last = alphas[-1]
    assert Genotype.from_dict(final["genotype"]) == derive_genotype(np.array(last["normal"]), np.array(last["reduce"]))
    snap = box.get()
    assert snap.state == "finished" and snap.step == cfg.epochs * spe and snap.genotype == Genotype.from_dict(
        final["genotype"])
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    assert ckpt["step"] == cfg.epochs * spe and "alphas_normal" in ckpt["model"]


def test_stop_and_resume_matches_an_uninterrupted_run(smoke, search_run):
    cfg = smoke.replace(epochs=3)
    full_dir, state = search_run("full", cfg)
    assert state == "finished"
    control = Control()
    part_dir, state = search_run("part", cfg, control=control, callbacks=[Recorder(stop_at=3, control=control)])
    assert state == "stopped"
    assert rundir.read_status(part_dir)["state"] == "stopped"
    stopped_row = rundir.read_genotypes(part_dir)[-1]            # the genotype after the last step, on stop
    assert (stopped_row["kind"], stopped_row["step"]) == ("stopped", 3)
    assert load_checkpoint(part_dir / "checkpoint.pt")["step"] == 3   # stop finished step 3, then checkpointed
    state = run_search(cfg, part_dir, resume=True)
    assert state == "finished"
    a = rundir.read_alphas(full_dir)
    b = rundir.read_alphas(part_dir)
    assert [r["step"] for r in a] == [r["step"] for r in b]            # no step lost, none repeated
    for cell in ("normal", "reduce"):
        np.testing.assert_allclose(np.array(b[-1][cell]), np.array(a[-1][cell]), atol=1e-6, rtol=0)
    ma, mb = rundir.read_metrics(full_dir), rundir.read_metrics(part_dir)
    assert ma[-1]["train_loss"] == pytest.approx(mb[-1]["train_loss"], abs=1e-6)
    assert rundir.read_config(part_dir)["resumed"][0]["step"] == 3


def test_resume_refuses_to_change_what_is_searched(smoke, search_run):
    cfg = smoke
    control = Control()
    run_dir, _ = search_run("r", cfg, control=control, callbacks=[Recorder(stop_at=1, control=control)])
    state = run_search(cfg.replace(init_channels=8), run_dir, resume=True, box=(box := SnapshotBox()))
    assert state == "failed" and "init_channels" in box.get().error and "resumed" in box.get().error
    state = run_search(cfg.replace(w_lr=0.01), run_dir, resume=True)   # a learning rate may change
    assert state == "finished"
    assert rundir.read_config(run_dir)["config"]["w_lr"] == 0.01


def test_non_finite_loss_rolls_back_and_pauses_with_a_message(monkeypatch, smoke, search_run):
    from engine.search import data as data_mod

    real = data_mod.SearchData.batches

    def poisoned(self, part, epoch, batch_size, start=0, **kw):
        for i, (x, y) in enumerate(real(self, part, epoch, batch_size, start, **kw), start=start):
            if part == "train" and epoch == 0 and i == 1:
                x = torch.full_like(x, float("nan"))
            yield x, y

    monkeypatch.setattr(data_mod.SearchData, "batches", poisoned)
    control = Control()
    box = SnapshotBox()
    seen = []

    class Watch(Callback):
        def on_state(self, status):
            seen.append((status["state"], status["message"]))
            if status["state"] == "paused":
                control.stop()

    run_dir, state = search_run("nan", smoke, control=control, callbacks=[Watch()], box=box)
    paused = [m for s, m in seen if s == "paused"]
    assert paused and "non-finite loss at step 2" in paused[0] and "w_lr" in paused[0]
    assert "rolled back to the checkpoint at step 0" in paused[0]
    assert state == "stopped"
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    # the rolled-back step is gone from the logs, so a resumed run logs it once
    assert all(m["step"] <= ckpt["step"] for m in rundir.read_metrics(run_dir))
    assert box.get().genotype == derive_genotype(box.get().alphas["normal"], box.get().alphas["reduce"])


def test_an_exception_ends_the_run_failed_with_the_traceback(monkeypatch, smoke, search_run):
    from engine.search import architect

    calls = {"n": 0}
    real = architect.Architect.step

    def broken(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom in the arch step")
        return real(self, *a, **kw)

    monkeypatch.setattr(architect.Architect, "step", broken)
    rec = Recorder()
    box = SnapshotBox()
    run_dir, state = search_run("boom", smoke, callbacks=[rec], box=box)
    assert state == "failed"
    status = rundir.read_status(run_dir)
    assert status["state"] == "failed" and "boom in the arch step" in status["error"]
    assert "Traceback" in status["traceback"] and status["error_kind"] == "RuntimeError"
    assert box.get().state == "failed" and "boom" in box.get().error
    assert rec.events[-2:] == ["exception", ("end", "failed")]


def test_a_missing_dataset_fails_clearly_and_leaves_no_empty_run(tmp_path, smoke, search_run):
    cfg = smoke.replace(dataset="cifar10", data_root=str(tmp_path / "nowhere"), image_size=None)
    box = SnapshotBox()
    run_dir, state = search_run("nodata", cfg, box=box)
    assert state == "failed"
    assert "nowhere" in box.get().error and "download" in box.get().error
    assert not run_dir.exists()


def test_amp_runs_on_the_cpu(smoke, search_run):
    run_dir, state = search_run("amp", smoke.replace(amp=True, epochs=1))
    assert state == "finished"
    assert all(np.isfinite(m["train_loss"]) for m in rundir.read_metrics(run_dir))
    assert json.loads((run_dir / "config.json").read_text())["config"]["amp"] is True


def test_rows_written_at_an_epoch_boundary_name_the_epoch_that_ended(smoke, search_run):
    """A Derive and a Stop taken as epoch 0 ends: their rows sit at epoch 0's last step and say epoch 0, as its
    epoch_end row does (the loop's position has already moved on to epoch 1)."""

    class DeriveAndStopAtEpochEnd(Callback):
        def __init__(self, control):
            self.control = control

        def on_epoch_end(self, event, genotype_row):
            self.control.derive_now()
            self.control.stop()

    cfg = smoke.replace(epochs=3)
    control = Control()
    run_dir, state = search_run("edge", cfg, control=control, callbacks=[DeriveAndStopAtEpochEnd(control)])
    assert state == "stopped"
    rows = rundir.read_genotypes(run_dir)
    assert [(r["kind"], r["step"], r["epoch"]) for r in rows] == [("epoch_end", 2, 0), ("derive", 2, 0),
                                                                  ("stopped", 2, 0)]

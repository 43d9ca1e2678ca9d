"""The run lifecycle both jobs share (engine/runs/lifecycle*.py), on a search (`smoke`) and a training (`train-smoke`):
states and hook order, the error funnel, a pause on a failed write and its resume, the shared running means."""

from __future__ import annotations

import math

import pytest

from engine.jobs.controller import Controller
from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.hooks import Callback, CallbackList, RunDirWriter
from engine.runs.snapshot import SnapshotBox
from engine.search.loop import _Loop, run_search
from engine.search.step import EpochMeters, StepOutcome
from engine.space.cnn.genotype import KNOWN_GENOTYPES
from engine.train.loop import _TrainLoop, run_training
from engine.train.step import TrainMeters, TrainOutcome
from tests.blocking import block, unblock
from tests.waiting import wait_for

V2 = KNOWN_GENOTYPES["DARTS_V2"]
JOBS = ("search", "train")


@pytest.fixture
def job_config(smoke, train_smoke):
    """`jobjob_config(kind, epochs)`: the `smoke` search or the `train-smoke` training, with `epochs` epochs."""
    return lambda kind, epochs: (smoke if kind == "search" else train_smoke).replace(epochs=epochs)


def _run(kind: str, run_dir, config, **kw) -> str:
    run_dir.mkdir()
    if kind == "search":
        return run_search(config, run_dir, **kw)
    return run_training(config, V2, run_dir, source={"label": "DARTS_V2"}, **kw)


class Recorder(Callback):
    """Every hook as one list; on_state drives the control like a person would (step once, then resume)."""

    def __init__(self, control: Control | None = None, stop_at: int | None = None):
        self.events: list = []
        self.control, self.stop_at, self.pauses = control, stop_at, 0

    def on_run_start(self, info):
        self.events.append("run_start")

    def on_step_end(self, event):
        self.events.append(("step", event.step, event.checkpoint is not None))
        if event.step == self.stop_at and event.checkpoint is None:
            self.control.stop()

    def on_epoch_end(self, event, genotype_row):
        self.events.append(("epoch", event.epoch))

    def on_state(self, status):
        self.events.append(("state", status["state"]))
        if status["state"] == "paused":
            self.pauses += 1
            if self.pauses == 1:
                self.control.step_once()
            else:
                self.control.resume()

    def on_exception(self, exc, tb):
        self.events.append("exception")

    def on_run_end(self, status):
        self.events.append(("end", status["state"]))


@pytest.mark.parametrize("kind", JOBS)
def test_paused_from_the_start_steps_once_then_resumes_to_the_end_in_hook_order(tmp_path, kind, job_config):
    control = Control()
    control.pause()
    rec = Recorder(control)
    state = _run(kind, tmp_path / "run", job_config(kind, 1), control=control, callbacks=[rec])
    assert state == "finished"
    total = rundir.read_status(tmp_path / "run")["total_steps"]
    steps = [("step", s, s == total) for s in range(2, total + 1)]  # the epoch's end is checkpointed
    epoch_end = [("epoch", 0)] if kind == "search" else []  # a training has no genotype row per epoch
    assert rec.events == ["run_start", ("step", 0, True), ("state", "running"), ("state", "paused"),
                          ("state", "running"), ("step", 1, False), ("state", "paused"), ("state", "running"),
                          *steps, *epoch_end, ("end", "finished")]


@pytest.mark.parametrize("kind", JOBS)
def test_a_stop_checkpoints_where_it_stopped_and_ends_stopped(tmp_path, kind, job_config):
    control = Control()
    rec = Recorder(control, stop_at=1)
    assert _run(kind, tmp_path / "run", job_config(kind, 2), control=control, callbacks=[rec]) == "stopped"
    assert rec.events == ["run_start", ("step", 0, True), ("state", "running"), ("step", 1, False),
                          ("state", "stopping"), ("step", 1, True), ("end", "stopped")]
    status = rundir.read_status(tmp_path / "run")
    assert (status["state"], status["step"], status["error"]) == ("stopped", 1, None)
    from engine.version import __version__, git_commit

    record = rundir.read_config(tmp_path / "run")  # which code wrote the run: version, and commit in a clone
    assert record["dartboard"] == {"version": __version__, "git_commit": git_commit()}


@pytest.mark.parametrize("kind", JOBS)
@pytest.mark.parametrize("error,needle", [(RuntimeError("boom"), "RuntimeError: boom"),
                                          (RuntimeError("CUDA out of memory. Tried to allocate"), "out of memory: ")])
def test_fail_writes_failed_with_the_error_and_the_traceback(tmp_path, kind, error, needle, job_config):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rec, box = Recorder(), SnapshotBox()
    writer = RunDirWriter(run_dir)
    hooks = CallbackList([writer, rec])
    if kind == "search":
        loop = _Loop(job_config(kind, 1), run_dir, Control(), hooks, writer, box)
    else:
        loop = _TrainLoop(job_config(kind, 1), run_dir, Control(), hooks, writer, box, genotype=V2, source={})
    loop.setup(resume=False)
    try:
        raise error
    except RuntimeError as e:
        loop.fail(e)
    writer.close()
    status = rundir.read_status(run_dir)
    assert status["state"] == "failed" and status["error"].startswith(needle)
    assert status["error_kind"] == "RuntimeError" and str(error) in status["traceback"]
    assert box.get().state == "failed" and box.get().error == status["error"]
    assert rec.events[-2:] == ["exception", ("end", "failed")]
    if needle.startswith("out of memory"):  # each job names what to lower
        assert ("order=first" if kind == "search" else "amp=true") in status["error"]


@pytest.mark.parametrize("kind", JOBS)
def test_a_failed_write_pauses_and_resume_writes_every_line_once(tmp_path, kind, job_config):
    """metrics.jsonl becomes a dangling link after step 2 (a real OS error): the run pauses with the reason and takes
    no more steps; fixed and resumed, it finishes with every step's row on disk once, in order."""
    run_dir = tmp_path / "run"
    metrics, asides = run_dir / rundir.METRICS, []

    class Sabotage(Callback):
        def on_step_end(self, event):
            if event.step == 2 and not metrics.is_symlink():
                asides.extend(block(metrics))

    run_dir.mkdir()
    extra = {} if kind == "search" else {"genotype": V2, "source": {}}
    job = Controller(job_config(kind, 3), run_dir, callbacks=[Sabotage()], **extra).start()
    try:
        wait_for(lambda: job.snapshot().state in ("paused", "finished", "failed"), timeout=120)
        snap = job.snapshot()
        assert snap.state == "paused" and "cannot write" in snap.message, (snap.state, snap.error)
        assert job.snapshot().step == snap.step  # paused: no more steps
        unblock(metrics, asides)
        job.resume()
        wait_for(lambda: not job.alive, timeout=120)
        assert job.snapshot().state == "finished", job.snapshot().error
        assert [r["step"] for r in rundir.read_metrics(run_dir)] == list(range(1, snap.total_steps + 1))
    finally:
        job.stop()
        job.join(60)


def test_both_jobs_running_means_restart_from_their_checkpointed_sums():
    search = EpochMeters()
    for loss in (1.0, 3.0):
        search.update(StepOutcome(loss, 2 * loss, 0.5, None, 0.1, finite=True))
    assert search.means() == {"train_loss": 2.0, "train_acc": 0.5, "valid_loss": 4.0, "valid_acc": 0.0}
    assert EpochMeters(dict(search.sums)).means() == search.means()
    train = TrainMeters()
    train.update(TrainOutcome(1.0, correct=3, n=4, lr=0.1, finite=True))
    train.update(TrainOutcome(4.0, correct=0, n=2, lr=0.1, finite=True))  # weighted by samples, not by steps
    assert train.means() == {"train_loss": 2.0, "train_acc": 0.5}
    assert TrainMeters(dict(train.sums)).means() == train.means()
    assert math.isnan(TrainMeters({"loss": math.inf, "correct": 0.0, "n": 1.0}).means()["train_loss"])

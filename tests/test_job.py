"""Controller threads, the registry and following a run from its files."""

import threading
import time

import numpy as np
import pytest

from engine.jobs.controller import JobError, Registry
from engine.runs import rundir
from engine.runs.follow import Follower
from engine.space.cnn.genotype import derive_genotype
from tests.waiting import wait_for


@pytest.fixture
def registry(runs_dir):
    reg = Registry(runs_dir)
    yield reg
    reg.shutdown()


def test_pause_step_resume_stop_from_another_thread(registry, smoke):
    job = registry.start(smoke.replace(epochs=200))
    wait_for(lambda: job.snapshot().step >= 2)
    job.pause()
    job.pause()                                            # idempotent
    wait_for(lambda: job.snapshot().state == "paused")
    s0 = job.snapshot().step
    time.sleep(0.3)
    assert job.snapshot().step == s0                       # paused: the counter stands still
    assert job.step_once() is True
    wait_for(lambda: job.snapshot().step == s0 + 1)
    time.sleep(0.3)
    assert job.snapshot().step == s0 + 1 and job.snapshot().state == "paused"
    job.derive_now()
    wait_for(lambda: any(r["kind"] == "derive" for r in rundir.read_genotypes(job.run_dir)))
    job.resume()
    wait_for(lambda: job.snapshot().step > s0 + 3)
    with pytest.raises(JobError, match="already running"):
        registry.start(smoke)
    job.stop()
    job.stop()
    assert job.join(30)
    assert job.snapshot().state == "stopped"
    assert rundir.read_status(job.run_dir)["state"] == "stopped"
    assert len([t for t in threading.enumerate() if t.name.startswith("dartboard-search")]) == 0


def test_stop_while_paused_ends_stopped(registry, smoke):
    job = registry.start(smoke.replace(epochs=200))
    job.pause()
    wait_for(lambda: job.snapshot().state == "paused")
    job.stop()
    assert job.join(30) and job.snapshot().state == "stopped"


def test_snapshots_are_consistent_under_concurrent_readers(registry, smoke):
    job = registry.start(smoke.replace(epochs=15))
    problems, reads = [], [0]

    def reader():
        while job.alive:
            time.sleep(0.002)  # a tight spin would only starve the search thread of the GIL
            s = job.snapshot()
            reads[0] += 1
            if not s.weights:
                continue
            for cell in ("normal", "reduce"):
                a = s.alphas[cell].astype(np.float64)
                soft = np.exp(a - a.max(1, keepdims=True))
                soft /= soft.sum(1, keepdims=True)
                if not np.allclose(soft, s.weights[cell], atol=1e-5):
                    problems.append(f"weights are not softmax(alphas) at step {s.step}")
            if s.genotype is not None and s.genotype != derive_genotype(s.alphas["normal"], s.alphas["reduce"]):
                problems.append(f"genotype does not match alphas at step {s.step}")
            if s.metrics and s.metrics[-1]["step"] != s.step:
                problems.append(f"metrics end at {s.metrics[-1]['step']} but step is {s.step}")
            if not 0 <= s.progress <= 1:
                problems.append("progress out of range")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    assert job.join(120)
    for t in threads:
        t.join(5)
    assert problems == []
    assert reads[0] > 100 and job.snapshot().state == "finished"


def test_follower_reads_a_run_and_controls_it_through_control_json(registry, runs_dir, smoke):
    job = registry.start(smoke.replace(epochs=200))
    wait_for(lambda: (job.run_dir / "config.json").exists())
    follower = Follower(job.run_dir, min_interval_s=0.0)
    wait_for(lambda: follower.snapshot().step >= 2)
    assert follower.snapshot().run_id == job.run_id and follower.alive
    follower.pause()                                       # goes through control.json, polled by the loop
    wait_for(lambda: job.snapshot().state == "paused")
    wait_for(lambda: follower.snapshot().state == "paused")
    follower.stop()
    assert job.join(30)
    wait_for(lambda: follower.snapshot().state == "stopped")
    assert follower.snapshot().genotype is not None
    assert registry.follow(job.run_dir).snapshot().state == "stopped"


def test_a_failed_run_keeps_the_process_up_and_the_registry_usable(registry, tmp_path, smoke):
    job = registry.start(smoke.replace(dataset="imagefolder", data_root=str(tmp_path / "none"),
                                                      image_size=8))
    assert job.join(30)
    assert job.snapshot().state == "failed" and "none" in job.snapshot().error
    ok = registry.start(smoke.replace(epochs=1))
    assert ok.join(60) and ok.snapshot().state == "finished"


def test_resume_a_stopped_run_from_the_registry(registry, smoke):
    job = registry.start(smoke.replace(epochs=3))
    wait_for(lambda: job.snapshot().step >= 1)
    job.stop()
    assert job.join(30)
    stopped_at = job.snapshot().step
    again = registry.start(resume=job.run_dir)
    assert again.run_dir == job.run_dir and again.join(60)
    assert again.snapshot().state == "finished" and again.snapshot().step == 6 > stopped_at


def test_a_search_engine_that_cannot_load_ends_the_job_failed_with_the_reason(tmp_path, smoke, monkeypatch):
    """The loop is imported in the job's thread (the dashboard's pages load without torch): an import that fails
    there (a broken install) ends the job failed with the reason, not queued forever."""
    import sys

    from engine.jobs.controller import Controller

    monkeypatch.setitem(sys.modules, "engine.search.loop", None)  # the import system's "cannot import" marker
    job = Controller(smoke, tmp_path / "run").start()
    assert job.join(30)
    snap = job.snapshot()
    assert snap.state == "failed" and "cannot load the search engine" in snap.error, snap

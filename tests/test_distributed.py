"""One search across two processes (torchrun, gloo, CPU): one run directory written by rank 0, every step
once, and gradients averaged exactly over the ranks.

With BatchNorm in train mode each rank normalises its own half of the global batch, so a two-process
step is not the one-process step on the whole batch: it is the mean of the steps on the two halves. That is
what must hold exactly, and what the first test checks against a computation done here in one process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.runs import rundir
from engine.search.architect import Architect
from engine.search.build import build_network
from engine.search.data import load_search_data

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(*args: str, runs_dir: Path | None = None) -> subprocess.CompletedProcess:
    where = ["--runs-dir", str(runs_dir)] if runs_dir is not None else []
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "engine", *args, *where], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("ddp")
    done = _torchrun("search", "--preset", "smoke", "--set", "epochs=1", runs_dir=runs_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return runs_dir


def test_one_run_directory_written_once(two_rank_run):
    runs = [p for p in two_rank_run.iterdir() if p.is_dir()]
    assert len(runs) == 1
    run = runs[0]
    status = rundir.read_status(run)
    assert status["state"] == "finished" and status["world_size"] == 2 and status["step"] == 2
    assert [m["step"] for m in rundir.read_metrics(run)] == [1, 2]
    assert [a["step"] for a in rundir.read_alphas(run)] == [1, 2]
    assert len(rundir.read_genotypes(run)) == 1


def test_the_first_step_is_the_mean_of_the_steps_on_each_ranks_half(two_rank_run, smoke):
    cfg = smoke.replace(epochs=1)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    data = load_search_data(cfg)
    model = build_network(cfg, data.in_channels, data.num_classes)
    run = next(p for p in two_rank_run.iterdir() if p.is_dir())
    first = rundir.read_alphas(run)[0]
    w_opt = torch.optim.SGD(model.weight_parameters(), cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay)
    architect = Architect(model, cfg.a_lr, cfg.a_betas, cfg.a_weight_decay, order="first")
    halves = []
    for rank in (0, 1):
        xv, yv = next(data.batches("valid", 0, cfg.batch_size, shard=(rank, 2)))
        grads, _ = architect.gradient(xv, yv, xv, yv, cfg.w_lr, w_opt)
        halves.append(grads)
    whole, _ = architect.gradient(*next(data.batches("valid", 0, cfg.batch_size)) * 2, cfg.w_lr, w_opt)
    for alpha, a, b in zip(model.arch_parameters(), *halves, strict=True):
        alpha.grad = (a + b) / 2
    architect.optimizer.step()
    for kind, alpha in (("normal", model.alphas_normal), ("reduce", model.alphas_reduce)):
        np.testing.assert_allclose(np.asarray(first[kind]), alpha.detach().numpy(), atol=1e-5, rtol=0)
    # and it is not the one-process step on the whole batch (BatchNorm sees halves): the check above can fail
    mean = [(a + b) / 2 for a, b in zip(*halves, strict=True)]
    assert max(float((m - w).abs().max()) for m, w in zip(mean, whole, strict=True)) > 1e-6


def test_a_resume_with_another_number_of_processes_is_refused(two_rank_run, cli):
    run = next(p for p in two_rank_run.iterdir() if p.is_dir())
    before = json.dumps(rundir.read_status(run))
    done = cli("search", "--resume", str(run), check=False)
    assert done.returncode == 2 and "world_size" in done.stderr and "--nproc_per_node 2" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and json.dumps(rundir.read_status(run)) == before


def test_a_stop_through_control_json_reaches_both_ranks_and_the_run_resumes_to_its_end(tmp_path):
    """The dashboard steers a torchrun search like any other: rank 0 reads control.json and both ranks stop at
    the same step (a rank that went on would hang its partner); resumed with two processes, it finishes."""
    import time

    from engine.runs.control_file import request_control
    from tests.waiting import wait_for

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "engine",
           "search", "--preset", "smoke", "--set", "epochs=12", "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(rundir.read_status(p).get("step", 0) >= 2 for p in tmp_path.iterdir()), timeout=240)
        run = next(tmp_path.iterdir())
        request_control(run, "stop")
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    status = rundir.read_status(run)
    assert status["state"] == "stopped" and status["step"] < 24
    start = time.monotonic()
    done = _torchrun("search", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert rundir.read_status(run)["state"] == "finished" and time.monotonic() - start < 300
    assert [m["step"] for m in rundir.read_metrics(run)] == list(range(1, 25))


def _ranks_of(launcher: int) -> dict[int, int]:
    """{rank: pid} of the worker processes torchrun's agent (process `launcher`) started."""
    ranks = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != launcher:
                continue
            env = dict(e.split(b"=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if b"RANK" in env:
            ranks[int(env[b"RANK"])] = int(proc.name)
    return ranks


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
@pytest.mark.parametrize("victim", [0, 1], ids=["writer", "other"])
def test_sigkill_of_one_rank_ends_the_others_and_the_run_resumes_as_interrupted(tmp_path, victim):
    """Rank 0 (which writes) or rank 1 (which only computes) is killed mid-search: the other rank leaves its
    collective at once instead of waiting out the group timeout (days: a paused search waits in one), the run
    is listed interrupted (not failed), and a resume with two processes finishes it, each step logged once."""
    import os
    import signal
    import time

    from engine.runs.catalog import run_info
    from tests.waiting import wait_for

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "engine",
           "search", "--preset", "smoke", "--set", "epochs=8", "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(rundir.read_status(p).get("step", 0) >= 2 for p in tmp_path.iterdir()), timeout=240)
        run = next(tmp_path.iterdir())
        ranks = _ranks_of(proc.pid)
        assert sorted(ranks) == [0, 1], ranks
        os.kill(ranks[victim], signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and time.monotonic() - killed < 120, err[-3000:]
    for pid in ranks.values():  # no rank left behind
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    info = run_info(run)
    assert info.state == "interrupted", (info, rundir.read_status(run))
    assert rundir.read_status(run)["step"] < 16
    done = _torchrun("search", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert rundir.read_status(run)["state"] == "finished"
    assert [m["step"] for m in rundir.read_metrics(run)] == list(range(1, 17))


def test_only_a_lost_peer_reads_as_interrupted():
    """A collective that fails because another rank went away is PeerLost (the run ends interrupted); a bug in
    the collective or this rank's out-of-memory error stays what it is (the run fails, with its hint)."""
    from engine.runtime.distributed import PeerLost, World, _collective

    world = World(rank=0, size=2)

    def failing(error):
        def call():
            raise error
        return call

    gloo = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]")
    with pytest.raises(PeerLost, match=r"rank 0 lost another process of this 2-process search \(Connection closed"):
        _collective(world, failing(gloo))
    with pytest.raises(RuntimeError, match="size mismatch") as err:
        _collective(world, failing(RuntimeError("size mismatch between tensors")))
    assert not isinstance(err.value, PeerLost)
    with pytest.raises(torch.OutOfMemoryError):
        _collective(world, failing(torch.OutOfMemoryError("CUDA out of memory")))
    assert _collective(world, lambda: 7) == 7


@pytest.mark.parametrize("use_cuda", [False, True])
def test_the_group_has_a_cpu_backend_for_the_flags_and_objects_agree_broadcasts(use_cuda):
    """`agree` broadcasts a CPU tensor and `broadcast_object` pickles through CPU memory: with NCCL alone the
    group has no backend for the CPU and the first collective of a multi-GPU search fails. Read the way
    torch.distributed routes each device (runs on the CPU: no GPU needed to check the routing)."""
    from torch.distributed.distributed_c10d import BackendConfig

    from engine.runtime.distributed import group_backend

    routes = BackendConfig(group_backend(use_cuda)).get_device_backend_map()
    assert routes["cpu"] == "gloo"
    assert routes["cuda"] == ("nccl" if use_cuda else "gloo")

"""One recurrent search across two processes (torchrun, gloo, CPU): each rank reads its half of the batch's columns,
rank 0 alone writes the run directory, the gradients are averaged over the ranks, and the checkpoint holds every
column's hidden state, so a stop resumes exactly with the same number of processes and is refused with another.

The search cell's batch norm normalises each rank's own columns, so a two-process step is the mean of the steps on
the two halves, not the one-process step on the whole batch; the first test checks exactly that, computed here in
one process (dropout off, so nothing random stands between the two)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.runs import rundir

ROOT = Path(__file__).resolve().parents[1]
# 152,003 training words / 64 columns / BPTT 40: 60 steps an epoch; every dropout off
SETTINGS = {"batch_size": 64, "bptt": 40, "epochs": 1, "log_every": 1, "dropout": 0, "dropouth": 0, "dropoutx": 0,
            "dropouti": 0}


def _torchrun(*args: str, runs_dir: Path | None = None, nproc: int = 2) -> subprocess.CompletedProcess:
    where = ["--runs-dir", str(runs_dir)] if runs_dir is not None else []
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), "-m", "engine", *args, *where, "-q"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _sets() -> list[str]:
    return [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("ddp-rnn")
    done = _torchrun("search", "--preset", "rnn-smoke", *_sets(), runs_dir=runs_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(p for p in runs_dir.iterdir() if p.is_dir())


def test_one_run_directory_written_once(two_rank_run):
    status = rundir.read_status(two_rank_run)
    steps = status["steps_per_epoch"]
    assert status["state"] == "finished" and status["world_size"] == 2 and status["step"] == steps == 60
    assert [m["step"] for m in rundir.read_metrics(two_rank_run)] == list(range(1, steps + 1))
    assert [a["step"] for a in rundir.read_alphas(two_rank_run)] == list(range(1, steps + 1))
    assert [g["kind"] for g in rundir.read_genotypes(two_rank_run)] == ["final"]
    ckpt = torch.load(two_rank_run / rundir.CHECKPOINT, weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["hidden_train"].shape == (64, 8)  # both ranks' columns


def test_the_first_step_is_the_mean_of_the_steps_on_each_ranks_columns(two_rank_run):
    from engine.nn.rnn_supernet import RNNSearchNetwork
    from engine.runs.lifecycle_resume import seed_everything
    from engine.search.rnn_config import from_rnn_preset
    from engine.search.rnn_loop import load_rnn_search_data
    from engine.search.rnn_step import make_optimizers

    cfg = from_rnn_preset("rnn-smoke", **SETTINGS)
    seed_everything(cfg.seed)  # as the job: seeded, then the data and the network
    data = load_rnn_search_data(cfg)
    model = RNNSearchNetwork(data.num_classes, cfg.emsize, cfg.nhid, cfg.nodes, cfg.dropout, cfg.dropouth,
                             cfg.dropoutx, cfg.dropouti, cfg.dropoute)
    _, a_opt = make_optimizers(model, cfg.w_lr, cfg.w_weight_decay, cfg.a_lr, cfg.a_weight_decay)
    model.train()

    def alpha_grad(columns: slice) -> torch.Tensor:
        words = data.valid[:, columns]
        log_prob, _, _ = model(words[:cfg.bptt], model.init_hidden(words.size(1)))
        loss = F.nll_loss(log_prob.reshape(-1, log_prob.size(-1)), words[1:cfg.bptt + 1].reshape(-1))
        return torch.autograd.grad(loss, model.alphas)[0]

    halves = [alpha_grad(slice(0, 32)), alpha_grad(slice(32, 64))]
    whole = alpha_grad(slice(0, 64))
    model.alphas.grad = (halves[0] + halves[1]) / 2
    a_opt.step()
    first = rundir.read_alphas(two_rank_run)[0]
    np.testing.assert_allclose(np.asarray(first["recurrent"]), model.alphas.detach().numpy(), atol=2e-7, rtol=0)
    # and it is not the one-process step on the whole batch (batch norm sees halves): the check above can fail
    assert float(((halves[0] + halves[1]) / 2 - whole).abs().max()) > 1e-7


def test_a_stopped_two_rank_search_resumes_with_two_and_refuses_one(tmp_path, cli):
    """SIGINT to torchrun stops both ranks after a step with a checkpoint; torchrun --resume continues to the end,
    writing each step once; a one-process resume is refused in one line, losing nothing."""
    import signal
    import time

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "engine", "search", "--preset", "rnn-smoke", *_sets(), "--set", "epochs=3",
                             "--runs-dir", str(runs_dir), "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        run = None
        while time.monotonic() < deadline:
            runs = [p for p in runs_dir.iterdir() if p.is_dir()]
            if runs and len(rundir.read_metrics(runs[0])) >= 5:
                run = runs[0]
                break
            time.sleep(0.2)
        assert run is not None, "the two-rank search did not reach step 5"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = rundir.read_status(run)
    assert status["state"] == "stopped" and 5 <= status["step"] < 180
    before = (run / rundir.METRICS).read_text()
    refused = cli("search", "--resume", str(run), check=False)
    assert refused.returncode == 2 and "resume it with the same number (torchrun --nproc_per_node 2)" in refused.stderr
    assert (run / rundir.METRICS).read_text() == before
    done = _torchrun("search", "--resume", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert rundir.read_status(run)["state"] == "finished"
    steps = [m["step"] for m in rundir.read_metrics(run)]
    assert steps == list(range(1, 181))
    assert json.loads((run / rundir.CONFIG).read_text())["resumed"][0]["step"] == status["step"]

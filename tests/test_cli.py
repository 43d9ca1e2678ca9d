"""python -m engine as a user runs it: exit codes, one-line errors, SIGKILL and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.runs import catalog, rundir
from engine.runtime.device import select_device

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args,needle", [
    (["search", "--preset", "smoke", "--set", "epochs=0"], "epochs=0 is not valid"),
    (["search", "--preset", "smoke", "--set", "epoch=2"], "unknown field"),
    (["search", "--preset", "nope"], "invalid choice"),
    (["derive", "/nonexistent/alphas.json"], "cannot read alphas"),
    (["inspect", "NOT_A_GENOTYPE"], "neither a known genotype"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(args, needle, runs_dir, cli):
    p = cli(*args, check=False)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_inspect_known_genotype_counts_like_the_paper(cli):
    out = json.loads(cli("inspect", "DARTS_V2").stdout)
    assert out["parameters"] == 3_349_342
    assert 500e6 < out["multiply_adds"] < 560e6


def test_derive_from_an_alphas_file_and_a_broken_genotype_file(tmp_path, cli):
    import numpy as np

    a = np.zeros((14, 8))
    a[:, 4] = 1.0
    (tmp_path / "alphas.json").write_text(json.dumps({"normal": a.tolist(), "reduce": a.tolist()}))
    out = json.loads(cli("derive", str(tmp_path / "alphas.json"), "--format", "json").stdout)
    assert {op for op, _ in out["normal"]} == {"sep_conv_3x3"}
    (tmp_path / "bad.txt").write_text("Genotype(normal=[('sep_conv_9x9', 0)])")
    p = cli("inspect", str(tmp_path / "bad.txt"), check=False)
    assert p.returncode == 2 and "sep_conv_9x9" in p.stderr and "Traceback" not in p.stderr


def test_sigkill_loses_only_steps_since_the_checkpoint_then_resumes(runs_dir, cli):
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "search", "--preset", "smoke", "--runs-dir", str(runs_dir),
         "--set", "epochs=15", "--set", "checkpoint_every_s=0.2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 120
        run = None
        while time.monotonic() < end:
            runs = [p for p in runs_dir.iterdir() if (p / "checkpoint.pt").exists()]
            if runs and rundir.read_status(runs[0]).get("step", 0) >= 6:
                run = runs[0]
                break
            time.sleep(0.02)
        assert run is not None, "the search never got going"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    info = catalog.list_runs(runs_dir)[0]
    assert info.state == "interrupted"
    from engine.runs.checkpoint import load_checkpoint

    ckpt_step = load_checkpoint(run / "checkpoint.pt")["step"]
    logged = [m["step"] for m in rundir.read_metrics(run)]
    assert ckpt_step >= 1 and max(logged) >= ckpt_step
    p = cli("search", "--resume", str(run))
    assert "finished" in p.stderr
    steps = [m["step"] for m in rundir.read_metrics(run)]
    assert steps == list(range(1, 31))                  # every step once: the lost ones were redone
    assert catalog.list_runs(runs_dir)[0].state == "finished"
    runs_out = cli("runs", "--runs-dir", str(runs_dir)).stdout
    assert run.name in runs_out and "finished" in runs_out
    assert "sep_conv" in runs_out or "skip_connect" in runs_out or "pool" in runs_out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "term", "hup"])
def test_ctrl_c_term_and_hup_stop_gracefully_with_a_checkpoint(runs_dir, sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "search", "--preset", "smoke", "--runs-dir", str(runs_dir),
         "--set", "epochs=500"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        runs = list(runs_dir.iterdir())
        if runs and rundir.read_status(runs[0]).get("step", 0) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run = list(runs_dir.iterdir())[0]
    status = rundir.read_status(run)
    assert status["state"] == "stopped"
    from engine.runs.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt")["step"] == status["step"]


def test_export_writes_inside_the_run_directory_only(runs_dir, cli):
    cli("search", "--preset", "smoke", "--runs-dir", str(runs_dir), "--set", "epochs=1")
    run = next(runs_dir.iterdir())
    out = Path(cli("export", str(run), "--format", "darts").stdout.strip())
    assert out.parent == run / "exports" and out.read_text().startswith("Genotype(")
    p = cli("export", str(run), "--format", "json", "--out", "../../escape.json", check=False)
    assert p.returncode == 2 and not (runs_dir.parent / "escape.json").exists()


def test_bench_prints_one_json_object(cli):
    out = json.loads(cli("bench", "--preset", "smoke", "--steps", "2").stdout)
    assert out["seconds_per_step"] > 0 and out["peak_memory_mb"] > 0
    assert out["device"] == str(select_device("auto")) and out["torch"]   # device=auto: CUDA where there is one


def test_runs_env_var_is_the_default_root(runs_dir, cli):
    assert "no runs under" in cli("runs", env={**os.environ, "DARTBOARD_RUNS": str(runs_dir)}).stdout

"""python -m engine as a user runs it: exit codes, one-line errors, SIGKILL and resume."""

import json
import os
import re
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
    assert proc.returncode == 128 + sig, err  # as a shell reports a command a signal ended: 130 for Ctrl-C
    run = list(runs_dir.iterdir())[0]
    status = rundir.read_status(run)
    assert status["state"] == "stopped"
    from engine.runs.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt")["step"] == status["step"]


def test_export_writes_inside_the_run_directory_only(runs_dir, cli):
    p = cli("search", "--preset", "smoke", "--runs-dir", str(runs_dir), "--set", "epochs=1", "-q")
    assert p.stderr == "" and p.stdout.startswith("Genotype(")  # -q: the result only
    run = next(runs_dir.iterdir())
    listed = json.loads(cli("runs", "--json", "--runs-dir", str(runs_dir)).stdout)
    assert [(r["run_id"], r["kind"], r["state"], r["step"]) for r in listed] == [(run.name, "search", "finished", 2)]
    assert listed[0]["config"] == rundir.read_config(run)["config"] and listed[0]["genotype"]["normal"]
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


def test_version_names_the_release_and_the_commit(cli):
    from engine.version import __version__, git_commit

    commit = git_commit()
    expected = f"dartboard {__version__}" + (f" (git {commit[:12]})" if commit else "")
    assert cli("--version").stdout.strip() == expected
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a clone with git at hand: the commit read from .git is git's own answer
        assert commit == head.stdout.strip()


@pytest.mark.parametrize("command,config_class,presets", [
    ("search", "engine.search.config:SearchConfig", "engine.search.config:PRESETS"),
    ("train", "engine.train.config:TrainConfig", "engine.train.config:TRAIN_PRESETS"),
])
def test_help_lists_every_field_with_what_its_check_accepts(command, config_class, presets, cli):
    import importlib

    from engine.core.config import collect_errors

    def load(ref):
        module, name = ref.split(":")
        return getattr(importlib.import_module(module), name)

    cls, preset_map = load(config_class), load(presets)
    out = cli(command, "--help", env={**os.environ, "COLUMNS": "500"}).stdout  # one line a field
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    keys = cls.known_keys()
    assert len(keys) >= (48 if command == "search" else 27)
    for name in keys:
        assert name in lines, f"--help does not list {name}"
    # what a field accepts is the message its check gives a bad value
    (err,) = [e for e in collect_errors(lambda: cls(epochs=0)) if e.field == "epochs"]
    assert err.allowed in lines["epochs"] and f"(default {keys['epochs'][0]})" in lines["epochs"]
    assert all(name in out for name in preset_map)
    if command == "search":
        from engine.variants.registry import option_spec

        assert option_spec("pc_k").allowed in lines["pc_k"] and "variant=pc_darts" in lines["pc_k"]


def test_config_prints_the_resolved_preset_as_json(cli):
    from engine.search.config import from_preset
    from engine.train.config import from_train_preset

    out = json.loads(cli("config", "--preset", "smoke", "--set", "epochs=3", "--set", "variant=pc_darts").stdout)
    assert out == json.loads(from_preset("smoke", {"epochs": 3, "variant": "pc_darts"}).to_json())
    assert out["pc_k"] == 4  # the variant's own option, at its default
    train = json.loads(cli("config", "--preset", "train-smoke").stdout)
    assert train == json.loads(from_train_preset("train-smoke").to_json())
    p = cli("config", "--preset", "smoke", "--set", "epochs=0", check=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "epochs=0 is not valid" in p.stderr


def test_runs_json_is_an_empty_array_without_runs(runs_dir, cli):
    assert json.loads(cli("runs", "--json", "--runs-dir", str(runs_dir)).stdout) == []


def test_verbose_prints_the_config_and_the_bar_stays_off_a_pipe(runs_dir, cli):
    err = cli("search", "--preset", "smoke", "--runs-dir", str(runs_dir), "--set", "epochs=1", "-v").stderr
    config_line = next(line for line in err.splitlines() if line.startswith("config: "))
    assert json.loads(config_line[len("config: "):])["epochs"] == 1
    assert "epoch 1 done at step 2" in err  # the log's line per epoch
    assert "\r" not in err and "it/s" not in err and "step/s" not in err  # no bar when stderr is not a terminal


class _Terminal:
    """stderr as a terminal of `columns` columns: a real pseudo-terminal that tqdm measures (its fileno), the text
    kept to read back."""

    def __init__(self, columns: int = 60):
        import fcntl
        import io
        import struct
        import termios

        self.buf = io.StringIO()
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))

    def fileno(self):
        return self.slave

    def close(self):
        os.close(self.master)
        os.close(self.slave)

    def write(self, text):
        return self.buf.write(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_the_progress_bar_fits_the_terminal_and_gives_the_eta_as_h_mm_ss(monkeypatch):
    from engine.cli.progress import job_progress
    from engine.runs.hooks import StepEvent

    term = _Terminal(60)
    monkeypatch.setattr(sys, "stderr", term)
    times = iter(range(0, 10**6, 3))  # a step every 3 seconds of tqdm's clock: 10,000 steps take hours
    monkeypatch.setattr("tqdm.std.time", lambda: next(times))
    bar = job_progress()
    for step in range(1, 6):
        bar.on_step_end(StepEvent(step=step, epoch=0, status={"total_steps": 10_000},
                                  metrics={"train_loss": 1.5, "valid_acc": 0.25}))
    bar.on_epoch_end(StepEvent(step=5, epoch=0, status={}, metrics={"train_loss": 1.5}), {})
    bar.close()
    term.close()
    frames = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", f) for f in re.split(r"[\r\n]", term.buf.getvalue())]
    frames = [f for f in frames if f.strip()]
    bars = [f for f in frames if "/10000" in f]
    assert bars and all(len(f) < 60 for f in bars), bars   # one line, never wrapped
    assert re.search(r"<\d+:\d\d:\d\d", bars[-1]), bars[-1]  # hours left as h:mm:ss, not raw seconds
    assert any(f.startswith("epoch 1 done at step 5") for f in frames)


def test_quiet_progress_writes_nothing(monkeypatch):
    from engine.cli.progress import QUIET, job_progress
    from engine.runs.hooks import StepEvent

    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = job_progress(QUIET)
    bar.on_step_end(StepEvent(step=1, epoch=0, status={"total_steps": 4}, metrics={"test_acc": 0.5}))
    bar.on_epoch_end(StepEvent(step=1, epoch=0, status={}, metrics={}), {})
    bar.close()
    term.close()
    assert term.buf.getvalue() == ""


def test_search_runs_the_recurrent_space_from_its_preset_and_resumes_it(runs_dir, cli):
    """`search --preset rnn-demo` searches the recurrent space on the embedded corpus (tiny here) and prints the
    cell in the reference's text form; a stopped run resumes through the same command; bad sizes are one line."""
    tiny = ["--set", "epochs=1", "--set", "emsize=8", "--set", "nhid=8", "--set", "max_vocab=100",
            "--set", "bptt=20", "--set", "batch_size=512"]  # about 15 steps an epoch
    done = cli("search", "--preset", "rnn-demo", "--runs-dir", str(runs_dir), "-q", *tiny)
    assert done.stdout.startswith("Genotype(recurrent=[") and "concat=range(1, 9)" in done.stdout
    run = next(runs_dir.iterdir())
    assert rundir.read_config(run)["kind"] == "rnn_search" and rundir.read_status(run)["state"] == "finished"
    again = cli("search", "--resume", str(run), "--set", "epochs=2", "-q")
    assert rundir.read_status(run)["state"] == "finished" and again.stdout.startswith("Genotype(recurrent=")
    bad = cli("search", "--preset", "rnn-demo", "--set", "bptt=0", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: bptt=0 is not valid: an integer from 1 to 4096"]

"""python -m engine train | compare | export (model formats) as a user runs them: exit codes, SIGKILL, follow."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.__main__ import main
from engine.runs import catalog, rundir
from engine.runs.follow import Follower
from engine.space.cnn.genotype import KNOWN_GENOTYPES

ROOT = Path(__file__).resolve().parents[1]
V2 = KNOWN_GENOTYPES["DARTS_V2"]


def _search_dir(root: Path, rows: list[dict] | None) -> Path:
    run = root / "search"
    run.mkdir()
    (run / rundir.CONFIG).write_text(json.dumps({"kind": "search", "config": {"epochs": 1}}))
    if rows is not None:
        (run / rundir.GENOTYPES).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.mark.parametrize("make,needle", [
    (lambda t: "NOT_A_CELL", "neither a known genotype"),
    (lambda t: "random:-1", "random:SEED"),
    (lambda t: _write(t, "cell.txt", "Genotype(normal=[('sep_conv_9x9', 0)])"), "unknown op 'sep_conv_9x9'"),
    (lambda t: _write(t, "cell.txt", "not a genotype at all ("), "does not hold a genotype"),
    (lambda t: _write(t, "cell.json", json.dumps({**V2.to_dict(), "normal": [["sep_conv_3x3", 5]] * 8})),
     "node 0 may take inputs 0..1"),
    (lambda t: str(_search_dir(t, None)), "no genotype yet"),
    (lambda t: str(_search_dir(t, [{"step": 4, "epoch": 0, "genotype": V2.to_dict()}])) + "@3",
     "no genotype recorded at step 3"),
])
def test_bad_genotypes_exit_2_with_one_line(make, needle, tmp_path, runs_dir, capsys):
    assert main(["train", make(tmp_path), "--preset", "train-smoke"]) == 2  # in-process: the same main() as the CLI
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(runs_dir.iterdir())  # refused before a run directory exists


def _write(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


@pytest.mark.parametrize("args,needle", [
    (["--set", "epochs=0"], "epochs=0 is not valid"),
    (["--set", "auxiliary_weight=0.4"], "auxiliary head needs about 32x32"),
    (["--set", "dataset=imagefolder"], "dataset='imagefolder' is not valid"),
])
def test_bad_config_exits_2(args, needle, runs_dir, capsys):
    assert main(["train", "DARTS_V2", "--preset", "train-smoke", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_unknown_preset_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "DARTS_V2", "--preset", "nope"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_train_export_and_list(runs_dir, capsys, cli):
    p = cli("train", "random:3", "--preset", "train-smoke", "--runs-dir", str(runs_dir))
    assert "finished" in p.stderr and "test_acc" in p.stderr
    run = next(runs_dir.iterdir())
    assert rundir.read_config(run)["source"] == {"kind": "random", "seed": 3, "label": "random:3"}
    capsys.readouterr()
    for fmt, name in (("checkpoint", "model.pt"), ("pt2", "model.pt2"), ("onnx", "model.onnx")):
        assert main(["export", str(run), "--format", fmt]) == 0
        assert Path(capsys.readouterr().out.strip()) == (run / "exports" / name).resolve()
    assert torch.load(run / "exports" / "model.pt", weights_only=True)["genotype"]["normal"]
    assert main(["export", str(run), "--format", "onnx", "--out", "/tmp/outside.onnx"]) == 2
    assert "outside the run directory" in capsys.readouterr().err
    assert main(["search", "--resume", str(run)]) == 2
    assert "is a training, not a search" in capsys.readouterr().err
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    listing = capsys.readouterr().out
    assert run.name in listing and "finished" in listing and "test" in listing


def test_sigkill_then_resume_redoes_only_the_lost_steps(runs_dir, cli):
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "DARTS_V2", "--preset", "train-smoke",
                             "--runs-dir", str(runs_dir), "--set", "epochs=15", "--set", "checkpoint_every_s=0.2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run, end = None, time.monotonic() + 120
        while time.monotonic() < end and run is None:
            runs = [p for p in runs_dir.iterdir() if (p / rundir.CHECKPOINT).exists()]
            if runs and rundir.read_status(runs[0]).get("step", 0) >= 6:
                run = runs[0]
            time.sleep(0.02)
        assert run is not None, "the training never got going"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert catalog.list_runs(runs_dir)[0].state == "interrupted"
    assert "finished" in cli("train", "--resume", str(run)).stderr
    assert [m["step"] for m in rundir.read_metrics(run)] == list(range(1, 61))
    assert catalog.list_runs(runs_dir)[0].state == "finished"


def test_follow_and_control_a_training_of_another_process(runs_dir):
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "DARTS_V2", "--preset", "train-smoke",
                             "--runs-dir", str(runs_dir), "--set", "epochs=500"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and not [p for p in runs_dir.iterdir() if (p / rundir.STATUS).exists()]:
            time.sleep(0.05)
        follower = Follower(next(runs_dir.iterdir()))
        follower.pause()
        while time.monotonic() < end and follower.snapshot().state != "paused":
            time.sleep(0.05)
        snap = follower.snapshot()
        assert snap.state == "paused" and snap.genotype == V2
        follower.stop()
        assert proc.wait(60) == 0
        assert follower.snapshot().state == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_compare_trains_found_darts_v2_and_random_cells(tmp_path, runs_dir, cli):
    search = _search_dir(tmp_path, [{"step": 4, "epoch": 0, "kind": "final", "genotype": V2.to_dict()}])
    p = cli("compare", str(search), "--preset", "train-smoke", "--random", "1", "--set", "epochs=1",
            "--runs-dir", str(runs_dir))
    table, _, proxy_part = p.stdout.strip().partition("\n\n")
    lines = table.splitlines()
    assert lines[0].split()[:5] == ["cell", "test_acc", "parameters", "mult-adds", "wall_s"]
    assert [line.split()[0] for line in lines[1:]] == ["found", "DARTS_V2", "random:0"]
    runs = catalog.list_runs(runs_dir)
    assert len(runs) == 3 and all(r.kind == "train" and r.state == "finished" for r in runs)
    # each cell's proxies, as `score` computes them for the same training config, and their correlation
    from engine.derive import proxies
    from engine.train.config import from_train_preset

    plines = proxy_part.splitlines()
    assert plines[0].startswith("Zero-cost proxies") and [x.split()[0] for x in plines[2:5]] == [
        "found", "DARTS_V2", "random:0"]
    want = proxies.score_genotype(V2, config=from_train_preset("train-smoke", {"epochs": 1}))
    assert plines[3].split()[1:4] == [f"{want[k]:.4g}" for k in ("synflow", "naswot", "grad_norm")]
    assert plines[-1].startswith("Rank correlation with test accuracy over these 3 cells: synflow ")


@pytest.mark.parametrize("args,needle", [
    (["--random", "-2"], "--random must be 0 or more"),
    (["--seed", "-1"], "--seed must be 0 or more"),
])
def test_compare_refuses_a_negative_count_before_training(args, needle, tmp_path, runs_dir, capsys):
    search = _search_dir(tmp_path, [{"step": 4, "epoch": 0, "kind": "final", "genotype": V2.to_dict()}])
    assert main(["compare", str(search), "--preset", "train-smoke", "--set", "epochs=1", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not list(runs_dir.iterdir())  # nothing trained


def test_compare_takes_a_search_not_a_genotype_as_the_found_cell(runs_dir, capsys):
    # DARTS_V2 as the "search" would be trained twice, once labelled `found`
    assert main(["compare", "DARTS_V2", "--preset", "train-smoke", "--random", "0"]) == 2
    err = capsys.readouterr().err
    assert "not a search run directory" in err and len(err.strip().splitlines()) == 1
    assert not list(runs_dir.iterdir())


def test_ctrl_c_stops_a_training_with_a_checkpoint_and_exits_130(runs_dir):
    """As a search: the step in flight ends, a checkpoint is written, the state is stopped, and the shell hears
    130 (a stop is not a success)."""
    from tests.waiting import wait_for

    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "DARTS_V2", "--preset", "train-smoke",
                             "--runs-dir", str(runs_dir), "--set", "epochs=200"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(rundir.read_status(p).get("step", 0) >= 2 for p in runs_dir.iterdir()), timeout=120)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    run = next(runs_dir.iterdir())
    status = rundir.read_status(run)
    assert status["state"] == "stopped"
    from engine.train.resume import load_train_checkpoint

    assert load_train_checkpoint(run / rundir.CHECKPOINT)["step"] == status["step"]

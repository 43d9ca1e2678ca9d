import json
import os

import pytest
import torch

from engine.core.atomic import append_jsonl, read_jsonl, write_json_atomic
from engine.runs import rundir
from engine.runs.catalog import delete_run
from engine.runs.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_new_run_dirs_are_unique(tmp_path):
    a = rundir.new_run_dir(tmp_path, "demo embedded")
    b = rundir.new_run_dir(tmp_path, "demo embedded")
    assert a != b and a.name.endswith("demo-embedded") and b.name.startswith(a.name)


def test_jsonl_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as f:
        f.write('{"step": 3, "train_lo')   # the writer died mid-line
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    with open(path, "a") as f:
        f.write('\n{"step": 4}\n')          # a corrupt middle line is skipped too
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 4]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_json_atomic(tmp_path / "status.json", {"state": "running"})
    write_json_atomic(tmp_path / "status.json", {"state": "paused"})
    assert json.loads((tmp_path / "status.json").read_text()) == {"state": "paused"}
    assert os.listdir(tmp_path) == ["status.json"]


def test_checkpoint_errors_are_clear(tmp_path):
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(path)
    state = {"step": 1, "epoch": 0, "batch": 1, "model": {"w": torch.ones(3)}, "w_optimizer": {},
             "a_optimizer": {}, "scheduler": {}, "rng": {}, "config": {}}
    save_checkpoint(path, state)
    assert load_checkpoint(path)["step"] == 1
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        load_checkpoint(path)
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="not a dartboard search checkpoint"):
        load_checkpoint(path)


def test_delete_refuses_outside_root_and_live_runs(tmp_path):
    root = tmp_path / "runs"
    run = rundir.new_run_dir(root, "x")
    write_json_atomic(run / rundir.CONFIG, {"config": {"epochs": 1}})
    rundir.write_status(run, state="running")
    with pytest.raises(rundir.RunDirError, match="stop it before deleting"):
        delete_run(run, root)
    with pytest.raises(rundir.RunDirError, match="not a run directory"):
        delete_run(tmp_path, root)
    rundir.write_status(run, state="stopped")
    delete_run(run, root)
    assert not run.exists()

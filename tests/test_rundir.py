import json
import os
import socket
import time

import numpy as np
import pytest
import torch

from engine import rundir
from engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_new_run_dirs_are_unique(tmp_path):
    a = rundir.new_run_dir(tmp_path, "demo embedded")
    b = rundir.new_run_dir(tmp_path, "demo embedded")
    assert a != b and a.name.endswith("demo-embedded") and b.name.startswith(a.name)


def test_jsonl_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rundir.append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as f:
        f.write('{"step": 3, "train_lo')   # the writer died mid-line
    assert [r["step"] for r in rundir.read_jsonl(path)] == [1, 2]
    with open(path, "a") as f:
        f.write('\n{"step": 4}\n')          # a corrupt middle line is skipped too
    assert [r["step"] for r in rundir.read_jsonl(path)] == [1, 2, 4]
    assert rundir.read_jsonl(tmp_path / "missing.jsonl") == []


def test_atomic_write_leaves_no_temp_files(tmp_path):
    rundir.write_json_atomic(tmp_path / "status.json", {"state": "running"})
    rundir.write_json_atomic(tmp_path / "status.json", {"state": "paused"})
    assert json.loads((tmp_path / "status.json").read_text()) == {"state": "paused"}
    assert os.listdir(tmp_path) == ["status.json"]


def test_interrupted_when_writer_pid_is_gone_or_heartbeat_stale():
    host = socket.gethostname()
    now = time.time()
    assert not rundir.is_interrupted({"state": "running", "host": host, "pid": os.getpid(), "updated": now})
    assert rundir.is_interrupted({"state": "running", "host": host, "pid": 2**22 + 12345, "updated": now})
    assert rundir.is_interrupted({"state": "paused", "host": "elsewhere", "pid": 1, "updated": now - 3600})
    assert not rundir.is_interrupted({"state": "finished", "host": host, "pid": 2**22 + 12345, "updated": 0})


def test_control_requests_are_sequenced(tmp_path):
    assert rundir.read_control(tmp_path, 0) == []
    s1 = rundir.request_control(tmp_path, "pause")
    s2 = rundir.request_control(tmp_path, "stop")
    assert [r["command"] for r in rundir.read_control(tmp_path, 0)] == ["pause", "stop"]
    assert [r["seq"] for r in rundir.read_control(tmp_path, s1)] == [s2]
    with pytest.raises(ValueError, match="unknown control command"):
        rundir.request_control(tmp_path, "rm -rf")


def test_weights_of_is_row_softmax():
    rec = {"normal": np.zeros((14, 8)).tolist(), "reduce": np.eye(14, 8).tolist()}
    w = rundir.weights_of(rec)
    np.testing.assert_allclose(w["normal"], 1 / 8)
    np.testing.assert_allclose(w["reduce"].sum(1), 1.0)
    assert w["reduce"][0, 0] > w["reduce"][0, 1]


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
    rundir.write_json_atomic(run / rundir.CONFIG, {"config": {"epochs": 1}})
    rundir.write_status(run, state="running")
    with pytest.raises(rundir.RunDirError, match="stop it before deleting"):
        rundir.delete_run(run, root)
    with pytest.raises(rundir.RunDirError, match="not a run directory"):
        rundir.delete_run(tmp_path, root)
    rundir.write_status(run, state="stopped")
    rundir.delete_run(run, root)
    assert not run.exists()

"""Hostile files inside a run directory (issue 25): what anyone with write access to a run can put there must
cost that run only, and a search must keep every request it acknowledges.

- JSON nested deeper than the parser's stack ('[' * 100000) as config.json, status.json or a JSONL line: the
  run is listed (unreadable where its config is the damaged file), the other runs list normally, and derive,
  follow mode and the Runs page read what is left;
- the same text as a running search's control.json: skipped with a warning, the search goes on, and a later
  stop request is recorded and carried out;
- step requests to a paused search, from many writers at once or one writer in a row: each one a step;
- a run whose config.json was deleted: listed as unreadable with the reason, and deletable;
- --resume on a checkpoint.pt of random bytes: exit 2 and one line, with no advice to unpickle it unsafely.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.__main__ import main
from engine.runs import catalog, rundir
from engine.runs.control import Control
from engine.runs.control_file import read_control, request_control
from engine.runs.hooks import Callback
from engine.search.loop import run_search
from tests.waiting import wait_for

BOMBS = {"brackets": "[" * 100_000, "objects": '{"a":' * 100_000}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, smoke):
    run_dir = tmp_path_factory.mktemp("hostile-files") / "run"
    run_dir.mkdir()
    assert run_search(smoke.replace(epochs=1), run_dir) == "finished"
    return run_dir


@pytest.fixture
def two_runs(finished_run, tmp_path):
    """A runs root with a good run and a copy to spoil (named so that the spoilt one lists first)."""
    root = tmp_path / "runs"
    good, bad = root / "20260101T000000Z-good", root / "20260102T000000Z-spoilt"
    shutil.copytree(finished_run, good)
    shutil.copytree(finished_run, bad)
    return root, good, bad


def _listed(capsys, root) -> dict[str, str]:
    assert main(["runs", "--runs-dir", str(root)]) == 0
    out = capsys.readouterr().out
    return {line.split()[0]: line for line in out.splitlines()[1:]}


# ---------------------------------------------------------------- JSON nested too deeply, in a run's files

@pytest.mark.parametrize("bomb", BOMBS.values(), ids=BOMBS.keys())
@pytest.mark.parametrize("name", [rundir.CONFIG, rundir.STATUS, rundir.METRICS, rundir.ALPHAS, rundir.GENOTYPES])
def test_a_json_bomb_in_one_run_costs_that_run_only(two_runs, capsys, name, bomb):
    root, good, bad = two_runs
    if name.endswith(".jsonl"):
        with open(bad / name, "a") as f:
            f.write(bomb + "\n")
    else:
        (bad / name).write_text(bomb)
    listed = _listed(capsys, root)
    assert "finished" in listed[good.name]
    if name == rundir.CONFIG:
        assert "unreadable" in listed[bad.name] and "nested too deeply" in listed[bad.name]
        rc = main(["derive", str(bad)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and rundir.CONFIG in err, err
        return
    # the run lists, derives and follows from what is left (a status it cannot read is none: interrupted)
    assert bad.name in listed and "unreadable" not in listed[bad.name]
    assert main(["derive", str(bad)]) == 0
    derived = capsys.readouterr().out
    assert main(["derive", str(good)]) == 0
    assert derived == capsys.readouterr().out
    from engine.runs.follow import snapshot_from_dir

    snap = snapshot_from_dir(bad)
    assert snap.weights["normal"].shape == (14, 8) and snap.metrics


@pytest.mark.parametrize("updated", ["x", None, True, [1.0], float("inf"), float("nan")],
                         ids=["text", "null", "bool", "list", "inf", "nan"])
def test_a_heartbeat_that_is_not_a_number_reads_as_long_ago(two_runs, updated):
    """status.json's `updated` as anything but a finite number: the run's writer (on another host) counts as gone,
    and follow mode still draws the run, with every damaged field of the status as none."""
    from engine.runs.follow import snapshot_from_dir
    from engine.runs.liveness import STALE_S, is_interrupted

    now = STALE_S + 0.5  # a heartbeat read as 0 is stale, one read as 1 (True) would not be yet
    status = {"state": "running", "host": "another-host", "updated": updated}
    assert is_interrupted(status, now=now) is True
    assert is_interrupted({**status, "updated": 1.0}, now=now) is False
    _, _, bad = two_runs
    (bad / rundir.STATUS).write_text(json.dumps({**status, "steps_per_epoch": "x", "steps_per_s": [2],
                                                 "eta_s": "soon", "message": 7}))
    snap = snapshot_from_dir(bad)
    assert snap.state == "interrupted" and snap.updated_at == 0.0 and snap.steps_per_epoch == 0
    assert snap.steps_per_s is None and snap.eta_s is None and snap.message == "7"


@pytest.mark.parametrize("name", ["runs", "replay", "train", "learn"])
def test_every_page_that_lists_runs_draws_beside_a_json_bomb(two_runs, page, monkeypatch, name):
    from app import state
    from tests.conftest import reset_streamlit_caches

    root, good, bad = two_runs
    (bad / rundir.STATUS).write_text(BOMBS["brackets"])
    worse = root / "20260103T000000Z-config"
    shutil.copytree(good, worse)
    (worse / rundir.CONFIG).write_text(BOMBS["objects"])
    monkeypatch.setenv("DARTBOARD_RUNS", str(root))
    reset_streamlit_caches()
    try:
        at = page(name).run()
        assert not at.exception, at.exception
        if name == "runs":
            assert at.selectbox(key="runs.selected").options == [worse.name, bad.name, good.name]
    finally:
        state.registry().shutdown(timeout=30)
        reset_streamlit_caches()


# ---------------------------------------------------------------- a running search's control.json

class _PauseAt(Callback):
    """Pauses the search (in process) after step `at`, and records every step taken."""

    def __init__(self, control: Control, at: int):
        self.control, self.at, self.steps = control, at, []

    def on_step_end(self, event):
        if event.step > (self.steps[-1] if self.steps else 0):  # not the step-0 or stop checkpoints' events
            self.steps.append(event.step)
        if event.step == self.at:
            self.control.pause()


@pytest.fixture
def paused_search(tmp_path, smoke):
    """A smoke search of 12 steps running in a thread, paused after step 1; yields (run_dir, steps taken, result)
    and stops it afterwards."""
    run_dir = tmp_path / "live"
    run_dir.mkdir()
    control = Control()
    watch = _PauseAt(control, 1)
    result = []
    thread = threading.Thread(target=lambda: result.append(
        run_search(smoke.replace(epochs=6), run_dir, control=control, callbacks=[watch])), daemon=True)
    thread.start()
    wait_for(lambda: rundir.read_status(run_dir).get("state") == "paused", timeout=120)
    yield run_dir, watch.steps, result, thread
    control.stop()
    thread.join(60)


def test_a_json_bomb_as_control_json_is_skipped_and_a_later_stop_is_carried_out(paused_search, caplog):
    run_dir, steps, result, thread = paused_search
    request_control(run_dir, "derive")  # the loop applies it (seq 1) and records `applied` 1
    wait_for(lambda: read_control(run_dir, 0).applied == 1, timeout=30)
    with caplog.at_level(logging.WARNING, logger="engine.runs.control_file"):
        (run_dir / rundir.CONTROL).write_text(BOMBS["objects"])
        wait_for(lambda: any("not JSON" in r.getMessage() for r in caplog.records), timeout=30)
    assert thread.is_alive() and rundir.read_status(run_dir)["state"] == "paused"
    # again, and a stop at once: the writer cannot read the file, so it numbers the stop from 1 again, a number
    # the loop has already applied once; it must still be carried out
    (run_dir / rundir.CONTROL).write_text(BOMBS["brackets"])
    request_control(run_dir, "stop")
    thread.join(60)
    assert result == ["stopped"] and rundir.read_status(run_dir)["state"] == "stopped"
    assert read_control(run_dir, 0).applied == 1


# ---------------------------------------------------------------- step requests: each acknowledged one is a step

def test_every_acknowledged_step_request_is_a_step(paused_search):
    run_dir, steps, result, thread = paused_search
    assert steps == [1]
    with ThreadPoolExecutor(7) as pool:  # seven writers at once, each asking for one step
        seqs = sorted(pool.map(lambda _: request_control(run_dir, "step"), range(7)))
    assert seqs == list(range(1, 8))
    wait_for(lambda: read_control(run_dir, 0).applied == 7, timeout=30)
    wait_for(lambda: len(steps) >= 8, timeout=60)
    time.sleep(0.75)  # three polls of a paused loop: a step too many would be taken by now
    assert steps == list(range(1, 9)) and thread.is_alive()
    for _ in range(3):  # one writer asking three times in a row
        request_control(run_dir, "step")
    wait_for(lambda: read_control(run_dir, 0).applied == 10, timeout=30)
    wait_for(lambda: len(steps) >= 11, timeout=60)
    time.sleep(0.75)
    assert steps == list(range(1, 12)) and rundir.read_status(run_dir)["state"] == "paused"


def _gate(c: Control) -> bool:
    """One look of the loop's gate: True = a step goes through at once; False = the gate had to wait (its first
    wait ends the control, so a missing step can never hang the test, and no timing is involved)."""
    return c.gate(idle=c.stop, poll_s=0.01)


def test_a_step_request_while_running_is_refused_and_n_accepted_ones_are_n_steps():
    c = Control()
    assert c.apply("step") is False  # refused while running: it is not kept for the next pause
    c.pause()
    assert [c.apply("step") for _ in range(3)] == [True] * 3
    assert [_gate(c) for _ in range(4)] == [True, True, True, False]  # three steps, then the loop waits
    c = Control()
    c.pause()
    assert c.apply("step") and c.apply("step")
    c.resume()  # the steps asked for are moot once it runs: none is left over for the next pause
    c.pause()
    assert _gate(c) is False


def test_a_fresh_control_has_no_step_or_derive_waiting():
    """Found by bench/mutation.py: a Control born with a step or a derive pending went unnoticed."""
    c = Control()
    assert c.take_derive() is False
    c.pause()
    assert _gate(c) is False  # paused with nothing asked: the loop waits


# ---------------------------------------------------------------- a deleted config.json

def test_a_run_whose_config_json_was_deleted_is_listed_as_unreadable_and_can_be_deleted(two_runs, capsys):
    root, good, bad = two_runs
    (bad / rundir.CONFIG).unlink()
    (root / "20260103T000000Z-starting").mkdir()  # only a folder (a run that is starting): not listed
    (root / "notes").mkdir()
    listed = _listed(capsys, root)
    assert sorted(listed) == sorted([good.name, bad.name])
    assert "unreadable" in listed[bad.name] and rundir.CONFIG in listed[bad.name]
    assert "finished" in listed[good.name]
    info = {r.run_id: r for r in catalog.list_runs(root)}[bad.name]
    assert info.state == catalog.UNREADABLE and rundir.CONFIG in info.error
    catalog.delete_run(bad, root)  # the Runs page offers Delete for an unreadable run
    assert not bad.exists() and good.exists()


# ---------------------------------------------------------------- a checkpoint of random bytes

def test_resume_on_a_checkpoint_of_random_bytes_is_one_line_and_changes_nothing(two_runs, capsys):
    root, good, bad = two_runs
    (bad / rundir.CHECKPOINT).write_bytes(os.urandom(4096))
    before = {p.name: p.read_bytes() for p in bad.iterdir() if p.is_file() and not p.name.endswith(".lock")}
    rc = main(["search", "--resume", str(bad)])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "not readable" in err and rundir.CHECKPOINT in err, err
    assert "weights_only" not in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in bad.iterdir() if p.is_file() and not p.name.endswith(".lock")} == before

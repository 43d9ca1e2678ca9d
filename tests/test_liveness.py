"""The "interrupted" rules at their boundary: STALE_S - 1 s is alive, STALE_S + 1 s is not."""

import os
import socket
import time

import pytest

from engine.core.atomic import write_json_atomic
from engine.runs import rundir
from engine.runs.catalog import list_runs, run_info
from engine.runs.liveness import STALE_S, displayed_state, is_interrupted, pid_alive
from engine.runs.snapshot import ACTIVE_STATES

NOW = 1_700_000_000.0
DEAD_PID = 2**22 + 12345  # above Linux's largest pid_max: never a live process
HERE = socket.gethostname()
ELSEWHERE = HERE + ".elsewhere.invalid"


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(DEAD_PID)


@pytest.mark.parametrize("state", ACTIVE_STATES)
def test_another_hosts_run_is_interrupted_only_after_stale_s_without_heartbeat(state):
    status = {"state": state, "host": ELSEWHERE, "pid": os.getpid()}  # its pid means nothing here
    assert not is_interrupted({**status, "updated": NOW - (STALE_S - 1)}, now=NOW)
    assert is_interrupted({**status, "updated": NOW - (STALE_S + 1)}, now=NOW)
    assert displayed_state({**status, "updated": NOW - (STALE_S - 1)}, config_mtime=0.0, now=NOW) == state
    assert displayed_state({**status, "updated": NOW - (STALE_S + 1)}, config_mtime=0.0, now=NOW) == "interrupted"


@pytest.mark.parametrize("state", ACTIVE_STATES)
def test_same_hosts_run_follows_its_pid_whatever_the_heartbeat(state):
    alive = {"state": state, "host": HERE, "pid": os.getpid()}
    dead = {"state": state, "host": HERE, "pid": DEAD_PID}
    assert not is_interrupted({**alive, "updated": NOW - (STALE_S + 1)}, now=NOW)  # a long step is not a death
    assert not is_interrupted({**alive, "updated": NOW - (STALE_S - 1)}, now=NOW)
    assert is_interrupted({**dead, "updated": NOW - (STALE_S - 1)}, now=NOW)       # dead at once, fresh heartbeat
    assert is_interrupted({**dead, "updated": NOW - (STALE_S + 1)}, now=NOW)


def test_same_host_without_a_pid_falls_back_to_the_heartbeat():
    status = {"state": "running", "host": HERE}
    assert not is_interrupted({**status, "updated": NOW - (STALE_S - 1)}, now=NOW)
    assert is_interrupted({**status, "updated": NOW - (STALE_S + 1)}, now=NOW)


@pytest.mark.parametrize("state", ["finished", "stopped", "failed"])
def test_an_ended_run_is_never_interrupted(state):
    for status in ({"state": state, "host": HERE, "pid": DEAD_PID, "updated": 0},
                   {"state": state, "host": ELSEWHERE, "pid": 1, "updated": NOW - (STALE_S + 1)}):
        assert not is_interrupted(status, now=NOW)
        assert displayed_state(status, config_mtime=0.0, now=NOW) == state


def test_no_status_is_queued_until_config_json_is_stale_s_old():
    assert displayed_state({}, config_mtime=NOW - (STALE_S - 1), now=NOW) == "queued"
    assert displayed_state({}, config_mtime=NOW - (STALE_S + 1), now=NOW) == "interrupted"


def _run_without_status(root, age_s: float):
    run = rundir.new_run_dir(root, f"age {age_s}")
    write_json_atomic(run / rundir.CONFIG, {"config": {"epochs": 2}, "created": "then"})
    then = time.time() - age_s
    os.utime(run / rundir.CONFIG, (then, then))
    return run


def test_no_status_rule_through_run_info_and_list_runs(tmp_path):
    young = _run_without_status(tmp_path, STALE_S - 1)
    old = _run_without_status(tmp_path, STALE_S + 1)
    assert run_info(young).state == "queued"
    assert run_info(old).state == "interrupted"
    assert {r.path: r.state for r in list_runs(tmp_path)} == {young: "queued", old: "interrupted"}
    rundir.write_status(old, state="finished")      # a status, however old config.json is, decides
    assert run_info(old).state == "finished"

"""control.json: lossless under concurrent writers, never trimmed before the loop applied it, tolerant of junk."""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.runs import rundir
from engine.runs.control_file import ControlPoller, ack_control, read_control, request_control

WRITERS, EACH = 4, 50


WRITER = """
import json, pathlib, sys, time
from engine.runs.control_file import COMMANDS, request_control
run_dir, writer, each = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pathlib.Path(run_dir, f"ready-{writer}").touch()
while not pathlib.Path(run_dir, "go").exists():  # every writer starts at once
    time.sleep(0.001)
cmds = [COMMANDS[(writer * each + i) % len(COMMANDS)] for i in range(each)]
print(json.dumps([(request_control(run_dir, c), c) for c in cmds]))
"""


def _start_writers(run_dir: Path) -> list[subprocess.Popen]:
    """WRITERS interpreters (plain subprocesses: multiprocessing's spawn would re-run whatever __main__ an
    earlier test left behind), released together once all are up, since a start takes longer than 50 requests."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir), str(w), str(EACH)], cwd=root, env=env,
                              stdout=subprocess.PIPE, text=True) for w in range(WRITERS)]
    deadline = time.monotonic() + 600  # starting 4 interpreters is slow on a loaded machine
    while not all((run_dir / f"ready-{w}").exists() for w in range(WRITERS)):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
                p.wait()
            pytest.fail("a writer did not start")
        time.sleep(0.01)
    (run_dir / "go").touch()
    return procs


def _api_consumer(run_dir):
    """Polls as the loop's contract says: read after the last seq, apply, acknowledge."""
    seen, last = [], 0

    def poll():
        nonlocal last
        pending = read_control(run_dir, last)
        for req in pending.requests:
            seen.append((req["seq"], req["command"]))
            last = req["seq"]
        if pending.applied < last:
            ack_control(run_dir, last)
    return poll, seen


def _loop_consumer(run_dir):
    """The search loop's own poller (stat stamp, read, apply, acknowledge), applying into a list."""
    seen = []
    poller = ControlPoller(run_dir, lambda command: seen.append((poller.seq, command)))
    return poller.poll, seen


@pytest.mark.parametrize("consumer", [_api_consumer, _loop_consumer], ids=["api", "loop"])
def test_concurrent_writers_lose_nothing_and_the_consumer_sees_each_request_once(tmp_path, consumer):
    poll, seen = consumer(tmp_path)
    procs = _start_writers(tmp_path)
    try:
        deadline = time.monotonic() + 600
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:  # consume while they write
            poll()
            time.sleep(0.001)
        sent = [json.loads(p.communicate(timeout=60)[0]) for p in procs if p.returncode == 0]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    sent = [[tuple(r) for r in mine] for mine in sent]
    for _ in range(3):  # the last writes: a correct poller picks them up without a nudge
        poll()
    assert len(sent) == WRITERS, "a writer did not finish"
    sent_all = sorted(r for mine in sent for r in mine)
    seqs = [s for s, _ in sent_all]
    report = {"requests sent": len(sent_all),
              "sequence numbers handed out twice": len(seqs) - len(set(seqs)),
              "writers whose numbers did not increase": sum([s for s, _ in m] != sorted({s for s, _ in m})
                                                            for m in sent),
              "requests lost": (Counter(sent_all) - Counter(seen)).total(),
              "requests seen twice": len(seen) - len(set(seen)),
              "seen out of order": seen != sorted(seen)}
    assert report == {"requests sent": WRITERS * EACH, "sequence numbers handed out twice": 0,
                      "writers whose numbers did not increase": 0, "requests lost": 0, "requests seen twice": 0,
                      "seen out of order": False}
    assert seen == sent_all and seqs == list(range(1, WRITERS * EACH + 1))  # each once, numbered 1..200
    final = json.loads((tmp_path / rundir.CONTROL).read_text())
    assert final["applied"] == WRITERS * EACH and final["requests"] == []  # applied ones are trimmed


def test_requests_are_sequenced_and_unknown_commands_refused(tmp_path):
    assert read_control(tmp_path, 0).requests == ()
    s1 = request_control(tmp_path, "pause")
    s2 = request_control(tmp_path, "stop")
    assert [r["command"] for r in read_control(tmp_path, 0).requests] == ["pause", "stop"]
    assert [r["seq"] for r in read_control(tmp_path, s1).requests] == [s2]
    with pytest.raises(ValueError, match="unknown control command"):
        request_control(tmp_path, "rm -rf")


def test_unapplied_requests_are_never_trimmed(tmp_path):
    for _ in range(120):  # the loop is busy (or not started): nothing is applied yet
        request_control(tmp_path, "derive")
    assert [r["seq"] for r in read_control(tmp_path, 0).requests] == list(range(1, 121))
    ack_control(tmp_path, 100)
    pending = read_control(tmp_path, 0)
    assert pending.applied == 100 and [r["seq"] for r in pending.requests] == list(range(101, 121))
    assert request_control(tmp_path, "stop") == 121
    ack_control(tmp_path, 50)  # a late, lower acknowledgement does not bring anything back
    pending = read_control(tmp_path, 0)
    assert pending.applied == 100 and [r["seq"] for r in pending.requests] == list(range(101, 122))


BAD_REQUESTS = {"seq": 4, "applied": 1, "requests": [
    {"seq": None, "command": "pause"}, {"seq": "x", "command": "stop"}, {"seq": True, "command": "stop"},
    5, "pause", {"seq": 2, "command": "rm -rf"}, {"seq": 3, "command": "pause"}, {"seq": 4, "command": "resume"},
    {"seq": 4, "command": "stop"}]}

MALFORMED = {
    "requests not a list": ('{"requests": 5}', [], 1),
    "top-level list": ("[1, 2]", [], 1),
    "garbage": ("garbage {", [], 1),
    "empty": ("", [], 1),
    "bad counters": ('{"seq": "x", "applied": null, "requests": []}', [], 2),
    "bad requests among good ones": (json.dumps(BAD_REQUESTS), [(3, "pause"), (4, "resume")], 7),
}


@pytest.mark.parametrize(("text", "good", "n_ignored"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_control_json_is_read_without_raising(tmp_path, caplog, text, good, n_ignored):
    (tmp_path / rundir.CONTROL).write_text(text)
    pending = read_control(tmp_path, 0)
    assert [(r["seq"], r["command"]) for r in pending.requests] == good
    assert len(pending.ignored) == n_ignored and all("\n" not in line for line in pending.ignored)
    assert len(caplog.records) == n_ignored                     # one warning line each
    seq = request_control(tmp_path, "stop")                     # a writer repairs the file, keeping the good ones
    assert seq > max([s for s, _ in good], default=0)
    repaired = read_control(tmp_path, 0)
    assert repaired.ignored == () and [(r["seq"], r["command"]) for r in repaired.requests] == [*good, (seq, "stop")]


def test_the_loop_skips_bad_requests_applies_good_ones_and_acknowledges(tmp_path, caplog):
    applied = []
    poller = ControlPoller(tmp_path, applied.append)  # the loop starts, then a bad file arrives
    (tmp_path / rundir.CONTROL).write_text(json.dumps(BAD_REQUESTS))
    poller.poll()
    assert applied == ["pause", "resume"] and poller.seq == 4
    assert read_control(tmp_path, 0).applied == 4
    for text in ('{"requests": 5}', "[1, 2]", "garbage {"):
        (tmp_path / rundir.CONTROL).write_text(text)
        poller.poll()
        poller.poll()
    assert applied == ["pause", "resume"]


def test_requests_from_before_the_loop_started_are_stale(tmp_path):
    request_control(tmp_path, "stop")  # meant for a process that is gone (e.g. the one a resume replaces)
    applied = []
    poller = ControlPoller(tmp_path, applied.append)
    poller.poll()
    request_control(tmp_path, "pause")
    poller.poll()
    assert applied == ["pause"]

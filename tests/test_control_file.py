"""control.json: lossless under concurrent writers, never trimmed before the loop applied it, tolerant of junk."""

import json
import multiprocessing
import time
from collections import Counter

import pytest

from engine import rundir
from engine.control_file import COMMANDS, ControlPoller, ack_control, read_control, request_control

WRITERS, EACH = 4, 50


def _write_requests(run_dir: str, writer: int, start, out) -> None:
    """One writer process: wait until every writer is up, then send EACH requests as fast as it can."""
    start.wait()
    out.put([(request_control(run_dir, COMMANDS[(writer * EACH + i) % len(COMMANDS)]),
              COMMANDS[(writer * EACH + i) % len(COMMANDS)]) for i in range(EACH)])


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
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(WRITERS + 1, timeout=600), ctx.Queue()  # spawning 4 interpreters is slow when loaded
    procs = [ctx.Process(target=_write_requests, args=(str(tmp_path), w, start, out), daemon=True)
             for w in range(WRITERS)]
    for p in procs:
        p.start()
    start.wait()  # all writers start at once (a process start takes longer than 50 requests)
    sent, deadline = [], time.monotonic() + 600
    while len(sent) < WRITERS and time.monotonic() < deadline:  # consume while the writers write
        poll()
        while not out.empty():
            sent.append(out.get())
        time.sleep(0.001)
    for p in procs:
        p.join(10)
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

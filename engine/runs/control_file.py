"""control.json: requests (pause, resume, step, stop, derive) to a search loop from any process.

    {"seq": 7, "applied": 5, "requests": [{"seq": 6, "command": "pause", "time": ...}, {"seq": 7, ...}]}

Writers (`request_control`) and the loop's acknowledgement (`ack_control`) read, change and replace the
file under an exclusive inter-process lock on the sidecar `.control.lock` (control.json itself is replaced
atomically, so it cannot carry the lock), so two writers at once never lose a request or share a number.
`applied` is the last sequence number the loop has applied; a rewrite drops only requests at or below it,
so a request is never trimmed before the loop has seen it. The loop reads without the lock (`read_control`:
an atomic replace is never half-read) and skips a malformed file or request with a one-line warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from engine.core.atomic import loads_json, write_json_atomic
from engine.runs import rundir

__all__ = ["COMMANDS", "Pending", "request_control", "read_control", "ack_control", "control_stamp", "ControlPoller"]

COMMANDS = ("pause", "resume", "step", "stop", "derive")
_LOCK_TIMEOUT_S = 30.0  # the lock is held for one small read and one write; longer means a hung holder
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    """What `read_control` found: the requests above `after` (well-formed, oldest first), one line per
    malformed entry it skipped, the highest sequence number in the file and the last one applied."""

    requests: tuple[dict[str, Any], ...] = ()
    ignored: tuple[str, ...] = ()
    seq: int = 0
    applied: int = 0


def _number(value: Any, least: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= least else None


def _load(path: Path) -> Pending:
    """Every request of control.json, well-formed ones sorted by seq; never raises on its content."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return Pending()
    except OSError as e:  # a directory, no permission: nothing to apply, and said so
        return Pending(ignored=(f"{path.name} is unreadable: {e}",))
    try:
        data = loads_json(text)
    except ValueError:  # nesting too deep included: a bomb of brackets is just another malformed file
        return Pending(ignored=(f"{path.name} is not JSON: {text[:60]!r}",))
    if not isinstance(data, dict):
        return Pending(ignored=(f"{path.name} is not a JSON object: {text[:60]!r}",))
    ignored = []
    top = {}
    for key in ("seq", "applied"):
        top[key] = _number(data.get(key, 0), 0)
        if top[key] is None:
            ignored.append(f"{path.name}: {key} is not a non-negative integer: {data[key]!r}")
    applied = top["applied"] or 0
    raw = data.get("requests", [])
    if not isinstance(raw, list):
        ignored.append(f"{path.name}: requests is not a list: {raw!r}")
        raw = []
    seqs = [top["seq"] or 0, applied]
    good: dict[int, dict[str, Any]] = {}
    for req in raw:
        seq = _number(req.get("seq"), 1) if isinstance(req, dict) else None
        if seq is None:
            ignored.append(f"{path.name}: request without a positive integer seq: {req!r}")
            continue
        seqs.append(seq)
        if req.get("command") not in COMMANDS:
            ignored.append(f"{path.name}: request {seq} has an unknown command: {req.get('command')!r}")
        elif seq in good:
            ignored.append(f"{path.name}: request {seq} appears twice; the first one counts")
        else:
            good[seq] = {"seq": seq, "command": req["command"], "time": req.get("time")}
    return Pending(requests=tuple(good[s] for s in sorted(good)), ignored=tuple(ignored), seq=max(seqs),
                   applied=applied)


def _rewrite(run_dir: Path, seq: int, applied: int, requests: list[dict[str, Any]]) -> None:
    # only called under the lock: keeps every request the loop has not applied, whatever their number
    write_json_atomic(run_dir / rundir.CONTROL, {
        "seq": seq, "applied": applied, "requests": [r for r in requests if r["seq"] > applied]})


@contextlib.contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    try:
        with FileLock(run_dir / rundir.CONTROL_LOCK, timeout=_LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise rundir.RunDirError(f"{run_dir / rundir.CONTROL} stayed locked for {_LOCK_TIMEOUT_S:g} s by another "
                                 "process; try again, or delete a stale .control.lock") from None


def request_control(run_dir: str | os.PathLike, command: str) -> int:
    """Append a request to control.json and return its sequence number; the loop polls the file."""
    if command not in COMMANDS:
        raise ValueError(f"unknown control command {command!r}")
    run_dir = Path(run_dir)
    with _lock(run_dir):
        now = _load(run_dir / rundir.CONTROL)
        seq = now.seq + 1
        _rewrite(run_dir, seq, now.applied, [*now.requests, {"seq": seq, "command": command, "time": time.time()}])
    return seq


def ack_control(run_dir: str | os.PathLike, seq: int) -> None:
    """The loop has applied every request up to `seq`: record it, and drop those requests."""
    run_dir = Path(run_dir)
    with _lock(run_dir):
        now = _load(run_dir / rundir.CONTROL)
        applied = max(now.applied, seq)
        _rewrite(run_dir, max(now.seq, applied), applied, list(now.requests))


def read_control(run_dir: str | os.PathLike, after: int) -> Pending:
    """The well-formed requests with a sequence number above `after`, oldest first (no lock needed)."""
    found = _load(Path(run_dir) / rundir.CONTROL)
    for line in found.ignored:
        _log.warning("ignored in %s: %s", run_dir, line)
    return Pending(requests=tuple(r for r in found.requests if r["seq"] > after), ignored=found.ignored,
                   seq=found.seq, applied=found.applied)


def control_stamp(run_dir: str | os.PathLike) -> tuple[int, int, int] | None:
    """(mtime, inode, size) of control.json, None without one: poll `read_control` only when it changes.

    Every write replaces the file with a new inode, so two writes within one tick of a coarse mtime clock
    still differ. After a write of its own (`ack_control`) the poller must read again unconditionally: the
    old inode is free then, and a writer's next file could reuse it within the same tick."""
    try:
        st = (Path(run_dir) / rundir.CONTROL).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


class ControlPoller:
    """The search loop's side of control.json: apply each request once, in order, then acknowledge it.

    `poll()` is cheap when nothing changed (one stat). Requests written before the loop started (or was
    resumed) are stale and skipped: they were meant for a process that is gone. `apply` returns False for a
    request it refuses (a step while running); that is logged, and acknowledged like the others.

    A file whose `applied` is below what this poller has acknowledged lost its history (it was damaged or
    deleted, and a writer started again from seq 1): its requests are new, whatever their numbers."""

    def __init__(self, run_dir: str | os.PathLike, apply: Callable[[str], bool | None]):
        self.run_dir = Path(run_dir)
        self.apply = apply
        self.seq = read_control(self.run_dir, 0).seq  # the last request seen (or skipped as stale)
        self._acked = 0  # the last number this poller wrote as `applied`
        self._stamp: tuple[int, int, int] | None = None

    def poll(self) -> None:
        stamp = control_stamp(self.run_dir)
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        found = read_control(self.run_dir, 0)  # malformed entries: skipped, logged
        if found.applied < self._acked:  # started again from scratch since our last acknowledgement
            self.seq = self._acked = found.applied
        for req in found.requests:
            if req["seq"] <= self.seq:
                continue
            self.seq = req["seq"]
            if self.apply(req["command"]) is False:
                _log.warning("control request %d (%s) to %s refused: the run is not paused", req["seq"],
                             req["command"], self.run_dir)
        if found.applied < self.seq:  # let writers trim what is applied (and what was skipped as stale)
            try:
                ack_control(self.run_dir, self.seq)
            except (OSError, rundir.RunDirError):
                return  # acknowledged on a later poll; the requests were applied once and will not be again
            self._acked = self.seq
            self._stamp = None  # read again: our own write freed an inode a writer's next file may reuse

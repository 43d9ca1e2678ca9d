"""Steering a sweep: pause, resume or stop all of it, or some of its members.

A member is steered as any run is, through its control.json (engine/runs/control_file.py), which its process
polls. The whole sweep has one more file, `sweep_control.json` in the sweep directory, read before a member
starts: while the sweep is paused no member starts (a member process that begins waits), and once it is stopped
none starts (a member process that begins ends at once, exit HELD, and stays pending). Without it, stopping every
running member would only let the driver start the pending ones. `sweep --resume` sets it back to running, as
does a resume of the whole sweep.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from engine.core.atomic import write_json_atomic
from engine.runs.control_file import request_control
from engine.sweep.member import member_state
from engine.sweep.spec import Sweep

__all__ = ["SWEEP_CONTROL", "HELD", "GATES", "sweep_gate", "set_sweep_gate", "steer", "wait_at_gate"]

SWEEP_CONTROL = "sweep_control.json"
HELD = 4  # a member process's exit status when the sweep was stopped before it began: it stays pending
GATES = {"pause": "paused", "resume": "running", "stop": "stopped"}
_STEERABLE = ("running", "paused", "queued", "stopping")
_POLL_S = 1.0


def sweep_gate(sweep_dir: str | Path) -> str:
    """running, paused or stopped; running when the file is missing or unreadable (a sweep nobody steered)."""
    try:
        state = json.loads((Path(sweep_dir) / SWEEP_CONTROL).read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError, AttributeError, RecursionError):
        return "running"
    return state if state in GATES.values() else "running"


def set_sweep_gate(sweep_dir: str | Path, state: str) -> None:
    if state not in GATES.values():
        raise ValueError(f"a sweep is running, paused or stopped, not {state!r}")
    write_json_atomic(Path(sweep_dir) / SWEEP_CONTROL, {"state": state, "time": time.time()})


def steer(sweep: Sweep, command: str, names: list[str] | None = None) -> int:
    """Ask the running members (all, or those named) to pause, resume or stop; without names the sweep's gate
    follows too, so members that have not started keep to it. Returns how many members were asked."""
    if command not in GATES:
        raise ValueError(f"unknown sweep command {command!r}; one of {', '.join(GATES)}")
    if not names:
        set_sweep_gate(sweep.path, GATES[command])
    members = [sweep.member(n) for n in names] if names else sweep.members + sweep.trainings
    asked = 0
    for member in members:
        run_dir = sweep.run_dir(member)
        if member_state(run_dir) in _STEERABLE:
            request_control(run_dir, command)
            asked += 1
    return asked


def wait_at_gate(sweep_dir: str | Path) -> str:
    """In a member process before its run begins: wait while the sweep is paused; "running" when it may begin,
    "stopped" when it must not (the sweep was stopped, or the process was asked to end while it waited)."""
    ended: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: ended.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while (gate := sweep_gate(sweep_dir)) == "paused" and not ended:
            time.sleep(_POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return "stopped" if ended else gate

"""A sweep's gate: `sweep_control.json` in the sweep directory, read before a member starts (engine/sweep/control.py
steers it). While the sweep is paused no member starts (a member process that begins waits); once it is stopped
none starts (a member process that begins ends at once, exit HELD, and stays pending). `sweep --resume` and a
resume of the whole sweep set it back to running. A missing or unreadable file reads as running."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from engine.core.atomic import write_json_atomic

__all__ = ["SWEEP_CONTROL", "HELD", "GATES", "sweep_gate", "set_sweep_gate", "wait_at_gate"]

SWEEP_CONTROL = "sweep_control.json"
HELD = 4  # a member process's exit status when the sweep was stopped before it began: it stays pending
GATES = {"pause": "paused", "resume": "running", "stop": "stopped"}
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

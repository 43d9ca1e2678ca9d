"""Steering a sweep: pause, resume or stop all of it, or some of its members.

A member is steered as any run is, through its control.json (engine/runs/control_file.py), which its process
polls. Steering the whole sweep also sets its gate (engine/sweep/gate.py), which the members that have not begun
keep to: without it, stopping every running member would only let the driver start the pending ones.
"""

from __future__ import annotations

from engine.runs.control_file import request_control
from engine.sweep.gate import GATES, set_sweep_gate
from engine.sweep.member import member_state
from engine.sweep.spec import Sweep

__all__ = ["steer"]

_STEERABLE = ("running", "paused", "queued", "stopping")


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

"""Running a sweep's members: on this machine (a pool of child processes) or on a Ray cluster.

Both backends start each member as `python -m engine.sweep.member` (engine/sweep/member.py), so a member that
fails or is killed is marked with its reason while the others go on, and running the sweep again (`--resume`)
skips finished members, continues stopped or interrupted ones from their checkpoints and starts the rest.

The local pool divides the cores: `jobs` members at a time, each with `threads` torch threads (one by
default: searches of this size scale better side by side than with more threads each, docs/threads.md).
Ray is imported only by `run_on_ray`, so neither the dashboard nor a single search ever loads it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from engine.core.atomic import write_json_atomic
from engine.runs import rundir
from engine.sweep.gate import HELD, sweep_gate
from engine.sweep.member import member_state
from engine.sweep.spec import Member, Sweep, SweepError

__all__ = ["LOGS", "OUTCOMES", "run_local", "run_on_ray", "member_states", "check_ray_address"]

LOGS = "logs"               # one stderr log per member
OUTCOMES = "outcomes.json"  # the driver's record of how each member's process ended
_POLL_S = 0.5               # how often the driver looks at its members' processes
_REPORT_S = 5.0             # how often it reports the members' states besides their starts and ends
_ROOT = Path(__file__).resolve().parents[2]  # the project, importable by every member process


def _member_command(sweep: Sweep, member: Member, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "engine.sweep.member", str(sweep.path), member.name]
    return cmd + (["--threads", str(threads)] if threads is not None else [])


def _member_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(_ROOT) + (os.pathsep + path if path else "")}


def member_states(sweep: Sweep) -> dict[str, str]:
    """Each member's state from its run directory; a member whose process ended before its run began (bad
    data, a device that is not there: nothing is kept) is failed, as the driver recorded."""
    outcomes = _read_outcomes(sweep)
    states = {}
    for m in sweep.members + sweep.trainings:
        state = member_state(sweep.run_dir(m))
        if state == "pending" and outcomes.get(m.name, {}).get("exit", 0) not in (0, HELD):
            state = "failed"
        states[m.name] = state
    return states


def _busy_elsewhere(sweep: Sweep, member: Member) -> bool:
    """A member still written by a process this driver did not start (the previous driver's child, left running
    when that driver was killed): wait for it rather than start a second writer (its lock would refuse one)."""
    status = rundir.read_status(sweep.run_dir(member)) if (sweep.run_dir(member) / rundir.CONFIG).exists() else {}
    return member_state(sweep.run_dir(member)) in ("running", "paused", "stopping", "queued") and bool(status)


def _reason(sweep: Sweep, member: Member, code: int) -> str:
    run_dir = sweep.run_dir(member)
    status = rundir.read_status(run_dir) if (run_dir / rundir.CONFIG).exists() else {}
    if status.get("error"):
        return str(status["error"])[:300]
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    log = sweep.path / LOGS / f"{member.name}.log"
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return (lines[-1] if lines else f"exit status {code}")[:300]


def _record(sweep: Sweep, outcomes: dict[str, Any], member: Member, code: int) -> None:
    state = member_state(sweep.run_dir(member))
    if state == "pending" and code not in (0, HELD):
        state = "failed"  # it ended before its run began: nothing was kept, the log says why
    outcomes[member.name] = {"exit": code, "state": state, "time": time.time(),
                             **({} if state == "finished" else {"reason": _reason(sweep, member, code)})}
    write_json_atomic(sweep.path / OUTCOMES, outcomes)


def _read_outcomes(sweep: Sweep) -> dict[str, Any]:
    import json

    try:
        data = json.loads((sweep.path / OUTCOMES).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def _stages(sweep: Sweep, only: list[str] | None) -> list[Callable[[], list[Member]]]:
    """The searches, then the trainings of the cells they found (and the baselines): each stage's members not
    finished yet, worked out when the stage begins. A training whose search did not finish is left pending."""
    chosen = {n: sweep.member(n) for n in only} if only else None

    def searches() -> list[Member]:
        return [m for m in sweep.members if (chosen is None or m.name in chosen)
                and member_state(sweep.run_dir(m)) != "finished"]

    def trainings() -> list[Member]:
        found = {m.name for m in sweep.members if member_state(sweep.run_dir(m)) == "finished"}
        return [m for m in sweep.trainings if (chosen is None or m.name in chosen)
                and (m.source in found or m.source not in {x.name for x in sweep.members})
                and member_state(sweep.run_dir(m)) != "finished"]

    return [searches, trainings]


def run_local(sweep: Sweep, jobs: int = 1, threads: int | None = 1, only: list[str] | None = None,
              on_change: Callable[[dict[str, str]], None] | None = None) -> dict[str, str]:
    """Run the members not finished yet, `jobs` at a time; returns every member's state at the end. SIGINT and
    SIGTERM stop the running members after their current step, with a checkpoint, and start no more."""
    if jobs < 1:
        raise SweepError("--jobs must be at least 1")
    outcomes = _read_outcomes(sweep)
    (sweep.path / LOGS).mkdir(exist_ok=True)
    stopping: list[int] = []
    running: dict[str, subprocess.Popen] = {}

    def on_signal(signum, frame):
        stopping.append(signum)
        for proc in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for stage in _stages(sweep, only):
            if not stopping and sweep_gate(sweep.path) != "stopped":
                _run_stage(sweep, stage(), jobs, threads, running, stopping, outcomes, on_change)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        raise KeyboardInterrupt
    return member_states(sweep)


def _run_stage(sweep: Sweep, todo: list[Member], jobs: int, threads: int | None,
               running: dict[str, subprocess.Popen], stopping: list[int], outcomes: dict[str, Any],
               on_change: Callable[[dict[str, str]], None] | None) -> None:
    """Run `todo`, `jobs` at a time, until every member ended (or a stop was asked and the running ones ended).
    `on_change` gets the members' states at each start and end, and every _REPORT_S: a member started a moment
    ago is still pending until its process has written its run directory."""
    reported = time.monotonic()
    while (todo and not stopping) or running:
        gate = sweep_gate(sweep.path)  # steered as a whole (engine/sweep/gate.py): start none while not running
        if gate == "stopped":
            todo.clear()
        while todo and len(running) < jobs and not stopping and gate == "running":
            member = next((m for m in todo if not _busy_elsewhere(sweep, m)), None)
            if member is None:
                break  # every member left is being finished by a process of the previous driver
            todo.remove(member)
            log = open(sweep.path / LOGS / f"{member.name}.log", "ab")
            running[member.name] = subprocess.Popen(
                _member_command(sweep, member, threads), stdout=log, stderr=log, env=_member_env(),
                start_new_session=True)  # a Ctrl-C reaches the driver, which stops the members in order
            log.close()
            if on_change:
                on_change(member_states(sweep))
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                _record(sweep, outcomes, sweep.member(name), proc.returncode)
                if on_change:
                    on_change(member_states(sweep))
        if on_change and time.monotonic() - reported >= _REPORT_S:
            on_change(member_states(sweep))
            reported = time.monotonic()
        if running or (todo and not stopping):
            time.sleep(_POLL_S)


def check_ray_address(address: str | None) -> None:
    """A Ray address that does not answer is refused in one line within seconds, not after Ray's own retries."""
    if not address or address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port or (10001 if address.startswith("ray://") else 6379)
    if not host:
        raise SweepError(f"--ray-address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise SweepError(f"the Ray cluster at {address} does not answer ({e.strerror or e})") from None


def run_on_ray(sweep: Sweep, threads: int | None = 1, gpus_per_run: float = 0.0, address: str | None = None,
               only: list[str] | None = None, num_cpus: int | None = None,
               on_change: Callable[[dict[str, str]], None] | None = None) -> dict[str, str]:
    """Run the members not finished yet as Ray tasks (one CPU per torch thread, `gpus_per_run` GPUs each: 0.5
    puts two members on one GPU). `address`: a cluster (`ray start --head`; also RAY_ADDRESS), or None for a
    Ray started here. Every node must reach the sweep directory at the same path (docs/distributed.md)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_ray_address(address)
    if gpus_per_run < 0:
        raise SweepError("--gpus-per-run must be 0 or more")
    import ray  # only a Ray sweep loads Ray

    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(address=address, **kwargs)
    pending: dict[Any, Member] = {}
    try:
        task = ray.remote(_run_member_process)
        outcomes = _read_outcomes(sweep)
        (sweep.path / LOGS).mkdir(exist_ok=True)
        for stage in _stages(sweep, only):
            for member in stage():
                ref = task.options(num_cpus=max(threads or 1, 1), num_gpus=gpus_per_run).remote(
                    _member_command(sweep, member, threads), str(sweep.path / LOGS / f"{member.name}.log"),
                    _member_env())
                pending[ref] = member
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=_REPORT_S)
                if not done:  # nothing ended: report the states the members' own files give
                    if on_change:
                        on_change(member_states(sweep))
                    continue
                member = pending.pop(done[0])
                _record(sweep, outcomes, member, ray.get(done[0]))
                if on_change:
                    on_change(member_states(sweep))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # a cancelled task's member process ends; it resumes from its last checkpoint
        raise
    finally:
        if started:
            ray.shutdown()
    return member_states(sweep)


def _run_member_process(command: list[str], log: str, env: dict[str, str]) -> int:
    """A Ray task: one member's process, its output appended to the member's log on the shared storage."""
    with open(log, "ab") as f:
        return subprocess.run(command, stdout=f, stderr=f, env=env).returncode

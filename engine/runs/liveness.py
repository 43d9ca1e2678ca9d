"""Is a run's writer still alive? The heartbeat and pid rules behind the "interrupted" state.

A live loop refreshes status.json at least every HEARTBEAT_S seconds (also while paused). A run whose
status says it is active but whose writer is gone is shown as interrupted:

- same host: its pid is dead (a long step is not a death, however old the heartbeat);
- another host: no heartbeat for more than STALE_S seconds;
- no status.json at all, and config.json is older than STALE_S: killed before its first status line.

Every rule that reads the clock takes `now` (seconds since the epoch) so its boundary can be tested.
"""

from __future__ import annotations

import math
import os
import socket
import time
from typing import Any

from engine.runs.snapshot import ACTIVE_STATES

__all__ = ["HEARTBEAT_S", "STALE_S", "pid_alive", "is_interrupted", "displayed_state"]

HEARTBEAT_S = 5.0
STALE_S = 60.0


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_interrupted(status: dict[str, Any], now: float | None = None) -> bool:
    """An active state whose writer is gone: same host and the pid is dead, or no heartbeat for STALE_S."""
    if status.get("state") not in ACTIVE_STATES:
        return False
    if status.get("host") == socket.gethostname() and isinstance(status.get("pid"), int):
        return not pid_alive(status["pid"])  # same host: the pid says it all (a long step is not a death)
    now = time.time() if now is None else now
    return now - _heartbeat(status) > STALE_S


def _heartbeat(status: dict[str, Any]) -> float:
    """status.json's `updated`; 0 (long ago) for a value that is not a number, so a damaged heartbeat reads as
    a dead writer rather than breaking the listing."""
    value = status.get("updated", 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return float(value)


def displayed_state(status: dict[str, Any], config_mtime: float, now: float | None = None) -> str:
    """The state to show for a run with this status.json (`{}` when it has none) and config.json mtime."""
    now = time.time() if now is None else now
    if not status:
        # killed between writing config.json and its first status line, or still starting
        return "interrupted" if now - config_mtime > STALE_S else "queued"
    return "interrupted" if is_interrupted(status, now) else str(status.get("state", "queued"))

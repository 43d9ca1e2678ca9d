"""How many CPU threads torch uses for a search: the `threads` config field, 0 = chosen from the machine.

On a small CPU the number matters more than it looks: while other work keeps the cores busy, fewer torch
threads run a search step many times faster (the threads wait on each other at the end of each of the many
small kernels of a DARTS cell); on a quiet machine, more are faster (docs/threads.md has the figures,
bench/threads.py measures them). So "auto" looks at the machine when the search starts:

- `OMP_NUM_THREADS` set in the environment: that number (whoever set it meant it);
- quiet (the 1-minute load average is below half a core): every core;
- otherwise: the cores the load leaves idle, rounded down, at most all but one (a core is left for the
  dashboard's server and the browser), and at least one.

`torch.set_num_threads` is process-wide; a thread started afterwards (the dashboard's search thread) uses it.
"""

from __future__ import annotations

import os

__all__ = ["auto_threads", "resolve_threads", "apply_threads", "machine_cpus", "machine_load"]


def machine_cpus() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def machine_load() -> float | None:
    """The 1-minute load average (runnable threads, averaged), or None where the OS has none (Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def auto_threads(cpus: int, load: float | None, env: str | None = None) -> int:
    """The rule for threads=0 (see the module's docstring), on given figures so a test can check it."""
    if env is not None and env.strip().isdigit() and int(env) > 0:
        return int(env)
    if load is None or load < 0.5:
        return cpus
    idle = int(cpus - load)
    return max(1, min(cpus - 1, idle))


def resolve_threads(requested: int) -> int:
    """`requested` (> 0) as is, or the auto choice for this machine now (0)."""
    if requested > 0:
        return requested
    return auto_threads(machine_cpus(), machine_load(), os.environ.get("OMP_NUM_THREADS"))


def apply_threads(requested: int) -> int:
    """Set torch's intra-op threads for what runs next in this process; returns the number set."""
    import torch

    n = resolve_threads(requested)
    torch.set_num_threads(n)
    return n

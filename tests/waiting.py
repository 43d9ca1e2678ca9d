"""Bounded polling for tests that watch a search thread (no fixed sleeps)."""

import time


def wait_for(cond, timeout: float = 120.0, every: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    raise AssertionError("condition not met in time")

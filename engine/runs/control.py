"""Cooperative control of a running search: pause, resume, step once, stop, derive now.

Buttons (or control.json requests) only set state here and return; the loop calls `gate()` between
steps, which returns at once while running, blocks while paused (waking for a single step, a resume or
a stop), and says whether to go on. Every request is idempotent: clicking twice does what once does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Control"]


class Control:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._paused = False
        self._step_pending = False
        self._stop = False
        self._derive = False

    # -- requests (any thread)
    def pause(self) -> None:
        with self._cond:
            if not self._stop:
                self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._step_pending = False
            self._cond.notify_all()

    def step_once(self) -> bool:
        """Allow exactly one step while paused; False (and nothing happens) when not paused."""
        with self._cond:
            if not self._paused or self._stop:
                return False
            self._step_pending = True
            self._cond.notify_all()
            return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def derive_now(self) -> None:
        with self._cond:
            self._derive = True
            self._cond.notify_all()

    def apply(self, command: str) -> None:
        """A request by name (from control.json): pause, resume, step, stop, derive."""
        {"pause": self.pause, "resume": self.resume, "step": self.step_once, "stop": self.stop,
         "derive": self.derive_now}[command]()

    # -- the loop's side
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopping(self) -> bool:
        return self._stop

    def take_derive(self) -> bool:
        """True once per derive request."""
        with self._cond:
            wanted, self._derive = self._derive, False
            return wanted

    def gate(self, idle: Callable[[], None] | None = None, poll_s: float = 0.25) -> bool:
        """Block while paused; True = do the next step, False = stop. `idle` runs every `poll_s` while
        waiting (heartbeat, control.json polling, derive requests)."""
        with self._cond:
            while True:
                if self._stop:
                    return False
                if not self._paused:
                    return True
                if self._step_pending:
                    self._step_pending = False
                    return True
                self._cond.wait(poll_s)
                if idle is not None:
                    self._cond.release()
                    try:
                        idle()
                    finally:
                        self._cond.acquire()

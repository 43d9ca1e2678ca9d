"""Cooperative control of a running search: pause, resume, step once, stop, derive now.

Buttons (or control.json requests) only set state here and return; the loop calls `gate()` between
steps, which returns at once while running, blocks while paused (waking for a single step, a resume or
a stop), and says whether to go on. Pause, resume, stop and derive are idempotent: asking twice does what
once does. Steps are counted: each step request that is accepted (`add_step`, what every control.json
request gets) is one step taken, however many arrive between two looks of the loop; the in-process button
(`step_once`) adds nothing while its previous step is still waiting, so a double click is one step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Control"]


class Control:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._paused = False
        self._steps = 0  # steps accepted while paused and not taken yet
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
            self._steps = 0
            self._cond.notify_all()

    def step_once(self) -> bool:
        """Allow one step while paused (a click while the last one still waits adds none); False (and nothing
        happens) when not paused."""
        with self._cond:
            if not self._paused or self._stop:
                return False
            self._steps = max(self._steps, 1)
            self._cond.notify_all()
            return True

    def add_step(self) -> bool:
        """One more step while paused: n accepted calls are n steps. False (and nothing happens) when not paused:
        the request is refused, not kept for a later pause."""
        with self._cond:
            if not self._paused or self._stop:
                return False
            self._steps += 1
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

    def apply(self, command: str) -> bool:
        """A request by name (from control.json): pause, resume, step, stop, derive. Each step request is one
        step; False when the request was refused (a step while not paused)."""
        done = {"pause": self.pause, "resume": self.resume, "step": self.add_step, "stop": self.stop,
                "derive": self.derive_now}[command]()
        return done is not False

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
                if self._steps:
                    self._steps -= 1
                    return True
                self._cond.wait(poll_s)
                if idle is not None:
                    self._cond.release()
                    try:
                        idle()
                    finally:
                        self._cond.acquire()

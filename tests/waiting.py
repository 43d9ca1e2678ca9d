"""Bounded polling for tests that watch a search thread (no fixed sleeps)."""

import time


def wait_for(cond, timeout: float = 120.0, every: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    raise AssertionError("condition not met in time")


class StopAt:
    """A job callback that asks the run to stop once it has taken step `step` (the loop stops after that step,
    with a checkpoint): how a test makes a run stopped mid-way."""

    def __init__(self, step, control):
        self.step, self.control = step, control

    def on_run_start(self, info): ...
    def on_epoch_end(self, event, row): ...
    def on_state(self, status): ...
    def on_exception(self, exc, tb): ...
    def on_run_end(self, status): ...

    def on_step_end(self, event):
        if event.step == self.step:
            self.control.stop()

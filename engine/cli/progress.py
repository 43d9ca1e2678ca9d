"""What a foreground job shows while it runs: a tqdm bar on a terminal (it fits the terminal's width, redraws in
place and gives the remaining time as h:mm:ss), a line per epoch otherwise (logs, CI), nothing with -q.

tqdm rather than a bar of our own: it measures the terminal, keeps the bar to one line when the terminal is
resized, and `disable=None` turns it off when stderr is not a terminal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["QUIET", "NORMAL", "VERBOSE", "epoch_line", "job_progress", "SweepProgress", "states_line"]

QUIET, NORMAL, VERBOSE = -1, 0, 1  # -q, neither, -v

_EPOCH_KEYS = ("train_loss", "train_acc", "valid_loss", "valid_acc", "valid_ppl", "test_loss", "test_acc", "test_ppl",
               "lr")


def epoch_line(epoch: int, step: int, metrics: dict[str, Any] | None) -> str:
    """`epoch 3 done at step 75: {...}`, the epoch's means, the one line a log gets per epoch."""
    shown = {k: round(v, 4) for k, v in (metrics or {}).items() if k in _EPOCH_KEYS and isinstance(v, (int, float))}
    return f"epoch {epoch + 1} done at step {step}: {json.dumps(shown)}"


def _bar(total: int, initial: int, unit: str):
    from tqdm import tqdm

    # disable=None: a bar only when stderr is a terminal (a log gets the epoch lines instead)
    return tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=None,
                leave=True, smoothing=0.1)


def job_progress(verbosity: int = NORMAL):
    """A callback for a search's or a training's loop: the bar advances each step; each epoch end writes its line
    (above the bar on a terminal): a search's at `on_epoch_end`, a training's at the step whose row carries the
    test scores (its loop has no `on_epoch_end`); a state message (paused by a failed write, stopped early) is
    said on its own line."""
    from engine.runs.hooks import Callback

    class Progress(Callback):
        def __init__(self) -> None:
            self.bar = None

        def _ensure(self, event) -> None:
            if self.bar is None and verbosity > QUIET:
                total = max(int(event.status.get("total_steps") or 1), 1)
                self.bar = _bar(total, initial=max(event.step - 1, 0), unit="step")

        def on_step_end(self, event) -> None:
            self._ensure(event)
            if self.bar is None:
                return
            self.bar.update(event.step - self.bar.n)
            m = event.metrics or {}
            # short, so that the bar keeps its width in an 80-column terminal
            shown = [f"{label} {m[k]:.3f}" for k, label in (("train_loss", "loss"), ("valid_acc", "valid"),
                                                            ("test_acc", "test"), ("valid_ppl", "valid ppl"))
                     if isinstance(m.get(k), (int, float))]
            if shown:
                self.bar.set_postfix_str(f"epoch {event.epoch + 1} " + " ".join(shown), refresh=False)
            if "test_acc" in m or "valid_ppl" in m:  # a training's epoch-end row (convolutional, recurrent)
                self._write(epoch_line(int(m.get("epoch", event.epoch)), event.step, m))

        def on_epoch_end(self, event, genotype_row) -> None:
            if verbosity > QUIET:
                self._write(epoch_line(event.epoch, event.step, event.metrics))

        def on_state(self, status) -> None:
            if status.get("message") and verbosity > QUIET:
                self._write(f"{status['state']}: {status['message']}")
            if status.get("state") in ("finished", "stopped", "failed", "interrupted"):
                self.close()

        def _write(self, text: str) -> None:
            from tqdm import tqdm

            if self.bar is not None and not self.bar.disable:
                tqdm.write(text, file=sys.stderr)  # above the bar, which is redrawn below it
            else:
                print(text, file=sys.stderr, flush=True)

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


_ENDED = ("finished", "failed", "stopped", "interrupted")


def states_line(states: dict[str, str]) -> str:
    """`members: 3 finished, 2 running, 3 pending`: how many members are in each state."""
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return "members: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


class SweepProgress:
    """A sweep driver's `on_change`: on a terminal, a bar of the members that have ended (the running ones and
    the counts by state beside it, the remaining time from the pace so far); otherwise a `states_line` each time
    a member starts or ends; nothing with -q."""

    def __init__(self, states: dict[str, str], verbosity: int = NORMAL, only: list[str] | None = None) -> None:
        """`states`: every member's state before the driver starts (a resumed sweep has members that ended
        already: the bar starts there, so its pace counts only what this driver does); `only`: the members this
        driver runs (--member), all of them by default."""
        self.verbosity, self.only = verbosity, set(only) if only else None
        states = self._mine(states)
        self.bar = (_bar(len(states), initial=self._ended(states), unit="run") if verbosity > QUIET else None)
        self._last = ""

    def _mine(self, states: dict[str, str]) -> dict[str, str]:
        return states if self.only is None else {n: s for n, s in states.items() if n in self.only}

    @staticmethod
    def _ended(states: dict[str, str]) -> int:
        return sum(s in _ENDED for s in states.values())

    def __call__(self, states: dict[str, str]) -> None:
        if self.verbosity <= QUIET:
            return
        states = self._mine(states)
        line = states_line(states)
        if self.bar is None or self.bar.disable:
            if line != self._last:
                print(line, file=sys.stderr, flush=True)
            self._last = line
            return
        self.bar.update(self._ended(states) - self.bar.n)
        self.bar.set_postfix_str(line.removeprefix("members: "), refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

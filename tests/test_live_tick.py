"""The live ticker waits for the step's expected end after a tick that found nothing new (app/panels/live.py)."""

import pytest

from app.panels.live import LONGEST_TICK_S, TICK_MARGIN_S, next_tick_s
from engine.runs.snapshot import Snapshot


def _snap(state="running", steps_per_s=0.25, updated_at=100.0) -> Snapshot:
    return Snapshot(run_id="r", run_dir="/nowhere", state=state, steps_per_s=steps_per_s, updated_at=updated_at)


def test_a_tick_that_found_nothing_waits_for_the_steps_expected_end():
    # a step every 4 s, the last one swapped at t=100: the next is due at 104 (plus the margin)
    assert next_tick_s(_snap(), 1.0, now=101.0) == pytest.approx(3.0 + TICK_MARGIN_S)
    assert next_tick_s(_snap(), 1.0, now=103.5) == 1.0  # due sooner than the refresh: no faster than refresh_s
    assert next_tick_s(_snap(), 1.0, now=110.0) == 1.0  # late step: look every refresh_s


def test_slow_steps_are_still_looked_at_every_few_seconds():
    # 100 s steps: a control sent from another process, or the step's end, shows within LONGEST_TICK_S
    assert next_tick_s(_snap(steps_per_s=0.01), 1.0, now=100.5) == LONGEST_TICK_S
    assert next_tick_s(_snap(steps_per_s=0.01), 10.0, now=100.5) == 10.0  # a longer chosen refresh wins


@pytest.mark.parametrize("snap", [_snap(state="paused"), _snap(state="stopping"), _snap(steps_per_s=None),
                                  _snap(steps_per_s=0.0), _snap(updated_at=0.0)],
                         ids=["paused", "stopping", "no speed yet", "zero speed", "never updated"])
def test_without_a_running_speed_it_ticks_every_refresh(snap):
    assert next_tick_s(snap, 1.0, now=101.0) == 1.0

import threading
import time

from engine.runs.control import Control


def test_gate_runs_pauses_steps_once_and_stops():
    c = Control()
    assert c.gate() is True
    c.pause()
    assert c.step_once() is True
    assert c.step_once() is True          # a double click still allows exactly one step
    assert c.gate() is True
    released = []
    t = threading.Thread(target=lambda: released.append(c.gate(poll_s=0.01)))
    t.start()
    time.sleep(0.05)
    assert released == []                 # paused with no step pending: the loop waits
    c.stop()
    t.join(2)
    assert released == [False]


def test_step_once_is_refused_while_running_and_pause_ignored_while_stopping():
    c = Control()
    assert c.step_once() is False
    c.stop()
    c.pause()
    assert c.paused is False and c.stopping is True
    assert c.gate() is False


def test_resume_wakes_a_paused_gate_and_derive_is_taken_once():
    c = Control()
    c.pause()
    c.derive_now()
    c.derive_now()
    assert c.take_derive() is True and c.take_derive() is False
    out = []
    t = threading.Thread(target=lambda: out.append(c.gate(poll_s=0.01)))
    t.start()
    c.resume()
    t.join(2)
    assert out == [True]


def test_idle_callback_runs_while_paused():
    c = Control()
    c.pause()
    calls = []

    def idle():
        calls.append(1)
        if len(calls) == 3:
            c.resume()

    assert c.gate(idle=idle, poll_s=0.01) is True
    assert len(calls) == 3

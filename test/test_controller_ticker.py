"""The control clock thread: ticks until stopped, skips instead of bursting, survives errors."""
import threading
import time

import pytest
from rt2_ros.controller.ticker import SteadyTicker

WAIT_S = 10.0


def test_ticks_until_stopped_and_not_after():
    enough = threading.Event()
    calls = []

    def tick():
        calls.append(time.monotonic())
        if len(calls) >= 10:
            enough.set()

    ticker = SteadyTicker(0.005, tick)
    ticker.start()
    assert enough.wait(WAIT_S), f'only {len(calls)} ticks in {WAIT_S} s'
    assert ticker.stop(timeout=2.0)
    assert not ticker.running
    count = len(calls)
    assert ticker.ticks == count
    time.sleep(0.05)  # a stopped ticker must stay silent; there is no event for "nothing"
    assert len(calls) == count


def test_a_slow_tick_skips_the_missed_ones_instead_of_bursting():
    period = 0.01
    done = threading.Event()
    calls = []

    def tick():
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(4.5 * period)  # blocks through four deadlines
        if len(calls) >= 8:
            done.set()

    ticker = SteadyTicker(period, tick)
    ticker.start()
    assert done.wait(WAIT_S)
    ticker.stop()
    assert ticker.skipped >= 3, ticker.skipped
    slow_end = calls[0] + 4.5 * period
    # Without skipping, the four missed deadlines would fire back to back right after the slow
    # tick; with it at most the current (late) tick and the next on-time one fall in a period.
    assert sum(1 for t in calls[1:] if t < slow_end + period * 0.9) <= 2, \
        [round((t - calls[0]) * 1000, 1) for t in calls]


def test_an_error_is_reported_and_ticking_goes_on():
    errors = []
    done = threading.Event()
    count = [0]

    def tick():
        count[0] += 1
        if count[0] == 2:
            raise RuntimeError('boom')
        if count[0] >= 5:
            done.set()

    ticker = SteadyTicker(0.005, tick, on_error=errors.append)
    ticker.start()
    assert done.wait(WAIT_S)
    ticker.stop()
    assert len(errors) == 1 and str(errors[0]) == 'boom'


def test_stop_from_inside_a_tick_does_not_deadlock():
    stopped = threading.Event()
    holder = {}

    def tick():
        holder['ticker'].stop()
        stopped.set()

    holder['ticker'] = SteadyTicker(0.005, tick)
    holder['ticker'].start()
    assert stopped.wait(WAIT_S)
    assert holder['ticker'].stop(timeout=2.0)
    assert holder['ticker'].ticks == 1


@pytest.mark.parametrize('period', [0.0, -1.0, float('nan')])
def test_period_must_be_positive(period):
    with pytest.raises(ValueError, match='period'):
        SteadyTicker(period, lambda: None)


def test_a_realtime_priority_is_set_on_the_control_thread_only_or_the_reason_is_given():
    import os
    seen = {}
    done = threading.Event()

    def tick():
        seen['policy'] = os.sched_getscheduler(0)
        done.set()

    ticker = SteadyTicker(0.005, tick, realtime_priority=10)
    ticker.start()
    assert done.wait(WAIT_S)
    ticker.stop()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's thread is untouched
    if ticker.priority_error is None:
        assert seen['policy'] == os.SCHED_FIFO
    else:  # no CAP_SYS_NICE here: it still ticks, at normal priority, and says why
        assert seen['policy'] == os.SCHED_OTHER
        assert 'SCHED_FIFO priority 10 not set' in ticker.priority_error


@pytest.mark.parametrize('priority', [-1, 100])
def test_a_priority_outside_0_to_99_is_refused(priority):
    with pytest.raises(ValueError, match='0 \\(off\\) to 99'):
        SteadyTicker(0.01, lambda: None, realtime_priority=priority)

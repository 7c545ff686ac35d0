"""The action queue: steps on the control clock, chunk merging, stale results."""
import numpy as np
import pytest
from rt2_ros.controller.action_queue import ActionQueue

T = 0.1


def _chunk(*rows):
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _displacement(queue, t0, t1, dt):
    """Integrate the plan the way the control loop does: tick by tick, weighted segments."""
    total = 0.0
    t = t0
    while t < t1 - 1e-12:
        queue.advance(t)
        total += sum(step.values[0] / T * w * dt for step, w in queue.segments(t, t + dt))
        t += dt
    return total


def test_single_step_is_spread_over_its_period_once():
    queue = ActionQueue(T)
    assert queue.add_chunk(_chunk([0.03]), None, obs_stamp=0.95, now=1.0).accepted
    assert queue.active.start == 1.0
    # 7 ms ticks do not divide the 100 ms period; the displacement is still exact
    assert _displacement(queue, 1.0, 1.5, 0.007) == pytest.approx(0.03)
    assert queue.advance(1.2) is None  # executed once, not repeated
    assert queue.counters.steps_executed == 1


def test_next_step_starts_exactly_when_the_active_one_ends():
    queue = ActionQueue(T)
    queue.add_chunk(_chunk([1.0]), None, 0.0, now=1.0)
    queue.add_chunk(_chunk([2.0]), None, 1.05, now=1.07)  # arrives mid-step: queued behind it
    assert [start for start, _ in queue.schedule()] == pytest.approx([1.0, 1.1])
    assert queue.advance(1.099).values[0] == 1.0
    step = queue.advance(1.1)
    assert step.values[0] == 2.0 and step.start == pytest.approx(1.1)
    # a tick straddling the boundary mixes both steps by time
    queue2 = ActionQueue(T)
    queue2.add_chunk(_chunk([1.0]), None, 0.0, now=0.0)
    queue2.add_chunk(_chunk([2.0]), None, 0.01, now=0.02)
    parts = queue2.segments(0.09, 0.11)
    assert [(s.values[0], round(w, 6)) for s, w in parts] == [(1.0, 0.5), (2.0, 0.5)]


def test_starved_queue_reports_less_than_a_full_tick():
    queue = ActionQueue(T)
    queue.add_chunk(_chunk([1.0]), None, 0.0, now=0.0)
    parts = queue.segments(0.09, 0.11)
    assert len(parts) == 1 and parts[0][1] == pytest.approx(0.5)
    assert queue.remaining_s(0.05) == pytest.approx(0.05)
    assert queue.remaining_fraction(0.05) == pytest.approx(0.5)


@pytest.mark.parametrize('rule, expected', [
    ('latest', [1.0, 5.0, 6.0, 7.0]),
    ('average', [1.0, (2.0 + 5.0) / 2, (3.0 + 6.0) / 2, 7.0]),
    ('weighted', [1.0, 0.3 * 2.0 + 0.7 * 5.0, 0.3 * 3.0 + 0.7 * 6.0, 7.0]),
])
def test_overlapping_chunks_merge_per_step(rule, expected):
    queue = ActionQueue(T, merge=rule, weight=0.7, align='arrival')
    queue.add_chunk(_chunk([1.0], [2.0], [3.0]), None, 0.0, now=1.0)
    outcome = queue.add_chunk(_chunk([5.0], [6.0], [7.0]), None, 1.02, now=1.05)
    assert outcome.accepted and outcome.merged == 2 and outcome.appended == 1
    assert [s.values[0] for _, s in queue.schedule()] == pytest.approx(expected)


def test_average_is_a_running_mean_over_every_overlapping_chunk():
    queue = ActionQueue(T, merge='average', align='arrival')
    queue.add_chunk(_chunk([0.0], [3.0], [3.0]), None, 0.0, now=1.0)
    queue.add_chunk(_chunk([6.0], [6.0]), None, 0.5, now=1.01)
    queue.add_chunk(_chunk([9.0]), None, 0.6, now=1.02)
    assert [s.values[0] for _, s in queue.schedule()] == pytest.approx([0.0, 6.0, 4.5])


def test_observation_alignment_drops_elapsed_steps():
    queue = ActionQueue(T, align='observation')
    # image at 1.0, answer at 1.27: steps 0-1 (1.0-1.2) are gone and step 2 (1.2-1.3) mostly;
    # step 3 (meant for 1.3) is the nearest and starts now
    outcome = queue.add_chunk(_chunk([0.0], [1.0], [2.0], [3.0], [4.0]), None, 1.0, now=1.27)
    assert outcome.accepted and outcome.skipped == 3
    assert [s.index for _, s in queue.schedule()] == [3, 4]


def test_auto_alignment_keeps_a_single_late_step():
    queue = ActionQueue(T, align='auto')
    assert queue.add_chunk(_chunk([1.0]), None, 1.0, now=1.4).accepted
    queue2 = ActionQueue(T, align='observation')
    outcome = queue2.add_chunk(_chunk([1.0]), None, 1.0, now=1.4)
    assert not outcome.accepted and outcome.reason == 'elapsed'


def test_observation_alignment_maps_onto_queued_slots_by_time():
    queue = ActionQueue(T, merge='latest', align='observation')
    queue.add_chunk(_chunk([0.0], [1.0], [2.0], [3.0]), None, 1.0, now=1.0)
    # second chunk observed at 1.1 (during step 1), arrives 1.15: its step 0 is for 1.1-1.2,
    # which is executing now; its step 1 lands on slot 1.2 (old step 2), step 2 on 1.3
    queue.add_chunk(_chunk([10.0], [11.0], [12.0], [13.0]), None, 1.1, now=1.15)
    plan = [(round(start, 6), s.values[0]) for start, s in queue.schedule()]
    assert plan == [(1.1, 1.0), (1.2, 11.0), (1.3, 12.0), (1.4, 13.0)]


def test_stale_results_are_dropped_by_observation_time():
    queue = ActionQueue(T)
    assert queue.add_chunk(_chunk([1.0]), None, obs_stamp=2.0, now=2.1).accepted
    late = queue.add_chunk(_chunk([9.0]), None, obs_stamp=1.9, now=2.12)
    same = queue.add_chunk(_chunk([9.0]), None, obs_stamp=2.0, now=2.13)
    assert not late.accepted and late.reason == 'stale'
    assert not same.accepted
    assert queue.counters.chunks_stale == 2
    assert [s.values[0] for _, s in queue.schedule()] == [1.0]
    queue.drop_pending()  # a halt keeps the watermark
    assert not queue.add_chunk(_chunk([9.0]), None, 1.95, now=2.2).accepted
    queue.clear()  # a new episode does not
    assert queue.add_chunk(_chunk([9.0]), None, 1.95, now=2.2).accepted


def test_terminate_flags_follow_their_steps():
    queue = ActionQueue(T)
    queue.add_chunk(_chunk([1.0], [0.0]), [False, True], 0.0, now=0.0)
    assert not queue.advance(0.05).terminate
    assert queue.advance(0.15).terminate


@pytest.mark.parametrize('kwargs', [
    {'period_s': 0.0}, {'period_s': T, 'merge': 'median'}, {'period_s': T, 'weight': 1.5},
    {'period_s': T, 'align': 'later'},
])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ActionQueue(**kwargs)

"""The controller core with a fake clock: requests, execution, halts, dry run, limits."""
import math

import numpy as np
import pytest
from rt2_ros.actions import load_action_space
from rt2_ros.controller.core import ControllerCore, CoreConfig
from rt2_ros.controller.inference import InferenceReply, InferenceRequest
from rt2_ros.controller.mapping import ActionMapper, GripperMap
from rt2_ros.controller.safety import PoseSample, SafetyLimits, SafetyStage
from rt2_ros.controller.state import State
from rt2_ros.policy.base import (
    PolicyInvalidAction, PolicyResult, PolicyTiming, PolicyUnavailable,
)

DT = 0.02
T = 1.0 / 3.0
RT2 = load_action_space('rt2')
CONTINUE = 1.0  # rt2 terminate dim: label 1 = continue, 0 = terminate


def _action(dx=0.0, dy=0.0, dz=0.0, droll=0.0, dpitch=0.0, dyaw=0.0, grip=1.0, term=CONTINUE):
    return [term, dx, dy, dz, droll, dpitch, dyaw, grip]


def _core(space=RT2, limits=None, **config):
    settings = {'control_period_s': DT, 'decision_period_s': 1.0 / space.nominal_rate_hz,
                'image_timeout_s': 0.5, 'policy_watchdog_s': 1.0, 'halt_cycles': 3,
                'retry_interval_s': 0.2}
    settings.update(config)
    cfg = CoreConfig(**settings)
    mapper = ActionMapper(space, cfg.decision_period_s, GripperMap(0.08, 0.0))
    safety = SafetyStage(limits or SafetyLimits(max_linear_speed=0.5, max_angular_speed=2.0,
                                                gripper_min=0.0, gripper_max=0.08))
    core = ControllerCore(mapper, safety, cfg)
    core.activate(0.0)
    return core


def _reply(ticket, *rows, error=None, latency=0.1, terminate=None):
    request = InferenceRequest(ticket.ticket, ticket.episode, ticket.stamp, lambda: None,
                               ticket.sent_at)
    if error is not None:
        return InferenceReply(request, None, error, latency)
    actions = np.array(rows, dtype=np.float64)
    flags = terminate if terminate is not None else [bool(r[0] == 0.0) for r in rows]
    result = PolicyResult(actions, RT2.names, 'raw', PolicyTiming(latency), flags)
    return InferenceReply(request, result, None, latency)


class Loop:
    """Drive the core like the node does: images at 30 Hz, ticks at 50 Hz."""

    def __init__(self, core, now=10.0):
        self.core = core
        self.now = now
        self.outputs = []

    def image(self):
        self.core.on_image(self.now, self.now)

    def run(self, seconds, camera=True):
        end = self.now + seconds
        next_frame = self.now
        new = []
        while self.now < end - 1e-9:
            if camera and self.now >= next_frame:
                self.image()
                next_frame += 1 / 30
            new.append(self.core.tick(self.now))
            self.now = round(self.now + DT, 9)
        self.outputs.extend(new)
        return new


def _started(**kwargs):
    core = _core(**kwargs)
    loop = Loop(core)
    loop.image()
    core.on_instruction('pick up the red block', loop.now)
    return core, loop


def test_request_only_when_running_with_a_fresh_new_frame():
    core = _core()
    assert core.poll_request(10.0) is None  # no instruction
    core.on_instruction('pick', 10.0)
    assert core.poll_request(10.0) is None  # no image
    core.on_image(10.0, 10.0)
    ticket = core.poll_request(10.0)
    assert ticket is not None and ticket.stamp == 10.0 and ticket.instruction == 'pick'
    core.on_image(10.03, 10.03)
    assert core.poll_request(10.03) is None  # one in flight
    core.on_reply(_reply(ticket, _action(dx=0.01)), 10.1)
    assert core.poll_request(10.1) is None  # queue full for the next 1/3 s, latency small
    core.on_image(10.4, 10.4)
    assert core.poll_request(10.4) is not None


def test_single_step_spread_over_the_decision_period_and_not_repeated():
    core, loop = _started()
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dx=0.03, grip=0.0)), loop.now)
    outputs = loop.run(1.0)
    linear = [o.command.linear[0] for o in outputs if o.command is not None]
    moved = sum(v * DT for v in linear)
    assert moved == pytest.approx(0.03, abs=1e-9)
    assert max(linear) == pytest.approx(0.03 / T)
    grip = [o.command.gripper for o in outputs if o.publish_gripper]
    assert grip == [0.0]  # sent once per new step, closed = 0.0


def _run_with_latency(core, loop, latency, seconds):
    """Serve requests with a fixed latency; return per tick whether the arm was moving."""
    pending = []  # (ready time, ticket)
    moving = []
    for _ in range(int(seconds / DT)):
        loop.image()
        ticket = core.poll_request(loop.now)
        if ticket:
            pending.append((loop.now + latency, ticket))
        for ready, t in list(pending):
            if ready <= loop.now + 1e-9:
                core.on_reply(_reply(t, _action(dx=0.02), latency=latency), loop.now)
                pending.remove((ready, t))
        out = core.tick(loop.now)
        moving.append(out.command is not None and out.command.linear[0] > 0)
        loop.now = round(loop.now + DT, 9)
    first = moving.index(True)
    return moving[first:]


@pytest.mark.parametrize('latency_aware', [True, False])
def test_async_requests_keep_motion_continuous_with_a_slow_policy(latency_aware):
    # 250 ms policy, 333 ms steps, LeRobot threshold 0.5: a request at half a step is too late
    core, loop = _started(request_threshold=0.5, latency_aware=latency_aware)
    core.set_enabled(True)
    moving = _run_with_latency(core, loop, 0.25, 4.0)
    stalls = moving.count(False)
    if latency_aware:
        assert stalls == 0
        assert core.counters.decisions >= 10
    else:
        assert stalls >= 10  # stop-and-go: what latency-aware requesting avoids


def test_pipelined_requests_for_a_policy_slower_than_the_period():
    core, loop = _started(max_in_flight=3)
    core.set_enabled(True)
    moving = _run_with_latency(core, loop, 0.6, 5.0)
    assert moving[-100:].count(False) == 0
    assert core.counters.results_stale == 0


def test_rotation_and_dry_run_preview():
    core, loop = _started()
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dyaw=0.1)), loop.now)
    outputs = loop.run(0.1)
    assert all(o.command is None for o in outputs)  # dry run: nothing to actuators
    assert outputs[0].preview.angular[2] == pytest.approx(0.1 / T)


def test_stale_image_halts_within_one_tick_and_resumes():
    core, loop = _started()
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dx=0.01)), loop.now)
    loop.run(0.2)
    last_image = loop.now - DT
    outputs = loop.run(1.0, camera=False)
    halted_at = next(k for k, o in enumerate(outputs) if core.machine.history and o.transitions
                     and o.transitions[-1].state == State.HALTING)
    halted_time = loop.now - 1.0 + halted_at * DT
    assert halted_time - (last_image + 0.5) <= DT + 1e-9
    after = outputs[halted_at:]
    assert [o.command.is_stop for o in after[:3]] == [True] * 3  # zero twists for 3 cycles
    assert all(o.command is None for o in after[3:])  # then silence
    assert core.machine.state == State.HALTED and core.machine.cause == 'stale_image'
    loop.run(0.1)
    assert core.machine.state == State.RUNNING


def test_policy_error_halts_and_retries():
    core, loop = _started()
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    outcome = core.on_reply(_reply(ticket, error=PolicyUnavailable('connection refused')),
                            loop.now)
    assert not outcome.accepted and core.machine.cause == 'policy_error'
    assert core.poll_request(loop.now + 0.05) is None  # retry interval
    loop.run(0.3)
    retry = core.poll_request(loop.now)
    assert retry is not None
    assert core.on_reply(_reply(retry, _action(dx=0.01)), loop.now).accepted
    assert core.machine.state == State.RUNNING


def test_a_good_reply_right_after_a_failed_one_does_not_hide_the_halt():
    core, loop = _started(max_in_flight=2, request_threshold=1.0)
    core.set_enabled(True)
    first = core.poll_request(loop.now)
    core.on_reply(_reply(first, _action(dx=0.02)), loop.now)
    loop.run(0.1)
    failed = core.poll_request(loop.now)
    loop.now = round(loop.now + 0.06, 9)                  # past the pipelining spacing
    loop.image()                                          # a new frame for the second request
    good = core.poll_request(loop.now)
    assert failed is not None and good is not None      # two requests in flight
    core.on_reply(_reply(failed, error=PolicyUnavailable('HTTP 401')), loop.now)
    assert core.machine.cause == 'policy_error'
    late = core.on_reply(_reply(good, _action(dx=0.02)), loop.now + 0.002)  # before any tick
    assert not late.accepted and core.machine.stopped_for_fault
    outputs = loop.run(0.3)
    assert outputs[0].command is not None and outputs[0].command.is_stop   # the halt showed
    retry = core.poll_request(loop.now)
    assert retry is not None
    assert core.on_reply(_reply(retry, _action(dx=0.01)), loop.now).accepted
    assert core.machine.state == State.RUNNING


def test_invalid_action_and_watchdog():
    core, loop = _started()
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, error=PolicyInvalidAction('NaN')), loop.now)
    assert core.machine.cause == 'invalid_action'
    core2, loop2 = _started()
    ticket = core2.poll_request(loop2.now)
    loop2.run(1.1)
    assert core2.machine.cause == 'policy_timeout'
    late = core2.on_reply(_reply(ticket, _action(dx=0.01)), loop2.now)
    assert not late.accepted and late.reason == 'abandoned'


def test_non_finite_result_is_an_invalid_action():
    core, loop = _started()
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dx=math.nan)), loop.now)
    assert core.machine.cause == 'invalid_action'


def test_estop_latch_immediate_stop_and_reset():
    core, loop = _started()
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dx=0.01)), loop.now)
    loop.run(0.1)
    immediate = core.on_estop(True, loop.now)
    assert immediate is not None and immediate.is_stop
    outputs = loop.run(0.5)
    assert all(o.command is None or o.command.is_stop for o in outputs)
    assert core.machine.state == State.ESTOPPED
    assert core.poll_request(loop.now) is None
    core.on_estop(False, loop.now)
    loop.run(0.1)
    assert core.machine.state == State.ESTOPPED
    ok, _ = core.reset(loop.now)
    assert ok and core.machine.state == State.RUNNING


def test_terminate_ends_the_episode_and_new_instruction_starts_one():
    core, loop = _started()
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dx=0.01, term=0.0)), loop.now)
    outputs = loop.run(0.2)
    assert outputs[0].terminated is True
    assert core.machine.state == State.TERMINATED
    assert core.poll_request(loop.now) is None
    old_ticket = ticket
    core.on_instruction('put it back', loop.now)
    assert core.machine.state == State.RUNNING and core.machine.episode == 2
    assert loop.run(0.02)[-1].terminated is False
    dropped = core.on_reply(_reply(old_ticket, _action(dx=0.01)), loop.now)
    assert dropped.reason == 'old_episode'


def test_extreme_policy_values_are_clamped():
    openvla = load_action_space('openvla')
    limits = SafetyLimits(max_linear_speed=0.1, max_angular_speed=0.5)
    core = _core(space=openvla, limits=limits)
    loop = Loop(core)
    loop.image()
    core.on_instruction('go', loop.now)
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    request = InferenceRequest(ticket.ticket, ticket.episode, ticket.stamp, lambda: None)
    extreme = np.array([[1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0]])
    result = PolicyResult(extreme, openvla.names, 'raw', PolicyTiming(0.1))
    core.on_reply(InferenceReply(request, result, None, 0.1), loop.now)
    outputs = [o for o in loop.run(0.3) if o.command is not None]
    assert outputs
    for out in outputs:
        assert np.linalg.norm(out.command.linear) <= 0.1 + 1e-12
        assert np.linalg.norm(out.command.angular) <= 0.5 + 1e-12
    moving = [o for o in outputs if np.any(o.command.linear)]
    assert len(moving) == 10  # one 0.2 s step at 50 Hz, clamped, then standing still
    assert core.safety.counts()['linear_speed'] == len(moving)


def test_disable_while_moving_sends_stop_cycles_then_nothing():
    core, loop = _started()
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dx=0.01)), loop.now)
    loop.run(0.1)
    core.set_enabled(False)
    outputs = loop.run(0.2)
    sent = [o.command for o in outputs if o.command is not None]
    assert len(sent) == 0 or all(c.is_stop for c in sent)


def test_deactivate_halts_and_activate_resumes():
    core, loop = _started()
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dx=0.01)), loop.now)
    loop.run(0.1)
    core.deactivate(loop.now)
    outputs = loop.run(0.2)
    assert [o.command.is_stop for o in outputs[:3]] == [True] * 3
    assert all(o.command is None for o in outputs[3:])
    assert core.machine.state == State.HALTED and core.machine.cause == 'deactivated'
    core.activate(loop.now)
    assert core.machine.state == State.RUNNING


def test_pose_mode_integrates_targets_from_the_measured_pose():
    core, loop = _started(output_mode='pose')
    core.set_enabled(True)
    pose = PoseSample(np.array([0.4, 0.0, 0.2]), np.array([0.0, 0.0, 0.0, 1.0]), loop.now)
    core.on_pose(pose)
    ticket = core.poll_request(loop.now)
    core.on_reply(_reply(ticket, _action(dz=0.02)), loop.now)
    out = core.tick(loop.now)
    assert out.pose_target is not None
    assert out.pose_target.position[2] == pytest.approx(0.2 + 0.02 / T * DT)
    core.on_pose(PoseSample(pose.position, pose.orientation, loop.now - 5.0))
    assert core.tick(loop.now + DT).pose_target is None  # no fresh pose: no target


def test_out_of_order_results_are_dropped_as_stale():
    core, loop = _started(max_in_flight=2)
    older = core.poll_request(loop.now)
    loop.now += 0.05
    loop.image()
    newer = core.poll_request(loop.now)
    assert older and newer and newer.stamp > older.stamp
    assert core.on_reply(_reply(newer, _action(dx=0.02)), loop.now).accepted
    late = core.on_reply(_reply(older, _action(dx=-0.02)), loop.now + 0.01)
    assert not late.accepted and late.reason == 'stale'
    assert core.counters.results_stale == 1
    assert core.queue.active.values[1] == 0.02


def test_results_older_than_max_result_age_are_dropped():
    core, loop = _started(max_result_age_s=0.2)
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    late = core.on_reply(_reply(ticket, _action(dx=0.02), latency=0.25), ticket.stamp + 0.25)
    assert not late.accepted and late.reason.startswith('too old')
    assert core.counters.results_stale == 1 and len(core.queue) == 0
    loop.now = round(ticket.stamp + 0.26, 9)
    loop.image()
    fresh = core.poll_request(loop.now)
    assert fresh is not None and fresh.stamp > ticket.stamp
    assert core.on_reply(_reply(fresh, _action(dx=0.02)), fresh.stamp + 0.15).accepted


def test_executed_displacement_per_period_matches_each_delta_without_jumps():
    # decisions keep arriving while the previous step runs; each 1/3 s step moves exactly its
    # delta, and consecutive commands never jump by more than the difference of two steps
    core, loop = _started()
    core.set_enabled(True)
    deltas = [0.01, 0.03, -0.02, 0.0, 0.025]
    executed = []
    for dx in deltas:
        ticket = None
        while ticket is None:
            loop.image()
            ticket = core.poll_request(loop.now)
            if ticket is None:
                executed.append(core.tick(loop.now))
                loop.now = round(loop.now + DT, 9)
        assert core.on_reply(_reply(ticket, _action(dx=dx)), loop.now).accepted
    executed.extend(loop.run(2.0))
    speeds = [o.command.linear[0] for o in executed if o.command is not None]
    assert sum(v * DT for v in speeds) == pytest.approx(sum(deltas), abs=1e-9)
    for dx in deltas:  # each step runs at its own delta / T for most of its period
        assert sum(v == pytest.approx(dx / T, abs=1e-9) for v in speeds) >= int(T / DT) - 2
    biggest_change = max(abs(a - b) for a, b in zip(deltas, deltas[1:] + [0.0])) / T
    assert max(abs(a - b) for a, b in zip(speeds, speeds[1:])) <= biggest_change + 1e-9

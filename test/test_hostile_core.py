"""
The controller core against hostile clocks and sensors (camera stamps, sim time, a NaN pose).

Camera stamps far ahead or behind, sim time paused or jumping back, a broken end-effector pose.

Fake clock, no ROS: what the node does with these faults over DDS is in test_hostile_node.py and
test_hostile_sim_time.py; here each rule is pinned down tick by tick.
"""
import numpy as np
import pytest
from rt2_ros.controller.safety import (
    CommandRejected, MotionCommand, PoseSample, SafetyLimits, SafetyStage,
)
from rt2_ros.controller.state import State
from test_controller_core import _action, _reply, _started, DT

TIMEOUT = 0.5  # _core()'s image_timeout_s


def _moving(core, loop, dx=0.02):
    core.set_enabled(True)
    ticket = core.poll_request(loop.now)
    assert core.on_reply(_reply(ticket, _action(dx=dx)), loop.now).accepted
    out = loop.run(0.1)
    assert out[-1].command is not None and out[-1].command.linear[0] > 0
    return out


def _serve(core, loop, seconds, stamp_offset=0.0, dx=0.02):
    """Camera frames stamped now + stamp_offset at 50 Hz; every request answered at once."""
    outputs, requested = [], []
    for _ in range(int(round(seconds / DT))):
        core.on_image(loop.now + stamp_offset, loop.now)
        ticket = core.poll_request(loop.now)
        if ticket is not None:
            requested.append(ticket.stamp)
            core.on_reply(_reply(ticket, _action(dx=dx)), loop.now)
        outputs.append(core.tick(loop.now))
        loop.now = round(loop.now + DT, 9)
    return outputs, requested


def _halt_index(outputs, cause):
    return next(k for k, o in enumerate(outputs) for t in o.transitions
                if t.state == State.HALTING and t.cause == cause)


def test_a_frame_stamped_far_ahead_halts_at_once_and_is_never_used():
    core, loop = _started()
    _moving(core, loop)
    outputs, requested = _serve(core, loop, 0.2, stamp_offset=100.0)
    assert requested == []  # a decision on it would block every correctly stamped frame
    assert _halt_index(outputs, 'stale_image') == 0
    assert outputs[0].command.is_stop
    assert 'ahead of the clock' in core.machine.detail
    # the camera clock is right again: fresh frames are used and the arm moves
    outputs, requested = _serve(core, loop, 0.3)
    assert requested and core.machine.state == State.RUNNING
    assert outputs[-1].command.linear[0] > 0


def test_a_frame_stamped_slightly_ahead_is_fresh_and_silence_still_halts():
    core, loop = _started()
    _moving(core, loop)
    ahead = 0.8 * TIMEOUT
    outputs, requested = _serve(core, loop, 0.2, stamp_offset=ahead)
    assert requested and core.machine.state == State.RUNNING
    last_arrival = loop.now - DT
    outputs = loop.run(1.0, camera=False)
    halted = _halt_index(outputs, 'stale_image')
    halted_at = loop.now - 1.0 + halted * DT
    # by arrival: the stamp alone would have looked fresh for another 0.4 s
    assert halted_at - (last_arrival + TIMEOUT) <= DT + 1e-9
    assert 'no image for' in core.machine.history[-2].detail or \
        'no image for' in core.machine.detail


def test_a_frame_received_before_sim_time_starts_is_judged_by_its_stamp():
    """Sim time reads 0 until the first /clock: that is no arrival time (replay-test start-up)."""
    core, loop = _started()
    core.on_image(loop.now, 0.0)  # the frame beat the first /clock message
    assert core.poll_request(loop.now) is not None
    assert core.machine.state == State.RUNNING
    outputs = loop.run(TIMEOUT + 2 * DT, camera=False)  # ...and the camera then stops
    assert _halt_index(outputs, 'stale_image') <= int(TIMEOUT / DT) + 1


def test_a_camera_clock_jumping_far_back_halts_and_recovers_when_it_is_right():
    core, loop = _started()
    _moving(core, loop)
    outputs, requested = _serve(core, loop, 0.2, stamp_offset=-30.0)
    assert requested == [] and _halt_index(outputs, 'stale_image') == 0
    outputs, requested = _serve(core, loop, 0.3)
    assert requested and outputs[-1].command.linear[0] > 0


def test_sim_time_paused_halts_with_stop_commands_and_resumes_when_it_moves():
    core, loop = _started(halt_cycles=3)
    _moving(core, loop)
    frozen = loop.now
    # the node's wall-clock watchdog calls clock_stalled while the node clock stands still
    stalled = [core.clock_stalled(frozen, 0.1 + k * 0.01) for k in range(8)]
    assert stalled[0].transitions[-1].cause == 'clock'
    assert [o.command is not None and o.command.is_stop for o in stalled] == \
        [True] * 3 + [False] * 5  # zero commands for halt_cycles, then silence
    assert core.machine.state == State.HALTED and core.machine.cause == 'clock'
    assert core.poll_request(frozen) is None
    assert core.tick(frozen).command is None  # clock still frozen: no resume
    outputs, requested = _serve(core, loop, 0.3)
    assert core.machine.state == State.RUNNING and requested
    assert outputs[-1].command.linear[0] > 0


def test_sim_time_jumping_back_restarts_on_the_new_timeline():
    core, loop = _started()
    _moving(core, loop)
    ticket_before = core.poll_request(loop.now + 0.3)  # a request in flight across the jump
    _serve(core, loop, 0.3)
    loop.now -= 60.0  # the bag / sim restarted
    out = core.tick(loop.now)
    assert out.transitions[-1].cause == 'clock' and out.command.is_stop
    if ticket_before is not None:
        late = core.on_reply(_reply(ticket_before, _action(dx=0.05)), loop.now)
        assert not late.accepted
    outputs, requested = _serve(core, loop, 0.5)
    assert requested, 'frames of the new timeline must be used at once'
    assert core.machine.state == State.RUNNING
    assert outputs[-1].command.linear[0] > 0


def test_clock_halt_waits_for_reset_without_auto_resume():
    core, loop = _started(auto_resume=False)
    _moving(core, loop)
    for k in range(5):
        core.clock_stalled(loop.now, 0.1 + k * 0.01)
    _serve(core, loop, 0.3)
    assert core.machine.state == State.HALTED and core.machine.cause == 'clock'
    ok, _ = core.reset(loop.now)
    assert ok
    _serve(core, loop, 0.3)
    assert core.machine.state == State.RUNNING


@pytest.mark.parametrize('position, orientation', [
    ([float('nan'), 0.5, 0.5], [0, 0, 0, 1]),
    ([0.5, float('inf'), 0.5], [0, 0, 0, 1]),
    ([0.5, 0.5, 0.5], [float('nan'), 0, 0, 1]),
    ([0.5, 0.5, 0.5], [0, 0, 0, 0]),
], ids=['nan_position', 'inf_position', 'nan_orientation', 'zero_quaternion'])
def test_a_broken_pose_is_an_unknown_pose_for_the_workspace_and_pose_mode(position, orientation):
    """A NaN position compared false with every wall: it let any motion through the box."""
    safety = SafetyStage(SafetyLimits(workspace_min=(0, 0, 0), workspace_max=(1, 1, 1)))
    pose = PoseSample(np.array(position, float), np.array(orientation, float), 10.0)
    command = safety.check(MotionCommand(linear=np.array([0.05, 0.0, 0.0])), 10.0, pose)
    assert np.all(command.linear == 0.0) and 'no_pose' in command.interventions
    with pytest.raises(CommandRejected):
        safety.check_pose_target(np.array([0.5, 0.5, 0.5]), np.array([0, 0, 0, 1.0]), 10.0,
                                 pose)


def test_a_pose_stamped_far_ahead_of_the_clock_is_not_fresh():
    """Else a driver whose clock runs ahead keeps its last pose 'fresh' after it died."""
    safety = SafetyStage(SafetyLimits(workspace_min=(0, 0, 0), workspace_max=(1, 1, 1),
                                      pose_timeout_s=0.5))
    ahead = PoseSample(np.array([0.5, 0.5, 0.5]), np.array([0, 0, 0, 1.0]), 110.0)
    assert not safety.pose_is_fresh(ahead, 10.0)
    assert safety.pose_is_fresh(ahead, 109.8)
    command = safety.check(MotionCommand(linear=np.array([0.05, 0.0, 0.0])), 10.0, ahead)
    assert np.all(command.linear == 0.0)

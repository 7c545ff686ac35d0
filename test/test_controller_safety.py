"""The safety stage alone: finiteness, speed clamps, workspace box, gripper range, counters."""
import math

from hypothesis import given
from hypothesis import strategies as st
import numpy as np
import pytest
from rt2_ros.controller.safety import (
    CommandRejected, MotionCommand, PoseSample, SafeCommand, SafetyLimits, SafetyStage,
)

BOX = {'workspace_min': (0.2, -0.3, 0.0), 'workspace_max': (0.7, 0.3, 0.5)}
IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


def _pose(x, y, z, stamp=10.0):
    return PoseSample(np.array([x, y, z]), IDENTITY, stamp)


def _cmd(linear=(0, 0, 0), angular=(0, 0, 0), gripper=None, base=(0, 0), yaw=0.0):
    return MotionCommand(np.array(linear, float), np.array(angular, float),
                         np.array(base, float), yaw, gripper)


finite = st.floats(-1e6, 1e6)
vec3 = st.tuples(finite, finite, finite)


@given(vec3, vec3, st.floats(-100, 100))
def test_speed_and_gripper_limits_hold_for_any_finite_input(linear, angular, gripper):
    stage = SafetyStage(SafetyLimits(max_linear_speed=0.1, max_angular_speed=0.5,
                                     gripper_min=0.0, gripper_max=0.08))
    out = stage.check(_cmd(linear, angular, gripper), now=0.0)
    assert np.linalg.norm(out.linear) <= 0.1 + 1e-12
    assert np.linalg.norm(out.angular) <= 0.5 + 1e-12
    assert 0.0 <= out.gripper <= 0.08


def test_clamping_keeps_direction_and_counts_causes():
    stage = SafetyStage(SafetyLimits(max_linear_speed=0.1, max_angular_speed=0.5))
    out = stage.check(_cmd((0.3, 0.4, 0.0), (0, 0, 2.0), gripper=3.0), now=0.0)
    assert np.allclose(out.linear, [0.06, 0.08, 0.0])
    assert np.allclose(out.angular, [0, 0, 0.5])
    assert out.gripper == 1.0
    assert set(out.interventions) == {'linear_speed', 'angular_speed', 'gripper_range'}
    stage.check(_cmd((0.01, 0, 0)), now=0.0)  # within limits: nothing counted
    counts = stage.counts()
    assert counts['linear_speed'] == 1 and counts['angular_speed'] == 1
    assert counts['gripper_range'] == 1 and counts['workspace'] == 0


def test_base_limits():
    stage = SafetyStage(SafetyLimits(max_base_linear_speed=0.2, max_base_angular_speed=0.5))
    out = stage.check(_cmd(base=(3.0, 4.0), yaw=-2.0), now=0.0)
    assert np.allclose(out.base_linear, [0.12, 0.16]) and out.base_angular == -0.5


@pytest.mark.parametrize('bad', [
    {'linear': (math.nan, 0, 0)}, {'angular': (0, math.inf, 0)}, {'gripper': math.nan},
    {'yaw': -math.inf},
])
def test_non_finite_is_rejected_not_clamped(bad):
    stage = SafetyStage(SafetyLimits())
    with pytest.raises(CommandRejected) as info:
        stage.check(_cmd(**bad), now=0.0)
    assert info.value.cause == 'non_finite'
    assert stage.counts()['non_finite'] == 1


def test_workspace_slows_approach_and_never_crosses():
    limits = SafetyLimits(max_linear_speed=1.0, lookahead_s=0.04, **BOX)
    stage = SafetyStage(limits)
    # 1 cm from the +x wall, pushing out at 1 m/s: allowed only the speed that reaches the wall
    out = stage.check(_cmd((1.0, 0, 0)), now=10.0, pose=_pose(0.69, 0.0, 0.2))
    assert out.linear[0] == pytest.approx(0.01 / 0.04)
    assert 'workspace' in out.interventions
    # far from walls: untouched
    out = stage.check(_cmd((0.5, 0, 0)), now=10.0, pose=_pose(0.4, 0.0, 0.2))
    assert out.linear[0] == 0.5 and not out.interventions
    # outside the box: only motion back in
    out = stage.check(_cmd((0.1, 0.1, -0.1)), now=10.0, pose=_pose(0.8, 0.0, 0.6))
    assert out.linear[0] == 0.0 and out.linear[1] == 0.1 and out.linear[2] == -0.1


def test_simulated_arm_stays_in_box_against_a_policy_pushing_out():
    limits = SafetyLimits(max_linear_speed=0.5, lookahead_s=0.02, **BOX)
    stage = SafetyStage(limits)
    position = np.array([0.5, 0.0, 0.25])
    dt = 0.02
    for k in range(500):
        now = k * dt
        pose = PoseSample(position, IDENTITY, now)
        out = stage.check(_cmd((1.0, -1.0, 1.0)), now=now, pose=pose)
        position = position + out.linear * dt
        assert np.all(position <= np.array(BOX['workspace_max']) + 1e-9)
        assert np.all(position >= np.array(BOX['workspace_min']) - 1e-9)


def test_refuses_to_move_without_fresh_pose_when_workspace_set():
    stage = SafetyStage(SafetyLimits(pose_timeout_s=0.5, **BOX))
    out = stage.check(_cmd((0.05, 0, 0), (0, 0, 0.1), gripper=0.5), now=10.0)
    assert not np.any(out.linear) and not np.any(out.angular)
    assert out.gripper == 0.5 and out.interventions == ('no_pose',)
    stale = _pose(0.4, 0, 0.2, stamp=9.0)
    out = stage.check(_cmd((0.05, 0, 0)), now=10.0, pose=stale)
    assert not np.any(out.linear)
    out = stage.check(_cmd((0.05, 0, 0)), now=10.0, pose=_pose(0.4, 0, 0.2, stamp=9.8))
    assert out.linear[0] == 0.05
    # without a workspace, no pose is needed
    free = SafetyStage(SafetyLimits())
    assert free.check(_cmd((0.05, 0, 0)), now=10.0).linear[0] == 0.05


def test_pose_targets_are_clamped():
    stage = SafetyStage(SafetyLimits(max_linear_speed=0.1, max_angular_speed=0.5,
                                     max_pose_lead_s=0.5, **BOX))
    current = _pose(0.65, 0.0, 0.2)
    target = stage.check_pose_target([0.9, 0.0, 0.2], IDENTITY, now=10.0, pose=current)
    assert target.position[0] == pytest.approx(0.7)  # lead 0.05 m allowed, box caps at 0.7
    far_turn = np.array([0.0, 0.0, math.sin(0.5), math.cos(0.5)])  # 1 rad about z
    target = stage.check_pose_target([0.65, 0.0, 0.2], far_turn, now=10.0, pose=current)
    angle = 2 * math.acos(min(1.0, abs(target.orientation[3])))
    assert angle == pytest.approx(0.25)
    with pytest.raises(CommandRejected):
        stage.check_pose_target([0.5, 0, 0.2], IDENTITY, now=10.0, pose=None)
    with pytest.raises(CommandRejected):
        stage.check_pose_target([math.nan, 0, 0.2], IDENTITY, now=10.0, pose=current)


def test_safe_commands_cannot_be_forged():
    with pytest.raises(TypeError):
        SafeCommand(np.zeros(3), np.zeros(3), np.zeros(2), 0.0, None, (), False)
    stop = SafetyStage(SafetyLimits()).stop_command()
    assert stop.is_stop and stop.gripper is None and not np.any(stop.linear)


@pytest.mark.parametrize('kwargs, message', [
    ({'max_linear_speed': -1.0}, 'max_linear_speed'),
    ({'workspace_min': (0, 0, 0)}, 'together'),
    ({'workspace_min': (0, 0, 1), 'workspace_max': (1, 1, 1)}, 'workspace z'),
    ({'workspace_min': (0, 0), 'workspace_max': (1, 1)}, 'three finite'),
    ({'gripper_min': 1.0, 'gripper_max': 0.0}, 'gripper range'),
])
def test_limits_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SafetyLimits(**kwargs)


def test_only_the_actuator_module_publishes_to_actuator_topics():
    """Static guard: no controller code creates its own publisher on an actuator topic."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / 'rt2_ros'
    topics = ('servo/delta_twist_cmds', 'target_pose', 'gripper/commands', 'cmd_vel')
    offenders = []
    for path in list((root / 'controller').rglob('*.py')) + list((root / 'ros').rglob('*.py')):
        text = path.read_text()
        for topic in topics:
            if f"'{topic}'" in text and path.name != 'actuators.py':
                offenders.append(f'{path.name}: {topic}')
        if path.name != 'actuators.py' and 'create_publisher(Twist' in text.replace(' ', ''):
            offenders.append(f'{path.name}: Twist publisher')
    assert not offenders

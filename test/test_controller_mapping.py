"""Action steps to velocities and gripper positions, for each shipped action space."""
import numpy as np
import pytest
from rt2_ros.actions import load_action_space
from rt2_ros.controller.annotate import annotate
from rt2_ros.controller.mapping import ActionMapper, GripperMap
from rt2_ros.controller.rotation import angular_velocity


def test_rt2_translation_rotation_and_gripper():
    space = load_action_space('rt2')
    mapper = ActionMapper(space, 0.5, GripperMap(open_position=0.08, closed_position=0.0))
    command = mapper.velocities([1, 0.01, -0.02, 0.03, 0.1, 0.0, -0.2, 0.25])
    assert np.allclose(command.linear, [0.02, -0.04, 0.06])
    assert np.allclose(command.angular, angular_velocity([0.1, 0.0, -0.2], 0.5))
    assert command.gripper == pytest.approx(0.02)  # 0.25 open of 0.08
    assert mapper.has_arm and mapper.has_gripper and not mapper.has_base


def test_rt1_mobile_base_and_inverted_gripper_convention():
    space = load_action_space('rt1_mobile')  # gripper_closedness: 1 = close, -1 = open
    mapper = ActionMapper(space, 1 / 3, GripperMap(open_position=0.0, closed_position=0.8))
    values = np.zeros(space.size)
    values[space.index('terminate_episode')] = 2
    values[space.index('base_x')] = 0.1
    values[space.index('base_yaw')] = -0.3
    values[space.index('gripper_closedness')] = 1.0
    command = mapper.velocities(values)
    assert np.allclose(command.base_linear, [0.3, 0.0]) and command.base_angular == \
        pytest.approx(-0.9)
    assert command.gripper == pytest.approx(0.8)  # closed -> closed_position
    assert mapper.has_base


def test_axes_come_from_the_space_not_the_order():
    raw = {
        'name': 'reordered', 'nominal_rate_hz': 2.0,
        'dimensions': [
            {'name': 'dz', 'role': 'translation', 'axis': 'z', 'type': 'continuous',
             'low': -1, 'high': 1},
            {'name': 'dx', 'role': 'translation', 'axis': 'x', 'type': 'continuous',
             'low': -1, 'high': 1},
        ],
    }
    mapper = ActionMapper(load_action_space(raw), 0.5, GripperMap())
    assert np.allclose(mapper.velocities([0.1, 0.2]).linear, [0.4, 0.0, 0.2])
    assert mapper.velocities([0.1, 0.2]).gripper is None
    raw['dimensions'][1]['axis'] = 'z'
    with pytest.raises(ValueError, match='axis'):
        ActionMapper(load_action_space(raw), 0.5, GripperMap())


def test_blend_weights_velocities_by_time():
    space = load_action_space('rt2')
    mapper = ActionMapper(space, 1.0, GripperMap())
    a = [1, 0.1, 0, 0, 0, 0, 0, 1.0]
    b = [1, 0.3, 0, 0, 0, 0, 0, 0.0]
    command = mapper.blend([(a, 0.25), (b, 0.5)])  # last quarter of the tick: standing still
    assert command.linear[0] == pytest.approx(0.25 * 0.1 + 0.5 * 0.3)
    assert command.gripper == 1.0  # the step executing at the start of the tick


def test_annotated_image_overlays_without_touching_the_input():
    image = np.zeros((48, 64, 3), np.uint8)
    space = load_action_space('rt2')
    out = annotate(image, 'pick up the block', space.names, [1, 0.05, 0, -0.05, 0, 0, 0, 1],
                   space.lows, space.highs, 0.123, 'running')
    assert out.shape[1] == 320 and out.dtype == np.uint8 and out.any()
    assert not image.any()
    empty = annotate(image, '', space.names, None, space.lows, space.highs, None, 'idle')
    assert empty.shape == out.shape


@pytest.mark.parametrize('gripper', [GripperMap(open_position=0.08, closed_position=0.0),
                                     GripperMap(open_position=0.0, closed_position=0.8)])
def test_a_measured_gripper_position_reads_back_as_the_openness_it_was_commanded(gripper):
    for openness in (0.0, 0.25, 0.5, 1.0):
        assert gripper.openness(gripper.position(openness)) == pytest.approx(openness)
    # a driver's reading a little past the end stops reads as the end stop, never beyond
    beyond = gripper.open_position + 0.1 * (gripper.open_position - gripper.closed_position)
    assert gripper.openness(beyond) == 1.0
    assert gripper.openness(gripper.closed_position - (beyond - gripper.open_position)) == 0.0
    assert gripper.openness(float('nan')) is None and gripper.openness(float('inf')) is None


def test_a_gripper_reading_counts_only_while_it_is_fresh():
    from rt2_ros.controller.proprioception import fresh_opening, GripperReading

    reading = GripperReading(0.4, stamp=100.0)
    assert fresh_opening(reading, 100.3, 0.5) == 0.4
    assert fresh_opening(reading, 100.6, 0.5) is None      # the driver went quiet
    assert fresh_opening(reading, 99.4, 0.5) is None       # stamped ahead of the clock
    assert fresh_opening(None, 100.0, 0.5) is None
    assert fresh_opening(GripperReading(float('nan'), 100.0), 100.0, 0.5) is None

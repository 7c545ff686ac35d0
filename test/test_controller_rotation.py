"""Rotation deltas: extrinsic roll/pitch/yaw -> rotation vector -> angular velocity."""
import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from rt2_ros.controller import rotation as rot

small = st.floats(-1.0, 1.0)


def _matrix(q):
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _rx(a):
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(a):
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _rz(a):
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


@given(small, small, small)
def test_quaternion_is_extrinsic_xyz(roll, pitch, yaw):
    expected = _rz(yaw) @ _ry(pitch) @ _rx(roll)
    assert np.allclose(_matrix(rot.rpy_to_quaternion(roll, pitch, yaw)), expected, atol=1e-9)


@given(small, st.floats(-1.2, 1.2), small)
def test_rpy_round_trip(roll, pitch, yaw):
    q = rot.rpy_to_quaternion(roll, pitch, yaw)
    assert np.allclose(rot.quaternion_to_rpy(q), [roll, pitch, yaw], atol=1e-9)


@given(small, small, small)
@settings(max_examples=50)
def test_rotvec_round_trip_and_exp(roll, pitch, yaw):
    q = rot.rpy_to_quaternion(roll, pitch, yaw)
    v = rot.rpy_to_rotvec([roll, pitch, yaw])
    back = rot.rotvec_to_quaternion(v)
    assert np.allclose(_matrix(back), _matrix(q), atol=1e-9)
    assert np.allclose(rot.rotvec_to_rpy(v), [roll, pitch, yaw], atol=1e-9)


@pytest.mark.parametrize('rpy', [
    (math.pi, 0.0, 0.0), (0.0, 0.0, math.pi), (0.0, 0.0, math.pi - 1e-9),
    (math.pi - 1e-7, 0.3, -0.2), (math.pi - 1e-12, 1e-12, 0.0), (0.0, math.pi / 2 - 1e-9, math.pi),
    (3.0, -3.1, 2.9), (-math.pi + 1e-10, 0.0, 1e-10),
])
def test_rpy_to_rotvec_is_exact_near_a_half_turn(rpy):
    roll, pitch, yaw = rpy
    v = rot.rpy_to_rotvec(rpy)
    assert np.linalg.norm(v) <= math.pi + 1e-12
    expected = _rz(yaw) @ _ry(pitch) @ _rx(roll)
    assert np.allclose(_matrix(rot.rotvec_to_quaternion(v)), expected, atol=1e-9)


def test_the_bag_tools_use_the_controllers_conversion():
    from rt2_ros.bags import rotations
    assert rotations.rpy_to_rotvec is rot.rpy_to_rotvec
    assert rotations.rotvec_to_rpy is rot.rotvec_to_rpy


def test_single_axis_delta_is_plain_rate():
    assert np.allclose(rot.angular_velocity([0.0, 0.0, 0.3], 0.5), [0, 0, 0.6])
    assert np.allclose(rot.angular_velocity([-0.2, 0.0, 0.0], 0.25), [-0.8, 0, 0])


def test_two_axis_delta_is_not_the_naive_vector():
    # Rotating about x then y is not the rotation about (x + y): the conversion must see that.
    omega = rot.angular_velocity([0.25, 0.25, 0.0], 1.0)
    assert not np.allclose(omega, [0.25, 0.25, 0.0], atol=1e-3)
    # integrating omega for the period reproduces the rotation exactly
    q = rot.integrate_orientation([0, 0, 0, 1], omega, 1.0)
    assert np.allclose(_matrix(q), _ry(0.25) @ _rx(0.25), atol=1e-9)


def test_integration_in_ticks_matches_the_step():
    rpy = [0.1, -0.2, 0.15]
    period = 1 / 3
    omega = rot.angular_velocity(rpy, period)
    q = np.array([0.0, 0.0, 0.0, 1.0])
    ticks = 17
    for _ in range(ticks):
        q = rot.integrate_orientation(q, omega, period / ticks)
    assert np.allclose(_matrix(q), _matrix(rot.rpy_to_quaternion(*rpy)), atol=1e-9)


def test_bad_inputs():
    with pytest.raises(ValueError):
        rot.angular_velocity([0, 0, 0], 0.0)

"""
Rotation conversions for end-effector deltas.

VLA action spaces write a small rotation as roll/pitch/yaw deltas; MoveIt Servo and the sim take
an angular velocity. Treating the three angles as a velocity vector is only right to first order
and is the classic source of drift when rotating about two axes at once, so the controller goes
through the rotation itself: extrinsic roll-pitch-yaw about the output frame's axes
(R = Rz(yaw) Ry(pitch) Rx(roll)) -> rotation vector -> omega = rotvec / T. `rpy_to_rotvec` is
the package's one implementation of that step (the controller, the bag tools); it is scipy's
Rotation, which stays exact up to and at a half turn, where a hand-written axis-angle
extraction divides by sin(pi). Quaternions are (x, y, z, w), the ROS geometry_msgs order.
"""
import math
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

_SMALL = 1e-12


def rpy_to_quaternion(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of the extrinsic X-Y-Z rotation by roll, then pitch, then yaw."""
    cr, sr = math.cos(roll / 2.0), math.sin(roll / 2.0)
    cp, sp = math.cos(pitch / 2.0), math.sin(pitch / 2.0)
    cy, sy = math.cos(yaw / 2.0), math.sin(yaw / 2.0)
    return np.array([
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    ])


def quaternion_to_rpy(q: Sequence[float]) -> np.ndarray:
    """Extrinsic roll, pitch, yaw of a unit quaternion (inverse of rpy_to_quaternion)."""
    x, y, z, w = (float(v) for v in q)
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    sin_pitch = max(-1.0, min(1.0, 2.0 * (w * y - z * x)))
    pitch = math.asin(sin_pitch)
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def rotvec_to_quaternion(rotvec: Sequence[float]) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation vector."""
    v = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        half = 0.5 * v
        return np.array([half[0], half[1], half[2], 1.0]) / math.sqrt(1.0 + float(half @ half))
    axis = v / angle
    s = math.sin(angle / 2.0)
    return np.array([axis[0] * s, axis[1] * s, axis[2] * s, math.cos(angle / 2.0)])


def quaternion_multiply(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Hamilton product a * b (apply b, then a), both (x, y, z, w)."""
    ax, ay, az, aw = (float(v) for v in a)
    bx, by, bz, bw = (float(v) for v in b)
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])


def rpy_to_rotvec(rpy: Sequence[float]) -> np.ndarray:
    """Rotation vector (angle in [0, pi]) of an extrinsic roll/pitch/yaw rotation."""
    return Rotation.from_euler('xyz', np.asarray(rpy, dtype=np.float64)).as_rotvec()


def rotvec_to_rpy(rotvec: Sequence[float]) -> np.ndarray:
    """Extrinsic roll, pitch, yaw (pitch in [-pi/2, pi/2]) of a rotation vector."""
    return Rotation.from_rotvec(np.asarray(rotvec, dtype=np.float64)).as_euler('xyz')


def angular_velocity(rpy: Sequence[float], period_s: float) -> np.ndarray:
    """Constant angular velocity (rad/s, output frame) that performs the delta in period_s."""
    if not period_s > 0.0:
        raise ValueError(f'period must be positive, got {period_s}')
    return rpy_to_rotvec(rpy) / period_s


def integrate_orientation(q: Sequence[float], omega: Sequence[float], dt: float) -> np.ndarray:
    """Orientation after rotating q by a fixed-frame angular velocity omega for dt seconds."""
    step = rotvec_to_quaternion(np.asarray(omega, dtype=np.float64) * dt)
    out = quaternion_multiply(step, q)
    return out / np.linalg.norm(out)

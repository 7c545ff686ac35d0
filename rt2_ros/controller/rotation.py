"""
Rotation conversions for end-effector deltas (pure numpy).

VLA action spaces write a small rotation as roll/pitch/yaw deltas; MoveIt Servo and the sim take
an angular velocity. Treating the three angles as a velocity vector is only right to first order
and is the classic source of drift when rotating about two axes at once, so the controller goes
through the rotation itself: extrinsic roll-pitch-yaw about the output frame's axes
(R = Rz(yaw) Ry(pitch) Rx(roll)) -> quaternion -> rotation vector -> omega = rotvec / T.
Quaternions are (x, y, z, w), the ROS geometry_msgs order.
"""
import math
from typing import Sequence

import numpy as np

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


def quaternion_to_rotvec(q: Sequence[float]) -> np.ndarray:
    """Rotation vector (axis * angle, angle in [0, pi]) of a quaternion; q and -q agree."""
    x, y, z, w = (float(v) for v in q)
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if norm < _SMALL:
        raise ValueError('zero quaternion has no rotation')
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    if w < 0.0:
        x, y, z, w = -x, -y, -z, -w
    sin_half = math.sqrt(x * x + y * y + z * z)
    angle = 2.0 * math.atan2(sin_half, w)
    if sin_half < 1e-9:
        # First order: rotvec ~ 2 * vector part; exact in the limit.
        return np.array([2.0 * x, 2.0 * y, 2.0 * z])
    scale = angle / sin_half
    return np.array([x * scale, y * scale, z * scale])


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


def rpy_delta_to_rotvec(rpy: Sequence[float]) -> np.ndarray:
    """Rotation vector of a small extrinsic roll/pitch/yaw delta."""
    roll, pitch, yaw = (float(v) for v in rpy)
    return quaternion_to_rotvec(rpy_to_quaternion(roll, pitch, yaw))


def angular_velocity(rpy: Sequence[float], period_s: float) -> np.ndarray:
    """Constant angular velocity (rad/s, output frame) that performs the delta in period_s."""
    if not period_s > 0.0:
        raise ValueError(f'period must be positive, got {period_s}')
    return rpy_delta_to_rotvec(rpy) / period_s


def integrate_orientation(q: Sequence[float], omega: Sequence[float], dt: float) -> np.ndarray:
    """Orientation after rotating q by a fixed-frame angular velocity omega for dt seconds."""
    step = rotvec_to_quaternion(np.asarray(omega, dtype=np.float64) * dt)
    out = quaternion_multiply(step, q)
    return out / np.linalg.norm(out)

"""
Small rotations between the two forms the package uses.

docs/architecture.md: an action's rotation delta is extrinsic roll-pitch-yaw about the output
frame's axes (R = Rz(yaw) Ry(pitch) Rx(roll)); the controller sends it as the angular velocity
rotvec / T. Turning recorded twists back into actions needs the inverse, and integrating several
twists needs composition, so both live here. Roll-pitch-yaw to rotation vector and back are
the controller's own (rt2_ros.controller.rotation), so a bag is read with the mapping the robot
was driven with.
"""
import numpy as np
from rt2_ros.controller.rotation import rotvec_to_rpy, rpy_to_rotvec

__all__ = ['matrix_to_rotvec', 'matrix_to_rpy', 'rotvec_to_matrix', 'rotvec_to_rpy',
           'rpy_to_matrix', 'rpy_to_rotvec']


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula; exact for any angle, identity for a zero vector."""
    vector = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    axis = vector / angle
    skew = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]],
                     [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """Inverse of rotvec_to_matrix for angles below pi (all a decision step can hold)."""
    cos_angle = np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos_angle))
    if angle < 1e-12:
        return np.zeros(3)
    axis = np.array([matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0],
                     matrix[1, 0] - matrix[0, 1]]) / (2.0 * np.sin(angle))
    return axis * angle


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Extrinsic x-y-z (roll about x first, then pitch about y, then yaw about z)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def matrix_to_rpy(matrix: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw of rpy_to_matrix; pitch in [-pi/2, pi/2]."""
    pitch = float(np.arcsin(np.clip(-matrix[2, 0], -1.0, 1.0)))
    roll = float(np.arctan2(matrix[2, 1], matrix[2, 2]))
    yaw = float(np.arctan2(matrix[1, 0], matrix[0, 0]))
    return np.array([roll, pitch, yaw])

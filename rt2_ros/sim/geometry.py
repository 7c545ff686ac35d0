"""
Small 2D/3D geometry helpers for the kinematic tabletop (numpy only).

Block footprints are convex polygons in the table plane, so contact between a finger and a block
is a separating-axis test between two convex polygons; that gives the push direction and depth
without a physics engine. Functions work on (N, 2) float arrays of counter-clockwise vertices.
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np


def rotation_2d(yaw: float) -> np.ndarray:
    """Return the 2x2 rotation matrix for a yaw angle (counter-clockwise, radians)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s], [s, c]])


def place_polygon(local: np.ndarray, center: Sequence[float], yaw: float) -> np.ndarray:
    """Move a polygon given around its own origin to a pose in the plane."""
    return local @ rotation_2d(yaw).T + np.asarray(center[:2], dtype=float)


def regular_polygon(count: int, radius: float, phase: float = 0.0) -> np.ndarray:
    """Return a regular polygon's counter-clockwise vertices around the origin."""
    angles = phase + np.arange(count) * (2.0 * math.pi / count)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def rectangle(half_x: float, half_y: float) -> np.ndarray:
    """Return an axis-aligned rectangle's counter-clockwise vertices around the origin."""
    return np.array([[-half_x, -half_y], [half_x, -half_y], [half_x, half_y], [-half_x, half_y]])


def edge_normals(polygon: np.ndarray) -> np.ndarray:
    """Return the unit outward normals of a counter-clockwise polygon's edges."""
    return _axes(polygon)


def _axes(polygon: np.ndarray) -> np.ndarray:
    edges = np.roll(polygon, -1, axis=0) - polygon
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(lengths, 1e-12)


def push_out(mover: np.ndarray, other: np.ndarray, motion: Optional[np.ndarray] = None,
             axes: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """
    Return how far `other` must move to stop overlapping `mover`, or None if apart.

    A block pushed by a moving finger gives way along the finger's motion (a quasi-static push
    with no sliding along the contact), which keeps a straight push straight whatever the
    block's yaw. Without a motion, or for a grazing contact where moving along the motion would
    take much further than the shortest way out, the shortest translation is used.
    """
    if axes is None:
        axes = np.concatenate([_axes(mover), _axes(other)])
    proj_a = mover @ axes.T
    proj_b = other @ axes.T
    forward = proj_a.max(axis=0) - proj_b.min(axis=0)
    backward = proj_b.max(axis=0) - proj_a.min(axis=0)
    overlap = np.minimum(forward, backward)
    if np.any(overlap <= 0.0):
        return None
    k = int(np.argmin(overlap))
    axis = axes[k]
    if forward[k] > backward[k]:
        axis = -axis
    shortest = axis * float(overlap[k])
    if motion is None:
        return shortest
    norm = float(np.linalg.norm(motion))
    if norm < 1e-9:
        return shortest
    d = motion / norm
    dn = axes @ d
    with np.errstate(divide='ignore', invalid='ignore'):
        t_fwd = np.where(dn > 1e-6, forward / dn, np.inf)
        t_back = np.where(dn < -1e-6, backward / -dn, np.inf)
    t = float(min(t_fwd.min(), t_back.min()))
    if not math.isfinite(t) or t > 3.0 * float(overlap[k]) + 1e-4:
        return shortest
    return d * t


def overlaps(a: np.ndarray, b: np.ndarray, margin: float = 0.0,
             axes: Optional[np.ndarray] = None) -> bool:
    """Tell whether two convex polygons overlap by more than margin on every axis."""
    if axes is None:
        axes = np.concatenate([_axes(a), _axes(b)])
    proj_a = a @ axes.T
    proj_b = b @ axes.T
    overlap = np.minimum(proj_a.max(axis=0) - proj_b.min(axis=0),
                         proj_b.max(axis=0) - proj_a.min(axis=0))
    return bool(np.all(overlap > margin))


def contains(polygon: np.ndarray, point: Sequence[float], margin: float = 0.0) -> bool:
    """Tell whether a point lies inside a convex counter-clockwise polygon (margin inwards)."""
    p = np.asarray(point[:2], dtype=float)
    edges = np.roll(polygon, -1, axis=0) - polygon
    rel = p - polygon
    cross = edges[:, 0] * rel[:, 1] - edges[:, 1] * rel[:, 0]
    lengths = np.linalg.norm(edges, axis=1)
    return bool(np.all(cross / np.maximum(lengths, 1e-12) >= margin))


def interval(polygon: np.ndarray, origin: Sequence[float],
             axis: np.ndarray) -> Tuple[float, float]:
    """Return the polygon's extent along a unit axis, measured from origin."""
    values = (polygon - np.asarray(origin[:2], dtype=float)) @ axis
    return float(values.min()), float(values.max())


def wrap_angle(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi

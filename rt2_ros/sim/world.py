"""
The kinematic tabletop: a table, blocks, a parallel gripper on an arm, and a mobile base.

Kinematic rather than dynamic on purpose: every outcome is a deterministic function of the
commands (same seed, same commands, same bytes), a tick costs microseconds so demonstrations are
cheap, and the rules a learner must pick up are few and visible - fingers push what they touch, a
block closed on between the fingers is held, an opened gripper drops it onto whatever lies below,
and a block whose centre is not over its support slides off onto the table.

Frames (docs/architecture.md): the world frame is the table's; `base_link` starts at the table
edge with the table top at z = 0, x across the table, y to the left, z up. The mobile base moves
in the world; the arm and camera ride on it, so the end effector is commanded and reported in
`base_link`, while blocks live in the world. The end-effector point is the centre between the
fingertips; its orientation is a yaw about z (a top-down gripper: roll and pitch do not exist).
"""
from dataclasses import dataclass, field
import functools
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rt2_ros.sim.geometry import (
    contains, edge_normals, interval, overlaps, place_polygon, push_out, rectangle, rotation_2d,
)
from rt2_ros.sim.objects import BlockSpec, footprint

TABLE = -1
GRIPPER = -2

# Gripper geometry (metres). Fully open, the fingers clear the largest block at any yaw.
MAX_WIDTH = 0.085
FINGER_THICKNESS = 0.012
FINGER_DEPTH = 0.022
FINGER_LENGTH = 0.055
# Overlap of a finger with a block's side needed to hold it.
GRASP_MIN_OVERLAP = 0.008
_FINGER_LOCAL = rectangle(FINGER_DEPTH / 2.0, FINGER_THICKNESS / 2.0)
FINGER_RADIUS = math.hypot(FINGER_DEPTH / 2.0, FINGER_THICKNESS / 2.0)
# Radius of a circle around the fingertip point containing both fingers, fully open.
HAND_RADIUS = math.hypot(MAX_WIDTH / 2.0 + FINGER_THICKNESS, FINGER_DEPTH / 2.0)


@dataclass(frozen=True)
class SimConfig:
    """Limits and rates of the simulated robot; defaults suit a tabletop arm."""

    physics_rate_hz: float = 50.0
    # Reach of the fingertip point in base_link (m) and wrist yaw limits (rad).
    reach_min: Tuple[float, float, float] = (0.10, -0.40, 0.0)
    reach_max: Tuple[float, float, float] = (0.75, 0.40, 0.40)
    yaw_limit: float = math.pi
    # Table top in the world frame (m).
    table_min: Tuple[float, float] = (0.0, -0.50)
    table_max: Tuple[float, float] = (0.80, 0.50)
    # Speed limits of the arm and base (like a servo's hard limits; the controller has its own).
    max_linear_speed: float = 1.0
    max_yaw_rate: float = 2.0
    max_base_speed: float = 0.5
    max_base_yaw_rate: float = 1.0
    # Gripper: openness units (0..1) per second; 5.0 closes fully within 0.2 s.
    gripper_speed: float = 5.0
    # Where the base may go in the world (it cannot drive into the table: x <= 0).
    base_min: Tuple[float, float] = (-1.0, -1.0)
    base_max: Tuple[float, float] = (0.0, 1.0)

    @property
    def dt(self) -> float:
        return 1.0 / self.physics_rate_hz


@dataclass
class Block:
    """A block's pose: bottom centre in the world frame, yaw, and what it rests on."""

    spec: BlockSpec
    position: np.ndarray
    yaw: float = 0.0
    support: int = TABLE
    _cache: Any = field(default=None, repr=False, compare=False)

    @property
    def top(self) -> float:
        return float(self.position[2]) + self.spec.height

    def _placed(self) -> Tuple[np.ndarray, np.ndarray]:
        key = (float(self.position[0]), float(self.position[1]), float(self.yaw))
        if self._cache is None or self._cache[0] != key:
            rot = rotation_2d(self.yaw)
            poly = self.spec.footprint() @ rot.T + self.position[:2]
            axes = local_axes(self.spec.shape, self.spec.extent) @ rot.T
            self._cache = (key, poly, axes)
        return self._cache[1], self._cache[2]

    def polygon(self) -> np.ndarray:
        """Return the footprint in the world (cached per pose; do not modify)."""
        return self._placed()[0]

    def axes(self) -> np.ndarray:
        """Return the footprint's distinct edge normals in the world (for separating axes)."""
        return self._placed()[1]


@functools.lru_cache(maxsize=None)
def local_axes(shape: str, extent: float) -> np.ndarray:
    """Return a footprint's edge normals with opposite pairs merged (SAT needs one of each)."""
    normals = edge_normals(footprint(shape, extent))
    kept: List[np.ndarray] = []
    for n in normals:
        if all(abs(float(n @ k)) < 1.0 - 1e-9 for k in kept):
            kept.append(n)
    return np.array(kept)


def _near(a: np.ndarray, b: np.ndarray, distance: float) -> bool:
    dx, dy = float(a[0] - b[0]), float(a[1] - b[1])
    return dx * dx + dy * dy < distance * distance


@dataclass
class Gripper:
    """End effector in base_link: fingertip-centre position, yaw, finger opening."""

    position: np.ndarray
    yaw: float = 0.0
    opening: float = 1.0
    target: float = 1.0
    held: Optional[int] = None
    # Held block relative to the fingertip point: offset along the gripper's x axis, bottom
    # height above the fingertips, yaw relative to the gripper.
    held_offset: Tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def width(self) -> float:
        return self.opening * MAX_WIDTH


@dataclass
class Command:
    """Velocities applied each tick until changed (what a servo interface holds)."""

    linear: np.ndarray = field(default_factory=lambda: np.zeros(3))
    yaw_rate: float = 0.0
    base: np.ndarray = field(default_factory=lambda: np.zeros(3))  # vx, vy, wz in base frame


class TabletopSim:
    """Kinematic tabletop world advanced in fixed ticks of `config.dt`."""

    def __init__(self, blocks: Sequence[Block], gripper: Optional[Gripper] = None,
                 config: SimConfig = SimConfig()) -> None:
        self.config = config
        self.blocks: List[Block] = [Block(b.spec, np.array(b.position, dtype=float), b.yaw,
                                          b.support) for b in blocks]
        self.gripper = gripper or Gripper(position=np.array([0.30, 0.0, 0.20]))
        self.gripper.position = np.array(self.gripper.position, dtype=float)
        self.base = np.zeros(3)  # x, y, yaw of base_link in the world
        self.command = Command()
        self.time = 0.0
        self.ticks = 0

    # -- commands ---------------------------------------------------------------------------

    def set_velocity(self, linear: Sequence[float], yaw_rate: float = 0.0) -> None:
        """Set the end-effector velocity in base_link (m/s, rad/s), clipped to the limits."""
        v = np.asarray(linear, dtype=float)[:3]
        speed = float(np.linalg.norm(v))
        if not math.isfinite(speed):
            v, speed = np.zeros(3), 0.0
        if speed > self.config.max_linear_speed:
            v = v * (self.config.max_linear_speed / speed)
        w = float(yaw_rate) if math.isfinite(yaw_rate) else 0.0
        limit = self.config.max_yaw_rate
        self.command.linear = v
        self.command.yaw_rate = min(limit, max(-limit, w))

    def set_base_velocity(self, vx: float, vy: float, wz: float) -> None:
        """Set the base velocity in its own frame (m/s, rad/s), clipped to the limits."""
        v = np.array([vx, vy], dtype=float)
        if not np.all(np.isfinite(v)) or not math.isfinite(wz):
            v, wz = np.zeros(2), 0.0
        speed = float(np.linalg.norm(v))
        if speed > self.config.max_base_speed:
            v = v * (self.config.max_base_speed / speed)
        limit = self.config.max_base_yaw_rate
        self.command.base = np.array([v[0], v[1], min(limit, max(-limit, float(wz)))])

    def set_gripper(self, position: float) -> None:
        """Set the finger target: 0 = closed, 1 = fully open (clipped)."""
        if math.isfinite(position):
            self.gripper.target = min(1.0, max(0.0, float(position)))

    def stop(self) -> None:
        """Zero arm and base velocities (the gripper target is kept, like a real gripper)."""
        self.command = Command()

    # -- frames -----------------------------------------------------------------------------

    def base_to_world(self, point: Sequence[float]) -> np.ndarray:
        """Map a base_link point to the world frame."""
        bx, by, yaw = float(self.base[0]), float(self.base[1]), float(self.base[2])
        x, y, z = float(point[0]), float(point[1]), float(point[2])
        if yaw == 0.0:
            return np.array([x + bx, y + by, z])
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([c * x - s * y + bx, s * x + c * y + by, z])

    def world_to_base(self, point: Sequence[float]) -> np.ndarray:
        """Map a world point to base_link."""
        p = np.asarray(point, dtype=float)
        xy = rotation_2d(-self.base[2]) @ (p[:2] - self.base[:2])
        return np.array([xy[0], xy[1], p[2]])

    def ee_world(self) -> Tuple[np.ndarray, float]:
        """Return the fingertip point and yaw in the world frame."""
        return (self.base_to_world(self.gripper.position),
                self.base[2] + self.gripper.yaw)

    def finger_polygons(self, center: Optional[np.ndarray] = None, yaw: Optional[float] = None,
                        width: Optional[float] = None) -> List[np.ndarray]:
        """Return both fingers' footprints in the world (at the current pose unless given)."""
        if center is None or yaw is None:
            center, yaw = self.ee_world()
        width = self.gripper.width if width is None else width
        c, s = math.cos(yaw), math.sin(yaw)
        local = _FINGER_LOCAL if yaw == 0.0 else _FINGER_LOCAL @ np.array([[c, s], [-s, c]])
        offset = (width + FINGER_THICKNESS) / 2.0
        cx, cy = float(center[0]), float(center[1])
        return [local + (cx - sign * s * offset, cy + sign * c * offset) for sign in (-1.0, 1.0)]

    def _finger_centres(self) -> List[np.ndarray]:
        center, yaw = self.ee_world()
        offset = (self.gripper.width + FINGER_THICKNESS) / 2.0
        dx, dy = -math.sin(yaw) * offset, math.cos(yaw) * offset
        return [np.array([center[0] - dx, center[1] - dy]),
                np.array([center[0] + dx, center[1] + dy])]

    def palm_gap_polygon(self, center: np.ndarray, yaw: float, width: float) -> np.ndarray:
        """Return the footprint of the space between the fingers (under the palm)."""
        local = rectangle(FINGER_DEPTH / 2.0, max(width, 1e-4) / 2.0)
        return place_polygon(local, center, yaw)

    # -- queries ----------------------------------------------------------------------------

    def children(self, index: int) -> List[int]:
        """Return the blocks resting directly on a block."""
        return [i for i, b in enumerate(self.blocks) if b.support == index]

    def stack_above(self, index: int) -> List[int]:
        """Return a block and everything resting on it, transitively."""
        found, todo = [], [index]
        while todo:
            i = todo.pop()
            found.append(i)
            todo.extend(self.children(i))
        return found

    def held_block(self) -> Optional[Block]:
        return None if self.gripper.held is None else self.blocks[self.gripper.held]

    # -- stepping ---------------------------------------------------------------------------

    def step(self, ticks: int = 1) -> None:
        """Advance the world by whole physics ticks at the current command."""
        for _ in range(int(ticks)):
            self._tick(self.config.dt)

    def _tick(self, dt: float) -> None:
        before = self._finger_centres()
        held = self.held_block()
        held_before = None if held is None else held.position[:2].copy()
        self._update_fingers(dt)
        self._move_base(dt)
        self._move_arm(dt)
        self._sync_held()
        self._push_blocks(before, held_before)
        self.time += dt
        self.ticks += 1

    def _move_base(self, dt: float) -> None:
        vx, vy, wz = self.command.base
        if vx == 0.0 and vy == 0.0 and wz == 0.0:
            return
        heading = self.base[2] + 0.5 * wz * dt
        delta = rotation_2d(heading) @ np.array([vx, vy]) * dt
        lo, hi = self.config.base_min, self.config.base_max
        self.base[0] = min(hi[0], max(lo[0], self.base[0] + delta[0]))
        self.base[1] = min(hi[1], max(lo[1], self.base[1] + delta[1]))
        self.base[2] = min(math.pi, max(-math.pi, self.base[2] + wz * dt))

    def _move_arm(self, dt: float) -> None:
        g = self.gripper
        cfg = self.config
        lo, hi = np.array(cfg.reach_min), np.array(cfg.reach_max)
        desired = np.clip(g.position + self.command.linear * dt, lo, hi)
        yaw = min(cfg.yaw_limit, max(-cfg.yaw_limit, g.yaw + self.command.yaw_rate * dt))
        # Horizontal motion first; descending is limited by what lies under the fingers (or
        # under the held block) at the new place, and never teleports the hand upwards.
        g.position[:2] = desired[:2]
        g.yaw = yaw
        current = float(g.position[2])
        target = float(desired[2])
        if target < current and target < self._highest_obstacle():
            target = max(target, min(current, self._floor_at()))
        g.position[2] = target

    def _highest_obstacle(self) -> float:
        """Return the fingertip height above which nothing can be in the way."""
        held = self.gripper.held
        excluded = set(self.stack_above(held)) if held is not None else set()
        tops = [b.top for i, b in enumerate(self.blocks) if i not in excluded]
        if not tops:
            return 0.0
        highest = max(tops)
        if held is not None:
            highest -= min(0.0, self.gripper.held_offset[1])
        return highest + 1e-6

    def _hand_axes(self, yaw: float) -> np.ndarray:
        return np.array([[math.cos(yaw), math.sin(yaw)], [-math.sin(yaw), math.cos(yaw)]])

    def _floor_at(self) -> float:
        """Return the lowest fingertip height allowed at the gripper's current pose."""
        center, yaw = self.ee_world()
        width = self.gripper.width
        fingers = self.finger_polygons(center, yaw, width)
        gap = self.palm_gap_polygon(center, yaw, width)
        held = self.gripper.held
        excluded = set(self.stack_above(held)) if held is not None else set()
        held_poly, held_dz = None, 0.0
        if held is not None:
            held_poly = self.blocks[held].polygon()
            held_dz = self.gripper.held_offset[1]
        hand_axes = self._hand_axes(yaw)
        floor = 0.0
        held_block = self.blocks[held] if held is not None else None
        # Only what lies below counts: a block beside the fingers is pushed, not stood on.
        tip = float(center[2]) + 1e-3
        held_bottom = tip if held_block is None else float(held_block.position[2]) + 1e-3
        for i, block in enumerate(self.blocks):
            if i in excluded:
                continue
            r = block.spec.circumradius
            if block.top <= tip and _near(block.position, center, HAND_RADIUS + r):
                poly, axes = block.polygon(), block.axes()
                both = np.concatenate([hand_axes, axes])
                if any(overlaps(f, poly, 1e-4, both) for f in fingers):
                    floor = max(floor, block.top)
                elif overlaps(gap, poly, 1e-4, both):
                    floor = max(floor, block.top - FINGER_LENGTH)
            if held_block is not None and block.top <= held_bottom and _near(
                    block.position, held_block.position, r + held_block.spec.circumradius):
                both = np.concatenate([held_block.axes(), block.axes()])
                if overlaps(held_poly, block.polygon(), 1e-4, both):
                    floor = max(floor, block.top - held_dz)
        return floor

    def _update_fingers(self, dt: float) -> None:
        g = self.gripper
        step = self.config.gripper_speed * dt
        if g.held is not None:
            extent = g.width
            if g.target * MAX_WIDTH > extent + 0.003:
                self._release()
                g.opening = min(g.target, g.opening + step)
            return
        if g.target >= g.opening:
            g.opening = min(g.target, g.opening + step)
            return
        new_opening = max(g.target, g.opening - step)
        grasp = self._grasp_candidate(g.width, new_opening * MAX_WIDTH)
        if grasp is None:
            g.opening = new_opening
        else:
            self._grasp(*grasp)

    def _grasp_candidate(self, old_width: float,
                         new_width: float) -> Optional[Tuple[int, float, float, float]]:
        """Return (block, centre offset along closing axis, extent, offset along x) or None."""
        center, yaw = self.ee_world()
        closing = np.array([-math.sin(yaw), math.cos(yaw)])
        along = np.array([math.cos(yaw), math.sin(yaw)])
        tip = float(center[2])
        best = None
        for i, block in enumerate(self.blocks):
            if block.support == GRIPPER:
                continue
            if tip > block.top - GRASP_MIN_OVERLAP or tip < block.position[2] - 0.01:
                continue
            if np.linalg.norm(block.position[:2] - center[:2]) > MAX_WIDTH:
                continue
            poly = block.polygon()
            a_min, a_max = interval(poly, center, closing)
            if a_min < -old_width / 2.0 - 1e-4 or a_max > old_width / 2.0 + 1e-4:
                continue
            p_min, p_max = interval(poly, center, along)
            if p_min >= FINGER_DEPTH / 2.0 or p_max <= -FINGER_DEPTH / 2.0:
                continue
            reach = max(-a_min, a_max)
            if new_width / 2.0 > reach:
                continue
            if best is None or reach > best[0]:
                best = (reach, i, 0.5 * (a_min + a_max), a_max - a_min, 0.5 * (p_min + p_max))
        return None if best is None else best[1:]

    def _grasp(self, index: int, offset: float, extent: float, along_offset: float) -> None:
        g = self.gripper
        block = self.blocks[index]
        center, yaw = self.ee_world()
        closing = np.array([-math.sin(yaw), math.cos(yaw)])
        # The first finger to touch pushes the block to the middle of the hand.
        new_position = block.position.copy()
        new_position[:2] -= offset * closing
        self._move_stack(index, new_position, block.yaw)
        block.support = GRIPPER
        g.held = index
        g.opening = extent / MAX_WIDTH
        g.held_offset = (along_offset, float(block.position[2] - center[2]), block.yaw - yaw)

    def _release(self) -> None:
        index = self.gripper.held
        self.gripper.held = None
        if index is None:
            return
        self.blocks[index].support = TABLE
        self._settle(index)

    def _sync_held(self) -> None:
        g = self.gripper
        if g.held is None:
            return
        center, yaw = self.ee_world()
        along_offset, dz, rel_yaw = g.held_offset
        position = np.array([center[0] + along_offset * math.cos(yaw),
                             center[1] + along_offset * math.sin(yaw), center[2] + dz])
        self._move_stack(g.held, position, yaw + rel_yaw)

    def _move_stack(self, index: int, position: np.ndarray, yaw: float) -> None:
        """Move a block to a pose, carrying whatever rests on it rigidly."""
        block = self.blocks[index]
        old, old_yaw = block.position.copy(), block.yaw
        turn = rotation_2d(yaw - old_yaw)
        for i in self.stack_above(index):
            other = self.blocks[i]
            rel = other.position - old
            rel[:2] = turn @ rel[:2]
            other.position = position + rel
            other.yaw += yaw - old_yaw

    def _translate_stack(self, index: int, delta_xy: np.ndarray) -> None:
        block = self.blocks[index]
        position = block.position.copy()
        position[:2] += delta_xy
        self._move_stack(index, position, block.yaw)

    def _push_blocks(self, fingers_before: List[np.ndarray],
                     held_before: Optional[np.ndarray]) -> None:
        """Resolve overlaps of the fingers (and a held block) with blocks by pushing them."""
        center, yaw = self.ee_world()
        tip = float(center[2])
        held = self.gripper.held
        excluded = set() if held is None else set(self.stack_above(held))
        lowest = tip if held is None else min(tip, float(self.blocks[held].position[2]))
        if all(b.top <= lowest + 1e-4 for i, b in enumerate(self.blocks) if i not in excluded):
            return  # everything that moves is above every block
        movers = []
        polys = self.finger_polygons(center, yaw)
        fingers_now = self._finger_centres()
        for poly, old, new in zip(polys, fingers_before, fingers_now):
            movers.append((poly, tip, tip + FINGER_LENGTH, new - old))
        if held is not None:
            hb = self.blocks[held]
            motion = None if held_before is None else hb.position[:2] - held_before
            movers.append((hb.polygon(), float(hb.position[2]), hb.top, motion))
        hand_axes = self._hand_axes(yaw)
        for i, block in enumerate(self.blocks):
            if i in excluded:
                continue
            for k, (poly, bottom, top, motion) in enumerate(movers):
                if block.top <= bottom + 1e-4 or block.position[2] >= top - 1e-4:
                    continue
                if k < 2:
                    finger = fingers_now[k]
                    if not _near(block.position, finger, FINGER_RADIUS + block.spec.circumradius):
                        continue
                    axes = np.concatenate([hand_axes, block.axes()])
                else:
                    hb = self.blocks[held]
                    if not _near(block.position, hb.position,
                                 hb.spec.circumradius + block.spec.circumradius):
                        continue
                    axes = np.concatenate([hb.axes(), block.axes()])
                push = push_out(poly, block.polygon(), motion, axes)
                if push is not None:
                    self._shove(i, push, depth=0, pusher=excluded)

    def _shove(self, index: int, delta: np.ndarray, depth: int, pusher: set) -> None:
        """Push a block (and its stack), pushing neighbours in turn and keeping it on the table."""
        block = self.blocks[index]
        self._translate_stack(index, delta)
        self._clamp_to_table(index)
        if block.support >= 0:
            self._settle(index)
        if depth >= 3:
            return
        moved = set(self.stack_above(index))
        for j, other in enumerate(self.blocks):
            if j in moved or j in pusher or other.support == GRIPPER:
                continue
            if other.top <= block.position[2] + 1e-4 or other.position[2] >= block.top - 1e-4:
                continue
            if not _near(other.position, block.position,
                         other.spec.circumradius + block.spec.circumradius):
                continue
            axes = np.concatenate([block.axes(), other.axes()])
            push = push_out(block.polygon(), other.polygon(), delta, axes)
            if push is not None:
                self._shove(j, push, depth + 1, pusher | moved)

    def _clamp_to_table(self, index: int) -> None:
        block = self.blocks[index]
        r = block.spec.radius
        lo, hi = self.config.table_min, self.config.table_max
        x = min(hi[0] - r, max(lo[0] + r, float(block.position[0])))
        y = min(hi[1] - r, max(lo[1] + r, float(block.position[1])))
        if x != block.position[0] or y != block.position[1]:
            self._translate_stack(index, np.array([x - block.position[0], y - block.position[1]]))

    def _settle(self, index: int, depth: int = 0) -> None:
        """Drop a block onto the highest thing under it; off an edge it slides to the table."""
        block = self.blocks[index]
        poly = block.polygon()
        excluded = set(self.stack_above(index))
        best, best_top = None, 0.0
        for j, other in enumerate(self.blocks):
            if j in excluded or other.support == GRIPPER:
                continue
            if other.top > block.position[2] + 0.005 or other.top <= best_top:
                continue
            if not _near(other.position, block.position,
                         other.spec.circumradius + block.spec.circumradius):
                continue
            if overlaps(poly, other.polygon(), 1e-4):
                best, best_top = j, other.top
        if best is not None and not contains(self.blocks[best].polygon(), block.position):
            if depth < 4:
                push = push_out(self.blocks[best].polygon(), poly)
                if push is not None:
                    self._translate_stack(index, push * 1.05)
                    self._clamp_to_table(index)
                self._settle(index, depth + 1)
                return
        position = block.position.copy()
        position[2] = best_top if best is not None else 0.0
        self._move_stack(index, position, block.yaw)
        block.support = TABLE if best is None else best

    # -- state export -----------------------------------------------------------------------

    def snapshot(self) -> Dict[str, Any]:
        """Return the whole state as JSON-ready data (for the privileged state topic)."""
        g = self.gripper
        return {
            'time': round(self.time, 6),
            'base': [float(v) for v in self.base],
            'gripper': {
                'position': [float(v) for v in g.position],
                'yaw': float(g.yaw),
                'opening': float(g.opening),
                'target': float(g.target),
                'held': g.held,
                'held_offset': [float(v) for v in g.held_offset],
            },
            'blocks': [{
                'name': b.spec.name, 'colour': b.spec.colour, 'shape': b.spec.shape,
                'size': b.spec.size, 'position': [float(v) for v in b.position],
                'yaw': float(b.yaw), 'support': b.support,
            } for b in self.blocks],
        }


def sim_from_snapshot(data: Dict[str, Any], config: SimConfig = SimConfig()) -> TabletopSim:
    """Rebuild a simulator from `TabletopSim.snapshot()` data (e.g. the node's state topic)."""
    blocks = [Block(BlockSpec(b['colour'], b['shape'], b['size']),
                    np.array(b['position'], dtype=float), float(b['yaw']), int(b['support']))
              for b in data['blocks']]
    g = data['gripper']
    gripper = Gripper(position=np.array(g['position'], dtype=float), yaw=float(g['yaw']),
                      opening=float(g['opening']), target=float(g['target']),
                      held=None if g['held'] is None else int(g['held']),
                      held_offset=tuple(g.get('held_offset', (0.0, 0.0, 0.0))))
    sim = TabletopSim(blocks, gripper, config)
    sim.base = np.array(data.get('base', (0.0, 0.0, 0.0)), dtype=float)
    sim.time = float(data.get('time', 0.0))
    return sim

"""
The safety stage: the one gate between a policy's numbers and the robot's actuators.

A VLA is an untrusted function of pixels. Whatever it (or the chunk merging, or a bug upstream)
produces, what leaves this module is finite, within the speed limits, moves the end effector
only inside the configured workspace, and opens the gripper only within its range. The node's
actuator publishers accept only SafeCommand / SafePoseTarget objects, which only this module can
create, so there is no other path to an actuator topic.

Limits are checked on every executed control step, not per decision: a decision's delta becomes a
velocity over the decision period, and that velocity is what is clamped. Every alteration is
counted by cause so an operator sees how often the policy is being overruled.
"""
from dataclasses import dataclass, field
import math
import threading
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

CAUSES = (
    'non_finite', 'linear_speed', 'angular_speed', 'base_linear_speed', 'base_angular_speed',
    'workspace', 'no_pose', 'gripper_range', 'pose_lead',
)
_TOKEN = object()


class CommandRejected(Exception):
    """The command cannot be made safe by clamping (non-finite values); the caller must halt."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class SafetyLimits:
    """
    Task-level limits, in the output frame.

    workspace_min / workspace_max: [x, y, z] box for the end-effector position, or None for no
    box. pose_timeout_s: how old an ee_pose may be and still count as known. lookahead_s: how far
    ahead the workspace check extrapolates the commanded velocity (at least a control period, so
    the arm cannot cross a wall between two commands).
    """

    max_linear_speed: float = 0.1
    max_angular_speed: float = 0.5
    max_base_linear_speed: float = 0.2
    max_base_angular_speed: float = 0.5
    workspace_min: Optional[Tuple[float, float, float]] = None
    workspace_max: Optional[Tuple[float, float, float]] = None
    gripper_min: float = 0.0
    gripper_max: float = 1.0
    pose_timeout_s: float = 0.5
    lookahead_s: float = 0.04
    max_pose_lead_s: float = 0.5

    def __post_init__(self) -> None:
        for name in ('max_linear_speed', 'max_angular_speed', 'max_base_linear_speed',
                     'max_base_angular_speed', 'pose_timeout_s', 'lookahead_s',
                     'max_pose_lead_s'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
        if (self.workspace_min is None) != (self.workspace_max is None):
            raise ValueError('workspace_min and workspace_max must be given together')
        if self.workspace_min is not None:
            low = _vector3(self.workspace_min, 'workspace_min')
            high = _vector3(self.workspace_max, 'workspace_max')
            for axis, lo, hi in zip('xyz', low, high):
                if not lo < hi:
                    raise ValueError(f'workspace {axis}: min {lo} must be below max {hi}')
        if not (math.isfinite(self.gripper_min) and math.isfinite(self.gripper_max)
                and self.gripper_min <= self.gripper_max):
            raise ValueError(
                f'gripper range [{self.gripper_min}, {self.gripper_max}] is not a finite range')

    @property
    def has_workspace(self) -> bool:
        return self.workspace_min is not None


def _vector3(values: Sequence[float], name: str) -> Tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be three numbers, got {values!r}') from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValueError(f'{name} must be three finite numbers [x, y, z], got {values!r}')
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class MotionCommand:
    """
    A proposed command for one control step (not yet safe).

    linear m/s and angular rad/s of the end effector in the output frame; base_linear (x, y) m/s
    and base_angular rad/s for a mobile base; gripper a joint position, None = no new target.
    """

    linear: np.ndarray = field(default_factory=lambda: np.zeros(3))
    angular: np.ndarray = field(default_factory=lambda: np.zeros(3))
    base_linear: np.ndarray = field(default_factory=lambda: np.zeros(2))
    base_angular: float = 0.0
    gripper: Optional[float] = None


@dataclass(frozen=True)
class PoseSample:
    """The measured end-effector pose: position (3,), orientation (x, y, z, w), stamp seconds."""

    position: np.ndarray
    orientation: np.ndarray
    stamp: float


@dataclass(frozen=True)
class SafeCommand:
    """A command that passed the safety stage; only SafetyStage can make one."""

    linear: np.ndarray
    angular: np.ndarray
    base_linear: np.ndarray
    base_angular: float
    gripper: Optional[float]
    interventions: Tuple[str, ...]
    is_stop: bool
    token: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.token is not _TOKEN:
            raise TypeError('SafeCommand objects are made by SafetyStage only')


@dataclass(frozen=True)
class SafePoseTarget:
    """A pose target that passed the safety stage (pose output mode)."""

    position: np.ndarray
    orientation: np.ndarray
    interventions: Tuple[str, ...]
    token: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.token is not _TOKEN:
            raise TypeError('SafePoseTarget objects are made by SafetyStage only')


def _clamp_norm(vector: np.ndarray, limit: float) -> Tuple[np.ndarray, bool]:
    norm = float(np.linalg.norm(vector))
    if norm <= limit:
        return vector, False
    return vector * (limit / norm), True


class SafetyStage:
    """Clamp and check commands against SafetyLimits; thread-safe counters by cause."""

    def __init__(self, limits: SafetyLimits) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._counts: Dict[str, int] = dict.fromkeys(CAUSES, 0)

    @property
    def limits(self) -> SafetyLimits:
        return self._limits

    def set_limits(self, limits: SafetyLimits) -> None:
        """Swap limits atomically (a parameter change at runtime)."""
        self._limits = limits

    def counts(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def count(self, cause: str) -> None:
        """Record an intervention decided outside check() (e.g. pose mode without a pose)."""
        self._count([cause])

    def _count(self, causes: Sequence[str]) -> None:
        if causes:
            with self._lock:
                for cause in causes:
                    self._counts[cause] = self._counts.get(cause, 0) + 1

    def pose_is_fresh(self, pose: Optional[PoseSample], now: float) -> bool:
        return pose is not None and now - pose.stamp <= self._limits.pose_timeout_s

    def stop_command(self) -> SafeCommand:
        """All-zero motion that keeps the gripper where it is (no gripper target)."""
        return SafeCommand(np.zeros(3), np.zeros(3), np.zeros(2), 0.0, None, (), True, _TOKEN)

    def check(self, command: MotionCommand, now: float,
              pose: Optional[PoseSample] = None) -> SafeCommand:
        """
        Make a proposed command safe, or raise CommandRejected.

        Order: finiteness, speed clamps, workspace (which can only slow down further), gripper.
        """
        limits = self._limits
        linear = np.asarray(command.linear, dtype=np.float64).reshape(3)
        angular = np.asarray(command.angular, dtype=np.float64).reshape(3)
        base_linear = np.asarray(command.base_linear, dtype=np.float64).reshape(2)
        base_angular = float(command.base_angular)
        gripper = None if command.gripper is None else float(command.gripper)
        finite = (np.all(np.isfinite(linear)) and np.all(np.isfinite(angular))
                  and np.all(np.isfinite(base_linear)) and math.isfinite(base_angular)
                  and (gripper is None or math.isfinite(gripper)))
        if not finite:
            self._count(['non_finite'])
            raise CommandRejected('non_finite', 'command contains NaN or infinity')
        causes = []
        linear, hit = _clamp_norm(linear, limits.max_linear_speed)
        if hit:
            causes.append('linear_speed')
        angular, hit = _clamp_norm(angular, limits.max_angular_speed)
        if hit:
            causes.append('angular_speed')
        base_linear, hit = _clamp_norm(base_linear, limits.max_base_linear_speed)
        if hit:
            causes.append('base_linear_speed')
        if abs(base_angular) > limits.max_base_angular_speed:
            base_angular = math.copysign(limits.max_base_angular_speed, base_angular)
            causes.append('base_angular_speed')
        if limits.has_workspace:
            moving = bool(np.any(linear) or np.any(angular))
            if not self.pose_is_fresh(pose, now):
                if moving:
                    causes.append('no_pose')
                linear = np.zeros(3)
                angular = np.zeros(3)
            else:
                linear, hit = self._keep_inside(linear, pose, now)
                if hit:
                    causes.append('workspace')
        if gripper is not None:
            clamped = min(limits.gripper_max, max(limits.gripper_min, gripper))
            if clamped != gripper:
                causes.append('gripper_range')
                gripper = clamped
        self._count(causes)
        return SafeCommand(linear, angular, base_linear, base_angular, gripper, tuple(causes),
                           False, _TOKEN)

    def _keep_inside(self, linear: np.ndarray, pose: PoseSample,
                     now: float) -> Tuple[np.ndarray, bool]:
        """
        Slow each axis so the extrapolated position stays in the box.

        Extrapolates over lookahead_s plus the pose's age (the arm kept moving since the pose
        was measured). Outside the box, only motion back towards it is allowed.
        """
        limits = self._limits
        low = np.asarray(limits.workspace_min, dtype=np.float64)
        high = np.asarray(limits.workspace_max, dtype=np.float64)
        position = np.asarray(pose.position, dtype=np.float64)
        horizon = limits.lookahead_s + max(0.0, now - pose.stamp)
        horizon = max(horizon, 1e-3)
        out = linear.copy()
        for i in range(3):
            if out[i] > 0.0:
                room = high[i] - position[i]
                out[i] = 0.0 if room <= 0.0 else min(out[i], room / horizon)
            elif out[i] < 0.0:
                room = position[i] - low[i]
                out[i] = 0.0 if room <= 0.0 else max(out[i], -room / horizon)
        return out, bool(np.any(out != linear))

    def check_pose_target(self, position: Sequence[float], orientation: Sequence[float],
                          now: float, pose: Optional[PoseSample]) -> SafePoseTarget:
        """
        Make an absolute pose target safe (pose output mode), or raise CommandRejected.

        The target must be finite, inside the workspace, and not lead the measured pose by more
        than max speed x max_pose_lead_s, so a controller that jumps to targets cannot be made to
        jump far. Without a fresh measured pose there is nothing to anchor to: rejected.
        """
        limits = self._limits
        target = np.asarray(position, dtype=np.float64).reshape(3)
        quat = np.asarray(orientation, dtype=np.float64).reshape(4)
        if not (np.all(np.isfinite(target)) and np.all(np.isfinite(quat))):
            self._count(['non_finite'])
            raise CommandRejected('non_finite', 'pose target contains NaN or infinity')
        if not self.pose_is_fresh(pose, now):
            self._count(['no_pose'])
            raise CommandRejected('no_pose', 'pose mode needs a fresh ee_pose')
        norm = float(np.linalg.norm(quat))
        if norm < 1e-9:
            self._count(['non_finite'])
            raise CommandRejected('non_finite', 'pose target orientation is a zero quaternion')
        quat = quat / norm
        causes = []
        current = np.asarray(pose.position, dtype=np.float64)
        lead = target - current
        max_lead = limits.max_linear_speed * limits.max_pose_lead_s
        lead, hit = _clamp_norm(lead, max_lead)
        if hit:
            causes.append('pose_lead')
            target = current + lead
        current_q = np.asarray(pose.orientation, dtype=np.float64)
        dot = abs(float(np.dot(quat, current_q / max(np.linalg.norm(current_q), 1e-12))))
        angle = 2.0 * math.acos(min(1.0, dot))
        max_angle = limits.max_angular_speed * limits.max_pose_lead_s
        if angle > max_angle + 1e-9:
            causes.append('pose_lead')
            quat = _slerp(current_q / np.linalg.norm(current_q), quat, max_angle / angle)
        if limits.has_workspace:
            low = np.asarray(limits.workspace_min)
            high = np.asarray(limits.workspace_max)
            clipped = np.minimum(high, np.maximum(low, target))
            if np.any(clipped != target):
                causes.append('workspace')
                target = clipped
        self._count(causes)
        return SafePoseTarget(target, quat, tuple(dict.fromkeys(causes)), _TOKEN)


def _slerp(a: np.ndarray, b: np.ndarray, fraction: float) -> np.ndarray:
    dot = float(np.dot(a, b))
    if dot < 0.0:
        b, dot = -b, -dot
    dot = min(1.0, dot)
    theta = math.acos(dot)
    if theta < 1e-9:
        return a
    out = (math.sin((1 - fraction) * theta) * a + math.sin(fraction * theta) * b) / math.sin(theta)
    return out / np.linalg.norm(out)

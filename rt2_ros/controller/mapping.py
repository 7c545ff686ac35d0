"""
From an action step in the action space's units to velocities and a gripper joint position.

The contract (docs/architecture.md): translation and rotation dimensions are displacements over
one decision period T, executed as the constant velocity delta / T; rotation deltas are extrinsic
roll/pitch/yaw converted through the rotation vector; the gripper dimension is an absolute target
mapped by the space to an openness in [0, 1] and by the controller parameters to a joint
position. Which dimension is which comes from the space's roles and axes, never from positions,
so reordering a YAML file cannot make the controller send dz as dx.
"""
from dataclasses import dataclass
import math
from typing import Dict, List, Optional

import numpy as np

from rt2_ros.actions import ActionSpace
from rt2_ros.controller.rotation import angular_velocity
from rt2_ros.controller.safety import MotionCommand

_AXES = {'x': 0, 'y': 1, 'z': 2}


@dataclass(frozen=True)
class GripperMap:
    """Openness (0 closed .. 1 open) -> joint position; the positions are robot parameters."""

    open_position: float = 1.0
    closed_position: float = 0.0

    def position(self, openness: float) -> float:
        return self.closed_position + openness * (self.open_position - self.closed_position)

    def openness(self, position: float) -> Optional[float]:
        """Measured joint position -> openness in [0, 1]; None for a non-finite reading."""
        position = float(position)
        if not math.isfinite(position) or self.open_position == self.closed_position:
            return None
        fraction = (position - self.closed_position) / (self.open_position - self.closed_position)
        return min(1.0, max(0.0, fraction))

    @property
    def low(self) -> float:
        return min(self.open_position, self.closed_position)

    @property
    def high(self) -> float:
        return max(self.open_position, self.closed_position)


def _axis_indices(space: ActionSpace, role: str, axes: str) -> Dict[int, int]:
    """Map output axis -> action index for the dims with this role."""
    found: Dict[int, int] = {}
    indices = space.indices(role)
    for order, index in enumerate(indices):
        dim = space.dimensions[index]
        axis = _AXES.get(dim.axis or '', order if dim.axis is None else -1)
        if axis < 0 or axis >= len(axes) or axis in found:
            raise ValueError(
                f'action space {space.name}: {role} dimension {dim.name} has axis '
                f'{dim.axis!r}; expected one of {", ".join(axes)} once each')
        found[axis] = index
    return found


class ActionMapper:
    """Precomputed index maps for one action space and decision period."""

    def __init__(self, space: ActionSpace, period_s: float, gripper: GripperMap) -> None:
        if not period_s > 0.0:
            raise ValueError(f'decision period must be positive, got {period_s}')
        self.space = space
        self.period = float(period_s)
        self.gripper = gripper
        self._translation = _axis_indices(space, 'translation', 'xyz')
        self._rotation = _axis_indices(space, 'rotation', 'xyz')
        self._base_translation = _axis_indices(space, 'base_translation', 'xy')
        base_rotation = space.indices('base_rotation')
        if len(base_rotation) > 1:
            raise ValueError(f'action space {space.name}: more than one base_rotation dimension')
        self._base_rotation = base_rotation[0] if base_rotation else None
        self._gripper = space.gripper_index

    @property
    def has_arm(self) -> bool:
        return bool(self._translation or self._rotation)

    @property
    def has_base(self) -> bool:
        return bool(self._base_translation) or self._base_rotation is not None

    @property
    def has_gripper(self) -> bool:
        return self._gripper is not None

    def gripper_position(self, values: np.ndarray) -> Optional[float]:
        if self._gripper is None:
            return None
        openness = self.space.gripper_openness(float(values[self._gripper]))
        return self.gripper.position(openness)

    def gripper_openness(self, values: np.ndarray) -> Optional[float]:
        if self._gripper is None:
            return None
        return self.space.gripper_openness(float(values[self._gripper]))

    def velocities(self, values: np.ndarray) -> MotionCommand:
        """Velocities that perform one step's displacement over the decision period."""
        values = np.asarray(values, dtype=np.float64)
        linear = np.zeros(3)
        for axis, index in self._translation.items():
            linear[axis] = values[index] / self.period
        rpy = np.zeros(3)
        for axis, index in self._rotation.items():
            rpy[axis] = values[index]
        if np.all(np.isfinite(rpy)):
            angular = angular_velocity(rpy, self.period)
        else:
            angular = rpy  # keeps the NaN so the safety stage rejects it
        base_linear = np.zeros(2)
        for axis, index in self._base_translation.items():
            base_linear[axis] = values[index] / self.period
        base_angular = 0.0
        if self._base_rotation is not None:
            base_angular = float(values[self._base_rotation]) / self.period
        return MotionCommand(linear, angular, base_linear, base_angular,
                             self.gripper_position(values))

    def blend(self, parts: List[tuple]) -> MotionCommand:
        """
        Mix the velocities of (values, weight) parts; weights are fractions of a control tick.

        The unweighted rest of the tick is standing still. The gripper target is the first
        part's (the step executing at the start of the tick).
        """
        linear = np.zeros(3)
        angular = np.zeros(3)
        base_linear = np.zeros(2)
        base_angular = 0.0
        gripper = None
        for k, (values, weight) in enumerate(parts):
            command = self.velocities(values)
            linear = linear + weight * command.linear
            angular = angular + weight * command.angular
            base_linear = base_linear + weight * command.base_linear
            base_angular += weight * command.base_angular
            if k == 0:
                gripper = command.gripper
        return MotionCommand(linear, angular, base_linear, base_angular, gripper)

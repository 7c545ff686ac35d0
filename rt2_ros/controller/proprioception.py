"""
The gripper's measured opening, for a policy whose prompt states it (proprioception).

A model told `the gripper is open` acts on it: at a block it closes and holds while the fingers
are open and lifts once they are shut. So an opening that may no longer be true is worse than
none: a reading counts only while its stamp is within the pose timeout of the clock (on both
sides, as for ee_pose); without one the policy is asked nothing it would need it for and the
controller halts on the policy's error until a fresh reading arrives.
"""
from dataclasses import dataclass
import math
from typing import Optional, Sequence


@dataclass(frozen=True)
class GripperReading:
    """One measurement: openness (0 shut .. 1 fully open) at stamp (seconds, node clock)."""

    opening: float
    stamp: float


def joint_position(names: Sequence[str], positions: Sequence[float],
                   joint: str) -> Optional[float]:
    """Return `joint`'s position in a JointState's name/position lists, or None when absent."""
    names = list(names)
    if joint not in names or names.index(joint) >= len(positions):
        return None
    return float(positions[names.index(joint)])


def fresh_opening(reading: Optional[GripperReading], now: float,
                  max_age_s: float) -> Optional[float]:
    """Return the reading's opening if its stamp is within max_age_s of now, else None."""
    if reading is None or not math.isfinite(reading.opening):
        return None
    if not -max_age_s <= now - reading.stamp <= max_age_s:
        return None
    return reading.opening

"""
A scripted expert with noise that solves every task family, acting in the `rt2` action space.

It is a state machine over what the camera shows (where the hand is, whether it holds the
block, where the blocks are), not over time, so the same picture always gets the same answer:
that is what makes it learnable from image + instruction alone. Each decision is a dead-beat
step towards the next waypoint (move all the way if within 5 cm, else 5 cm straight towards it;
the direction is kept when saturating), with the hand kept upright (no roll/pitch/yaw) because
every block fits the open fingers at any yaw.

Noise: Gaussian jitter on every translation, and now and then a larger slip, drawn from the
episode's own generator. `act` returns both the executed (noisy) action and the intended
(noise-free) one, so a learner can be trained DART-style on the intended label while the
states come from noisy execution.
"""
from dataclasses import dataclass
import math
from typing import Optional, Tuple

import numpy as np

# Below this finger opening (a fraction of the full width) the gripper counts as closed: shut on
# a block, or on nothing; the prompt's gripper word follows the same test.
from rt2_ros.policy.prompts import GRIPPER_OPEN_AT
from rt2_ros.sim.splits import REGIONS
from rt2_ros.sim.tasks import footprint_gap, NEXT_TO_GAP, PICK_LIFT, Task
from rt2_ros.sim.world import Block, FINGER_THICKNESS, GRIPPER, TabletopSim

MAX_STEP = 0.05            # the rt2 space's translation bound per decision (m)
GRASP_HEIGHT = 0.006       # fingertips above the block's bottom when closing
HOVER_CLEARANCE = 0.03     # fingertips above the block's top while approaching
ALIGN_TOL = 0.012          # horizontal error allowed before descending / closing
LIFT_TIP_Z = 0.13          # fingertip height a picked block is lifted to
CARRY_CLEARANCE = 0.025    # a carried block's bottom above every other block's top
RELEASE_TOL = 0.005        # a carried block's bottom this close to its support -> open
RETREAT_CLEARANCE = 0.03   # fingertips above a released block before terminating
PUSH_HEIGHT = 0.008        # fingertips above the table while pushing
PUSHER_HALF = FINGER_THICKNESS  # half size of the closed fingers seen from above
PUSH_BACKOFF = 0.025       # start a push this far behind the block
PUSH_TARGET_GAP = 0.008    # aim for this gap between pushed block and its neighbour
PUSH_LATERAL_TOL = 0.012

# rt2 action layout: terminate, dx, dy, dz, droll, dpitch, dyaw, gripper_extension.
CONTINUE = 1.0
TERMINATE = 0.0


@dataclass(frozen=True)
class ExpertNoise:
    """Execution noise of the expert (metres per decision)."""

    translation_std: float = 0.003
    slip_probability: float = 0.04
    slip_std: float = 0.012

    @staticmethod
    def none() -> 'ExpertNoise':
        return ExpertNoise(0.0, 0.0, 0.0)


def saturate_step(delta: np.ndarray) -> np.ndarray:
    """Scale a translation so no axis exceeds the per-step bound, keeping its direction."""
    biggest = float(np.max(np.abs(delta)))
    if biggest <= MAX_STEP:
        return delta
    return delta * (MAX_STEP / biggest)


class ScriptedExpert:
    """Noisy scripted policy for one episode's task."""

    def __init__(self, task: Task, noise: ExpertNoise = ExpertNoise(),
                 seed: Optional[int] = None) -> None:
        self.task = task
        self.noise = noise
        self.rng = np.random.default_rng([int(task.seed if seed is None else seed), 0x5EED])

    # -- public -----------------------------------------------------------------------------

    def act(self, sim: TabletopSim) -> Tuple[np.ndarray, np.ndarray]:
        """Return (executed, intended) rt2 actions for the current state."""
        target, gripper, done = self.plan(sim)
        intended = np.zeros(8)
        intended[7] = gripper
        if done:
            intended[0] = TERMINATE
            return intended.copy(), intended
        tip, _ = sim.ee_world()
        delta_world = saturate_step(target - tip)
        delta = self._to_base(sim, delta_world)
        intended[0] = CONTINUE
        intended[1:4] = delta
        executed = intended.copy()
        jitter = self.rng.normal(0.0, 1.0, size=3) * self.noise.translation_std
        if self.rng.random() < self.noise.slip_probability:
            jitter = jitter + self.rng.normal(0.0, 1.0, size=3) * self.noise.slip_std
        executed[1:4] = np.clip(delta + jitter, -MAX_STEP, MAX_STEP)
        return executed, intended

    def plan(self, sim: TabletopSim) -> Tuple[np.ndarray, float, bool]:
        """Return (fingertip waypoint in the world, gripper target, done) for the state."""
        family = self.task.family
        if family == 'pick':
            return self._pick(sim)
        if family == 'place_on':
            y = sim.blocks[self.task.reference]
            return self._transport(sim, y.position[:2], y.top, lambda: self.task.success(sim))
        if family == 'move_to':
            goal = np.array(REGIONS[self.task.region]['goal'])
            return self._transport(sim, goal, 0.0, lambda: self.task.success(sim))
        if family == 'push_next_to':
            return self._push(sim)
        raise ValueError(f'unknown family {family!r}')

    # -- pieces -----------------------------------------------------------------------------

    @staticmethod
    def _to_base(sim: TabletopSim, delta_world: np.ndarray) -> np.ndarray:
        yaw = float(sim.base[2])
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([c * delta_world[0] + s * delta_world[1],
                         -s * delta_world[0] + c * delta_world[1], delta_world[2]])

    def _approach_and_grasp(self, sim: TabletopSim,
                            x: Block) -> Tuple[np.ndarray, float, bool]:
        """Waypoints that end with the block between closed fingers."""
        tip, _ = sim.ee_world()
        g = sim.gripper
        hover_z = x.top + HOVER_CLEARANCE
        grasp_z = float(x.position[2]) + GRASP_HEIGHT
        error = x.position[:2] - tip[:2]
        dist = float(np.linalg.norm(error))
        if g.held is not None:
            # Holding the wrong block: put it down where it is.
            return tip.copy(), 1.0, False
        if g.target < 0.5 or g.opening < GRIPPER_OPEN_AT:
            # Closed on nothing (a missed grasp): open, backing up if down among the blocks.
            return np.array([tip[0], tip[1], max(tip[2], hover_z)]), 1.0, False
        if dist > ALIGN_TOL:
            if tip[2] < x.top + 0.005:
                return np.array([tip[0], tip[1], hover_z]), 1.0, False
            return np.array([x.position[0], x.position[1], hover_z]), 1.0, False
        if abs(tip[2] - grasp_z) > 0.008:
            return np.array([x.position[0], x.position[1], grasp_z]), 1.0, False
        return tip.copy(), 0.0, False

    def _pick(self, sim: TabletopSim) -> Tuple[np.ndarray, float, bool]:
        x = sim.blocks[self.task.target]
        tip, _ = sim.ee_world()
        if sim.gripper.held == self.task.target:
            if float(x.position[2]) >= PICK_LIFT + 0.01:
                return tip.copy(), 0.0, True
            return np.array([tip[0], tip[1], LIFT_TIP_Z]), 0.0, False
        return self._approach_and_grasp(sim, x)

    def _transport(self, sim: TabletopSim, goal_xy: np.ndarray, surface: float,
                   succeeded) -> Tuple[np.ndarray, float, bool]:
        """Pick the block, carry it over the goal, lower it onto the surface, let go, back off."""
        index = self.task.target
        x = sim.blocks[index]
        tip, _ = sim.ee_world()
        g = sim.gripper
        if g.held != index:
            if succeeded() and x.support != GRIPPER:
                if tip[2] < x.top + RETREAT_CLEARANCE - 0.005:
                    return np.array([tip[0], tip[1], x.top + RETREAT_CLEARANCE + 0.01]), 1.0, \
                        False
                return tip.copy(), 1.0, True
            return self._approach_and_grasp(sim, x)
        carried = set(sim.stack_above(index))
        others = [b.top for i, b in enumerate(sim.blocks) if i not in carried]
        clear = max(others + [surface]) + CARRY_CLEARANCE
        bottom = float(x.position[2])
        dz = bottom - float(tip[2])  # block bottom relative to the fingertips
        error = np.asarray(goal_xy, dtype=float) - x.position[:2]
        if float(np.linalg.norm(error)) > ALIGN_TOL * 0.75:
            if bottom < clear - 0.01:
                return np.array([tip[0], tip[1], clear - dz + 0.01]), 0.0, False
            return np.array([tip[0] + error[0], tip[1] + error[1], clear - dz + 0.01]), 0.0, \
                False
        if bottom - surface > RELEASE_TOL:
            return np.array([tip[0] + error[0], tip[1] + error[1], surface - dz]), 0.0, False
        return tip.copy(), 1.0, False

    def _push(self, sim: TabletopSim) -> Tuple[np.ndarray, float, bool]:
        x = sim.blocks[self.task.target]
        y = sim.blocks[self.task.reference]
        tip, _ = sim.ee_world()
        g = sim.gripper
        if g.held is not None:
            return tip.copy(), 1.0, False
        gap = footprint_gap(x, y)
        if gap <= NEXT_TO_GAP - 0.01 and x.support != GRIPPER:
            if tip[2] < x.top + RETREAT_CLEARANCE - 0.005:
                return np.array([tip[0], tip[1], x.top + RETREAT_CLEARANCE + 0.01]), 0.0, False
            return tip.copy(), 0.0, True
        towards = y.position[:2] - x.position[:2]
        u = towards / max(float(np.linalg.norm(towards)), 1e-9)
        perp = np.array([-u[1], u[0]])
        # How far the block reaches back towards the pusher.
        back = float(np.max((x.position[:2] - x.polygon()) @ u))
        contact = back + PUSHER_HALF
        goal = y.position[:2] - u * (x.spec.radius + y.spec.radius + PUSH_TARGET_GAP)
        hover_z = max(b.top for b in sim.blocks) + HOVER_CLEARANCE
        rel = tip[:2] - x.position[:2]
        along, lateral = float(rel @ u), float(rel @ perp)
        low = tip[2] < x.top - 0.005
        if low and along <= -back + 0.004 and abs(lateral) <= PUSH_LATERAL_TOL:
            target_xy = goal - u * contact
            return np.array([target_xy[0], target_xy[1], PUSH_HEIGHT]), 0.0, False
        start = x.position[:2] - u * (contact + PUSH_BACKOFF)
        off = float(np.linalg.norm(tip[:2] - start))
        if off <= ALIGN_TOL * 0.75:
            return np.array([start[0], start[1], PUSH_HEIGHT]), 0.0, False
        if low and along <= -contact - 0.003 and abs(lateral) <= 0.04:
            # Behind the block already: slide into the start spot without lifting.
            return np.array([start[0], start[1], PUSH_HEIGHT]), 0.0, False
        if tip[2] < hover_z - 0.01:
            return np.array([tip[0], tip[1], hover_z]), 0.0, False
        return np.array([start[0], start[1], hover_z]), 0.0, False

"""
Pure (no ROS) rollouts: the controller's action execution, episodes, demonstrations.

Executing an action here is what `rt2_controller` does with it (docs/architecture.md), with the
controller's own parts: the action space's codec turns tokens into values, `ActionMapper` turns
a step into velocities over one decision period T (rotation through the rotation vector; the
gripper an absolute target), and `SafetyStage`, with the simulator's limits preset
(rt2_ros.sim.limits), clamps every control tick against the measured end-effector pose before
the command reaches the sim. The terminate token ends the episode. A rollout here therefore
matches a closed loop over ROS up to message timing, and a demonstration's action is exactly
what its tokens decode to.
"""
from dataclasses import dataclass, field
import functools
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.controller.mapping import ActionMapper
from rt2_ros.controller.params import defaults, gripper_map
from rt2_ros.controller.safety import PoseSample, SafetyLimits, SafetyStage
from rt2_ros.sim.expert import ExpertNoise, ScriptedExpert
from rt2_ros.sim.limits import sim_safety_limits
from rt2_ros.sim.render import CameraSpec, Renderer
from rt2_ros.sim.splits import REGIONS
from rt2_ros.sim.tasks import Episode, make_episode
from rt2_ros.sim.world import SimConfig, TabletopSim

DEFAULT_DECISION_RATE_HZ = 5.0
DEFAULT_MAX_STEPS = 40
CONTROL_RATE_HZ = 50.0  # rt2_controller's default control_rate_hz
# The rows of Step.points: where each image point of a grounded plan comes from. The '_ground'
# rows are the same places dropped onto the table (z = 0): there, image rows order points by x
# and columns by y alone, where a point in the air also moves up the image with its height.
# 'goal' is where the task brings the block: the other block's top for place_on and
# push_next_to, the region's goal point on the table for move_to, the block itself for pick.
POINT_ROWS = ('waypoint', 'fingertips', 'target', 'waypoint_ground', 'fingertips_ground',
              'goal')


@functools.lru_cache(maxsize=8)
def _preset(name: str):
    space = load_action_space(name)
    return space, make_codec(space)


def _yaw_quaternion(yaw: float) -> np.ndarray:
    return np.array([0.0, 0.0, np.sin(yaw / 2.0), np.cos(yaw / 2.0)])


class ActionExecutor:
    """Executes actions in the sim through the controller's codec, mapper and safety stage."""

    def __init__(self, decision_period_s: float = 1.0 / DEFAULT_DECISION_RATE_HZ,
                 space: Union[str, object] = 'rt2', limits: Optional[SafetyLimits] = None,
                 control_rate_hz: float = CONTROL_RATE_HZ) -> None:
        if isinstance(space, str):
            self.space, self.codec = _preset(space)
        else:
            self.space, self.codec = space, make_codec(space)
        self.period = float(decision_period_s)
        if not self.period > 0:
            raise ValueError('decision period must be positive')
        self.mapper = ActionMapper(self.space, self.period, gripper_map(defaults()))
        self.safety = SafetyStage(limits or sim_safety_limits(control_rate_hz))
        self.control_period = 1.0 / float(control_rate_hz)
        self._term = self.space.terminate_index

    def quantize(self, values: Sequence[float]) -> np.ndarray:
        """Return the bins of an action (clipped to the space's bounds)."""
        return self.codec.values_to_bins(np.asarray(values, dtype=float))

    def values(self, bins: Sequence[int]) -> np.ndarray:
        """Return an action's values in the space's units from its bins."""
        return self.codec.bins_to_values(bins)

    def decode(self, bins: Sequence[int]):
        return self.codec.from_bins(bins)

    def text(self, bins: Sequence[int]) -> str:
        return ' '.join(str(int(b)) for b in bins)

    def execute(self, sim: TabletopSim, bins: Sequence[int]) -> bool:
        """
        Run one decision period in the sim; return True if the action says terminate.

        Like the controller's control loop: the step's velocities are checked by the safety
        stage every control tick against the pose the arm has then, and the safe command is
        what the sim integrates until the next tick.
        """
        if self.is_terminate(bins):
            sim.stop()
            return True
        command = self.mapper.velocities(self.values(bins))
        physics = max(1, int(round(self.control_period * sim.config.physics_rate_hz)))
        for _ in range(max(1, int(round(self.period / self.control_period)))):
            g = sim.gripper
            pose = PoseSample(np.array(g.position, dtype=float), _yaw_quaternion(g.yaw),
                              sim.time)
            safe = self.safety.check(command, sim.time, pose)
            if safe.gripper is not None:
                sim.set_gripper(safe.gripper)
            sim.set_velocity(safe.linear, safe.angular[2])
            sim.step(physics)
        sim.stop()
        return False

    def is_terminate(self, bins: Sequence[int]) -> bool:
        """Tell whether an action's terminate dimension says terminate."""
        if self._term is None:
            return False
        dim = self.space.dimensions[self._term]
        return dim.labels[int(bins[self._term])] == 'terminate'

    def ticks(self, sim: TabletopSim) -> int:
        """Physics ticks in one decision period."""
        return max(1, int(round(self.period * sim.config.physics_rate_hz)))


@dataclass
class Step:
    """One decision: what the camera showed and what was done."""

    image: Optional[np.ndarray]
    bins: np.ndarray          # executed action's tokens (rt2 bins)
    action: np.ndarray        # executed action in rt2 units (decoded from the bins)
    intended: np.ndarray      # the expert's noise-free action in rt2 units (quantized)
    intended_bins: np.ndarray
    ee: np.ndarray            # fingertip x, y, z (base_link), yaw, gripper opening
    text: str = ''
    # Camera pixels (row, col) of the expert's waypoint, the fingertips, the top centre of the
    # block the task acts on, the first two on the table and the goal (6, 2; POINT_ROWS names the
    # rows); only with expert_episode(points=True): what a grounded chain-of-thought plan writes.
    points: Optional[np.ndarray] = None


@dataclass
class Demonstration:
    """One expert episode."""

    task: Dict
    instruction: str
    steps: List[Step] = field(default_factory=list)
    success: bool = False
    terminated: bool = False

    def images(self) -> np.ndarray:
        return np.stack([s.image for s in self.steps])

    def actions(self) -> np.ndarray:
        return np.stack([s.action for s in self.steps])


@dataclass
class EpisodeResult:
    """Outcome of a closed-loop episode."""

    task: Dict
    instruction: str
    success: bool
    terminated: bool
    steps: int
    frames: List[np.ndarray] = field(default_factory=list)
    actions: List[np.ndarray] = field(default_factory=list)


def _ee_state(sim: TabletopSim) -> np.ndarray:
    g = sim.gripper
    return np.array([g.position[0], g.position[1], g.position[2], g.yaw, g.opening])


def make_renderer(episode: Episode, width: int = 224, height: int = 224) -> Renderer:
    return Renderer(CameraSpec(width=int(width), height=int(height)), episode.look)


def plan_point_pixels(sim: TabletopSim, expert: ScriptedExpert,
                      renderer: Renderer) -> np.ndarray:
    """
    Return the camera pixels a grounded plan can write for this state (rows: POINT_ROWS).

    Call it before the expert acts on the state: the waypoint is the one that action heads for.
    """
    task = expert.task
    block = sim.blocks[task.target]
    waypoint, tip = expert.plan(sim)[0], sim.ee_world()[0]
    target = [block.position[0], block.position[1], block.top]
    if task.reference is not None:
        other = sim.blocks[task.reference]
        goal = [other.position[0], other.position[1], other.top]
    elif task.region is not None:
        goal = list(REGIONS[task.region]['goal']) + [0.0]
    else:
        goal = target
    return renderer.pixels(sim, np.stack([
        waypoint, tip, target, [waypoint[0], waypoint[1], 0.0], [tip[0], tip[1], 0.0], goal]))


def expert_episode(episode: Episode, render: bool = True, width: int = 224, height: int = 224,
                   decision_rate_hz: float = DEFAULT_DECISION_RATE_HZ,
                   max_steps: int = DEFAULT_MAX_STEPS, noise: ExpertNoise = ExpertNoise(),
                   config: SimConfig = SimConfig(), points: bool = False) -> Demonstration:
    """
    Run the scripted expert on an episode, recording every decision.

    points: also record where the expert's waypoint, the fingertips and the task's block are
    in the camera image (Step.points, rows as in POINT_ROWS), even when not rendering.
    """
    sim = episode.build_sim(config)
    renderer = make_renderer(episode, width, height) if render or points else None
    executor = ActionExecutor(1.0 / decision_rate_hz)
    expert = ScriptedExpert(episode.task, noise)
    demo = Demonstration(task=episode.task.to_dict(), instruction=episode.instruction)
    for _ in range(int(max_steps)):
        image = renderer.render(sim) if render else None
        where = plan_point_pixels(sim, expert, renderer) if points else None
        executed, intended = expert.act(sim)
        bins = executor.quantize(executed)
        intended_bins = executor.quantize(intended)
        demo.steps.append(Step(
            image=image, bins=bins, action=executor.values(bins),
            intended=executor.values(intended_bins), intended_bins=intended_bins,
            ee=_ee_state(sim), text=executor.text(bins), points=where))
        if executor.execute(sim, bins):
            demo.terminated = True
            break
    demo.success = episode.task.success(sim)
    return demo


def _demo_for_seed(job) -> Demonstration:
    seed, split, family, variation, args = job
    episode = make_episode(split, int(seed), family=family, variation=variation)
    return expert_episode(episode, *args)


def generate_demonstrations(split: str, seeds: Iterable[int], family: Optional[str] = None,
                            render: bool = True, width: int = 224, height: int = 224,
                            decision_rate_hz: float = DEFAULT_DECISION_RATE_HZ,
                            max_steps: int = DEFAULT_MAX_STEPS,
                            noise: ExpertNoise = ExpertNoise(), variation: str = 'none',
                            only_successful: bool = False,
                            workers: int = 1) -> Iterator[Demonstration]:
    """
    Yield expert demonstrations for a split over a seed range, in seed order.

    Each Demonstration holds the instruction, the task, and per decision the camera image (RGB
    uint8), the executed action's rt2 tokens and values, the intended (noise-free) action, and
    at the end whether the episode succeeded. With only_successful, failed episodes (rare) are
    skipped. workers > 1 spreads the seeds over processes (episodes are independent, so the
    output is the same as with one).
    """
    args = (render, width, height, decision_rate_hz, max_steps, noise)
    jobs = ((seed, split, family, variation, args) for seed in seeds)
    if workers <= 1:
        demos = map(_demo_for_seed, jobs)
        for demo in demos:
            if demo.success or not only_successful:
                yield demo
        return
    import multiprocessing
    with multiprocessing.get_context('spawn').Pool(int(workers)) as pool:
        for demo in pool.imap(_demo_for_seed, jobs, chunksize=4):
            if demo.success or not only_successful:
                yield demo


PolicyFn = Callable[[np.ndarray, str], Union[str, Sequence[float]]]


def run_episode(policy_fn: PolicyFn, split: str, seed: int, family: Optional[str] = None,
                width: int = 224, height: int = 224,
                decision_rate_hz: float = DEFAULT_DECISION_RATE_HZ,
                max_steps: int = DEFAULT_MAX_STEPS, variation: str = 'none',
                keep_frames: bool = False, config: SimConfig = SimConfig()) -> EpisodeResult:
    """
    Run a policy closed loop in the pure sim: image + instruction in, rt2 action out.

    policy_fn returns the model's text (decoded with the rt2 codec, so invalid text raises
    ActionDecodeError) or 8 values in rt2 units (quantized to bins like a model's output).
    """
    episode = make_episode(split, int(seed), family=family, variation=variation)
    sim = episode.build_sim(config)
    renderer = make_renderer(episode, width, height)
    executor = ActionExecutor(1.0 / decision_rate_hz)
    result = EpisodeResult(task=episode.task.to_dict(), instruction=episode.instruction,
                           success=False, terminated=False, steps=0)
    for _ in range(int(max_steps)):
        image = renderer.render(sim)
        output = policy_fn(image, episode.instruction)
        if isinstance(output, str):
            bins = executor.codec.decode(output).bins
        else:
            bins = executor.quantize(output)
        if keep_frames:
            result.frames.append(image)
        result.actions.append(executor.values(bins))
        result.steps += 1
        if executor.execute(sim, bins):
            result.terminated = True
            break
    result.success = episode.task.success(sim)
    return result


def expert_success_rates(split: str, seeds: Iterable[int], families: Sequence[str],
                         noise: ExpertNoise = ExpertNoise(),
                         decision_rate_hz: float = DEFAULT_DECISION_RATE_HZ,
                         max_steps: int = DEFAULT_MAX_STEPS) -> Dict[str, Dict[str, float]]:
    """Return per-family success rate, mean decisions and wall time of the expert (no images)."""
    seeds = list(seeds)
    out = {}
    for family in families:
        start = time.perf_counter()
        wins, steps = 0, 0
        for seed in seeds:
            demo = expert_episode(make_episode(split, seed, family=family), render=False,
                                  decision_rate_hz=decision_rate_hz, max_steps=max_steps,
                                  noise=noise)
            wins += int(demo.success and demo.terminated)
            steps += len(demo.steps)
        out[family] = {'success_rate': wins / len(seeds), 'episodes': len(seeds),
                       'mean_decisions': steps / len(seeds),
                       'seconds': time.perf_counter() - start}
    return out

"""
Pure (no ROS) rollouts: controller-equivalent action execution, episodes, demonstrations.

Executing an action here means what `rt2_controller` does with it (docs/architecture.md): the
translation and rotation are displacements over one decision period T, sent as a constant
velocity delta / T (rotation: the roll-pitch-yaw delta's rotation vector / T) for the physics
ticks of that period; the gripper dimension is an absolute target set at the start of the
period; the terminate token ends the episode. Actions pass through the action codec's bins
first, so a demonstration's action is exactly what its tokens decode to and a rollout here
matches a closed loop over ROS up to message timing.
"""
from dataclasses import dataclass, field
import functools
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.sim.expert import ExpertNoise, ScriptedExpert
from rt2_ros.sim.geometry import rpy_to_rotvec
from rt2_ros.sim.render import CameraSpec, Renderer
from rt2_ros.sim.tasks import Episode, make_episode
from rt2_ros.sim.world import SimConfig, TabletopSim

DEFAULT_DECISION_RATE_HZ = 5.0
DEFAULT_MAX_STEPS = 40
# The rows of Step.points: where each image point of a grounded plan comes from. The '_ground'
# rows are the same places dropped onto the table (z = 0): there, image rows order points by x
# and columns by y alone, where a point in the air also moves up the image with its height.
POINT_ROWS = ('waypoint', 'fingertips', 'target', 'waypoint_ground', 'fingertips_ground')


@functools.lru_cache(maxsize=8)
def _preset(name: str):
    space = load_action_space(name)
    return space, make_codec(space)


class ActionExecutor:
    """Turns rt2-space actions into sim velocity commands over one decision period."""

    def __init__(self, decision_period_s: float = 1.0 / DEFAULT_DECISION_RATE_HZ,
                 space: Union[str, object] = 'rt2') -> None:
        if isinstance(space, str):
            self.space, self.codec = _preset(space)
        else:
            self.space, self.codec = space, make_codec(space)
        self.period = float(decision_period_s)
        if not self.period > 0:
            raise ValueError('decision period must be positive')
        self._t = self.space.indices('translation')
        self._r = self.space.indices('rotation')
        self._g = self.space.gripper_index
        self._term = self.space.terminate_index
        # The codec's per-dimension loop costs more than a physics step; for the RT-1 grid the
        # same arithmetic vectorizes (tested equal to the codec).
        dims = self.space.dimensions
        self._fast = (self.space.binning == 'rt1_grid' and self.codec.unnormalizer is None)
        self._low = np.array([d.low for d in dims])
        self._high = np.array([d.high for d in dims])
        self._steps = np.array([d.bins - 1 for d in dims], dtype=float)
        self._discrete = np.array([d.is_discrete for d in dims])
        self._round = 0.5 if self.space.rounding == 'nearest' else 0.0

    def quantize(self, values: Sequence[float]) -> np.ndarray:
        """Return the bins of an action (clipped to the space's bounds)."""
        array = np.asarray(values, dtype=float)
        if not self._fast or array.shape != self._low.shape or not np.all(np.isfinite(array)) \
                or np.any(array[self._discrete] != np.rint(array[self._discrete])):
            return self.codec.values_to_bins(array)
        scaled = (np.clip(array, self._low, self._high) - self._low) / (self._high - self._low)
        bins = np.floor(scaled * self._steps + self._round)
        bins = np.where(self._discrete, np.clip(np.rint(array), 0, self._steps), bins)
        return np.clip(bins, 0, self._steps).astype(np.int64)

    def values(self, bins: Sequence[int]) -> np.ndarray:
        """Return an action's values in the space's units from its bins."""
        if not self._fast:
            return self.codec.bins_to_values(bins)
        array = np.asarray(bins, dtype=float)
        grid = array / self._steps * (self._high - self._low) + self._low
        return np.where(self._discrete, array, grid)

    def decode(self, bins: Sequence[int]):
        return self.codec.from_bins(bins)

    def text(self, bins: Sequence[int]) -> str:
        return ' '.join(str(int(b)) for b in bins)

    def velocities(self, values: np.ndarray):
        """Return (linear m/s, angular rad/s, gripper position or None) for an action."""
        linear = np.zeros(3)
        for k, i in enumerate(self._t[:3]):
            linear[k] = values[i] / self.period
        rpy = [values[i] for i in self._r[:3]] + [0.0] * (3 - len(self._r[:3]))
        angular = rpy_to_rotvec(*rpy) / self.period
        gripper = None
        if self._g is not None:
            gripper = self.space.gripper_openness(float(values[self._g]))
        return linear, angular, gripper

    def execute(self, sim: TabletopSim, bins: Sequence[int]) -> bool:
        """Run one decision period in the sim; return True if the action says terminate."""
        if self.is_terminate(bins):
            sim.stop()
            return True
        linear, angular, gripper = self.velocities(self.values(bins))
        if gripper is not None:
            sim.set_gripper(gripper)
        sim.set_velocity(linear, angular[2])
        sim.step(self.ticks(sim))
        sim.stop()
        return False

    def is_terminate(self, bins: Sequence[int]) -> bool:
        """Tell whether an action's terminate dimension says terminate."""
        if self._term is None:
            return False
        dim = self.space.dimensions[self._term]
        return dim.labels[int(bins[self._term])] == 'terminate'

    def ticks(self, sim: TabletopSim) -> int:
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
    # block the task acts on, and the first two on the table (5, 2; POINT_ROWS names the
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
    block = sim.blocks[expert.task.target]
    waypoint, tip = expert.plan(sim)[0], sim.ee_world()[0]
    return renderer.pixels(sim, np.stack([
        waypoint, tip, [block.position[0], block.position[1], block.top],
        [waypoint[0], waypoint[1], 0.0], [tip[0], tip[1], 0.0]]))


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

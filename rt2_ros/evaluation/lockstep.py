"""
Many pure-sim episodes in lockstep, so one batched model call serves every running episode.

This is the fast path (no ROS): used for DAgger data collection during training and for the
clearly labelled `rt2 eval-sim --fast` mode. Actions are executed exactly as `run_episode` and
the controller execute them (rt2_ros.sim.rollout.ActionExecutor); the policy sees the 224x224
camera frame and the gripper's opening (what the controller reads from joint_states). With
`label_with_expert`, every visited state also records the scripted expert's
intended action - DAgger's labels for the learner's own states.
"""
from dataclasses import dataclass, field
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from rt2_ros.sim.expert import ExpertNoise, ScriptedExpert
from rt2_ros.sim.rollout import (
    ActionExecutor, DEFAULT_DECISION_RATE_HZ, DEFAULT_MAX_STEPS, make_renderer, plan_point_pixels,
)
from rt2_ros.sim.tasks import make_episode

# images (list of HxWx3 uint8), instructions, gripper openings (0 shut .. 1 open) -> one action
# text per row (rt2 tokens)
BatchPolicy = Callable[[List[np.ndarray], List[str], List[float]], List[str]]


@dataclass
class LockstepEpisode:
    """One episode's outcome (and, when asked, the expert-labelled states it visited)."""

    split: str
    seed: int
    family: str
    referent: str
    instruction: str
    success: bool = False
    terminated: bool = False
    steps: int = 0
    invalid: int = 0
    # Where a failure happened: the closest the fingertips came to the target block (xy,
    # metres) and whether the target was ever held.
    closest_xy_m: float = float('inf')
    grasped: bool = False
    # (image, label text, the expert's plan points there: rows as in rollout.POINT_ROWS, the
    # finger opening)
    states: List[Tuple[np.ndarray, str, np.ndarray, float]] = field(default_factory=list)


@dataclass
class LockstepResult:
    episodes: List[LockstepEpisode]
    decision_latencies_s: List[float]
    wall_s: float


def run_lockstep(policy: BatchPolicy, split: str, seeds: Sequence[int],
                 family: Optional[str] = None, batch: int = 16, max_steps: int = DEFAULT_MAX_STEPS,
                 decision_rate_hz: float = DEFAULT_DECISION_RATE_HZ, variation: str = 'none',
                 label_with_expert: bool = False, keep_image_size: Optional[int] = None,
                 progress: Optional[Callable[[int], None]] = None) -> LockstepResult:
    """
    Run the episodes of `seeds`, `batch` at a time, and report success per episode.

    An output that is not a valid action counts as a failed episode (the controller would hold
    still and the episode time out). keep_image_size resizes recorded states' images.
    """
    from rt2_ros.training.examples import resize_image

    executor = ActionExecutor(1.0 / decision_rate_hz)
    latencies: List[float] = []
    results: List[LockstepEpisode] = []
    start = time.perf_counter()
    seeds = [int(s) for s in seeds]
    for first in range(0, len(seeds), batch):
        running = []
        for seed in seeds[first:first + batch]:
            episode = make_episode(split, seed, family=family, variation=variation)
            record = LockstepEpisode(split, seed, episode.task.family, episode.task.referent,
                                     episode.instruction)
            expert = ScriptedExpert(episode.task, ExpertNoise.none()) if label_with_expert \
                else None
            running.append((episode, episode.build_sim(), make_renderer(episode), expert,
                            record))
            results.append(record)
        active = list(range(len(running)))
        for _ in range(int(max_steps)):
            if not active:
                break
            images = [running[i][2].render(running[i][1]) for i in active]
            instructions = [running[i][0].instruction for i in active]
            openings = [float(running[i][1].gripper.opening) for i in active]
            tick = time.perf_counter()
            texts = policy(images, instructions, openings)
            latencies.append((time.perf_counter() - tick) / max(1, len(active)))
            still = []
            for i, image, text in zip(active, images, texts):
                episode, sim, renderer, expert, record = running[i]
                if expert is not None:
                    points = plan_point_pixels(sim, expert, renderer)
                    intended = executor.quantize(expert.act(sim)[1])
                    stored = image if keep_image_size is None else resize_image(
                        image, keep_image_size)
                    record.states.append((stored, executor.text(intended), points,
                                          float(sim.gripper.opening)))
                record.steps += 1
                _track_progress(episode, sim, record)
                try:
                    bins = executor.codec.decode(text).bins if text is not None else None
                except ValueError:
                    bins = None
                if bins is None:
                    record.invalid += 1
                    continue_running = True
                    sim.stop()
                    sim.step(executor.ticks(sim))
                elif executor.execute(sim, bins):
                    record.terminated = True
                    continue_running = False
                else:
                    continue_running = True
                if continue_running:
                    still.append(i)
            active = still
        for episode, sim, _, _, record in running:
            record.success = bool(episode.task.success(sim))
        if progress is not None:
            progress(len(results))
    return LockstepResult(results, latencies, time.perf_counter() - start)


def _track_progress(episode, sim, record: LockstepEpisode) -> None:
    target = episode.task.target
    gap = float(np.linalg.norm(sim.gripper.position[:2] - sim.blocks[target].position[:2]))
    record.closest_xy_m = min(record.closest_xy_m, gap)
    record.grasped = record.grasped or sim.gripper.held == target


def local_batch_policy(policy) -> BatchPolicy:
    """Wrap a LocalTransformersPolicy (or any infer_batch backend) as a BatchPolicy."""
    from rt2_ros.policy.base import Observation, PolicyError

    def act(images: List[np.ndarray], instructions: List[str],
            openings: List[float]) -> List[str]:
        observations = [Observation(image=im, instruction=ins, gripper=opening)
                        for im, ins, opening in zip(images, instructions, openings)]
        out = policy.infer_batch(observations, return_exceptions=True)
        return [None if isinstance(r, PolicyError) else str(r.raw) for r in out]

    return act

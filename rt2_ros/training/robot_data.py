"""
Robot data: scripted-expert episodes of the sim's `train` split as (image, prompt, action text).

What a tiny model needs to work closed loop, and why each choice is here:
- States off the expert's path. A policy's own small errors take it where a clean expert never
  goes; with no examples there it drifts (covariate shift). Episodes are therefore run with
  execution noise (jitter and slips) at several levels.
- Clean labels on those states (DART, Laskey et al. 2017): the label is the expert's intended,
  noise-free action for the state the camera shows, not the noisy action that was executed, so
  every noisy state teaches the recovery and labels are a function of the picture.
- Seeds are an explicit range of the `train` split; evaluation uses other splits *and* a
  disjoint seed range (see rt2_ros.evaluation.seeds), so no evaluation scene is trained on.
"""
import dataclasses
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from rt2_ros.policy.prompts import build_prompt, gripper_word
from rt2_ros.sim.expert import ExpertNoise
from rt2_ros.sim.rollout import (DEFAULT_DECISION_RATE_HZ, DEFAULT_MAX_STEPS, expert_episode,
                                 POINT_ROWS)
from rt2_ros.sim.tasks import make_episode
from rt2_ros.training.config import ROBOT_PLANS
from rt2_ros.training.examples import ExampleSet, resize_image
from rt2_ros.training.vqa import point_text, vqa_prompt

CAMERA_SIZE = 224  # the sim camera's default frame, which the processor then resizes


@dataclass(frozen=True)
class NoiseLevel:
    """Execution noise for a share of the episodes."""

    translation_std: float
    slip_probability: float
    slip_std: float

    def to_noise(self) -> ExpertNoise:
        return ExpertNoise(self.translation_std, self.slip_probability, self.slip_std)


# From clean to clumsy: the clumsy end visits states a learner's mistakes lead to.
DEFAULT_NOISE_LEVELS: Tuple[NoiseLevel, ...] = (
    NoiseLevel(0.003, 0.04, 0.012),
    NoiseLevel(0.006, 0.10, 0.020),
    NoiseLevel(0.010, 0.20, 0.030),
)


def action_prompt(instruction: str, template: str = 'rt2',
                  opening: Optional[float] = None) -> str:
    """
    Return the prompt every backend builds for an instruction (rt2_ros.policy.prompts).

    opening: the gripper's opening in that state, which a template with `{gripper}` states.
    """
    return build_prompt(template, instruction, gripper=opening)


def bins_text(bins: Sequence[int]) -> str:
    return ' '.join(str(int(b)) for b in bins)


# The image points each plan writes, in order (names as in rollout.POINT_ROWS).
PLAN_POINTS = {'none': (), 'points': ('waypoint', 'fingertips'),
               'target_points': ('target', 'waypoint', 'fingertips'),
               'ground_points': ('target', 'waypoint_ground', 'fingertips_ground')}
PLAN_POINTS['ground_points_gripper'] = PLAN_POINTS['ground_points']
# The plans that also say whether the fingers are open or closed.
PLANS_WITH_GRIPPER = ('ground_points_gripper',)


def plan_points(points: np.ndarray, plan: str) -> np.ndarray:
    """Return the rows of a step's recorded points (rollout.POINT_ROWS) that a plan writes."""
    return np.asarray(points)[[POINT_ROWS.index(name) for name in PLAN_POINTS[plan]]]


def planned_answer(points: np.ndarray, action: str, plan: str = 'points',
                   opening: Optional[float] = None) -> str:
    """
    Write a robot answer as a grounded chain of thought: 'Plan: <points>. Action: <bins>'.

    'points' writes 'wr wc gr gc': where the expert's waypoint is in the image and where the
    fingertips are, on the pointing questions' 0..255 grid. These are the two points the
    co-fine-tuning data teaches the model to find; written first, the action tokens can read
    them instead of working the geometry out from pixels in one step (RT-2's plan-then-act,
    with the plan grounded in image coordinates rather than words). 'target_points' writes
    the named block's point first ('tr tc wr wc gr gc'): the answer to "where is the <block>?",
    which the pointing stages teach, so that the waypoint - mostly a place above that block -
    can be read off a point already written rather than found again from the instruction.
    'ground_points' writes the waypoint and the fingertips dropped onto the table instead: in
    the air a point's image row mixes its distance with its height, so the row difference
    misses the sign of about one forward move in ten of the expert's; on the table the row and
    column differences give the forward and the sideways signs of all of them. The
    fingertips' table point is where their shadow falls, give or take the light's slant.
    'ground_points_gripper' adds whether the fingers are 'open' or 'closed' (opening: the
    state's finger opening): above a block the expert closes and holds while the fingers are
    open and lifts once they are shut, two states a few pixels apart that no point tells apart.
    """
    chosen = plan_points(points, plan)
    if not len(chosen):
        raise ValueError(f'plan {plan!r} writes no points')
    words = [point_text(p, CAMERA_SIZE) for p in chosen]
    if plan in PLANS_WITH_GRIPPER:
        if opening is None:
            raise ValueError(f'plan {plan!r} needs the finger opening')
        words.append(gripper_word(opening))
    return f"Plan: {' '.join(words)}. Action: {action}"


def add_frame(examples: ExampleSet, image_index: int, instruction: str, answer: str,
              family: str, questions: Sequence[Tuple[str, str, str]] = (),
              template: str = 'rt2', opening: Optional[float] = None) -> None:
    """
    Add one frame's rows: the robot answer, then the pointing questions asked about it.

    template and opening make the robot row's prompt (action_prompt).
    """
    examples.add(image_index, action_prompt(instruction, template, opening), answer, 'robot',
                 family)
    for prompt, text, tag in questions:
        examples.add(image_index, prompt, text, 'vqa', tag)


def answer_action(answer: str) -> str:
    """Return the action part of a robot answer, with or without a plan before it."""
    return answer.rpartition('Action: ')[2]


def grounding_questions(instruction: str, family: str,
                        points: np.ndarray) -> List[Tuple[str, str, str]]:
    """
    Pointing questions about one robot frame: (prompt, answer, tag).

    The skill a web-pretrained VLM brings to RT-2 and a model trained from scratch lacks is
    finding what the instruction is about. Asked on the policy's own frames - where is the block
    this instruction acts on, where is the gripper, where must the block go - the answers are
    exactly the quantities an action is the difference of, in the pointing grid the scene-VQA
    data uses (PaliGemma's detection tasks, for the sim).
    """
    where = {name: point_text(points[POINT_ROWS.index(name)], CAMERA_SIZE)
             for name in ('target', 'fingertips', 'goal')}
    out = [(vqa_prompt(f'where is the target to {instruction}?'), where['target'],
            'point_target'),
           (vqa_prompt('where is the gripper?'), where['fingertips'], 'point_gripper')]
    if family != 'pick':
        out.append((vqa_prompt(f'where is the goal to {instruction}?'), where['goal'],
                    'point_goal'))
    return out


def episode_family(families: Optional[Sequence[str]], seed: int) -> Optional[str]:
    """Return the family a robot-data seed is forced to (cycling), or None for the split's."""
    return families[int(seed) % len(families)] if families else None


def _episode_job(job: Tuple) -> Tuple[List[np.ndarray], List[str], List[str], str, bool,
                                      List[List[Tuple[str, str, str]]], List[float]]:
    seed, split, noise, image_size, label, rate, max_steps, plan, render, family, grounding = job
    episode = make_episode(split, int(seed), family=family)
    demo = expert_episode(episode, render=render, width=CAMERA_SIZE, height=CAMERA_SIZE,
                          decision_rate_hz=rate, max_steps=max_steps, noise=noise,
                          points=plan != 'none' or grounding)
    images = [resize_image(step.image, image_size) for step in demo.steps] if render else []
    labels = [bins_text(step.intended_bins if label == 'intended' else step.bins)
              for step in demo.steps]
    if plan != 'none':
        labels = [planned_answer(step.points, text, plan, opening=float(step.ee[4]))
                  for step, text in zip(demo.steps, labels)]
    questions = [grounding_questions(demo.instruction, demo.task['family'], step.points)
                 for step in demo.steps] if grounding else [[] for _ in demo.steps]
    openings = [float(step.ee[4]) for step in demo.steps]
    return (images, labels, [demo.instruction] * len(labels), demo.task['family'], demo.success,
            questions, openings)


def _jobs(seeds: Sequence[int], split: str, noise_levels: Sequence[NoiseLevel], image_size: int,
          label: str, decision_rate_hz: float, max_steps: int, plan: str,
          render: bool, families: Optional[Sequence[str]] = None,
          grounding: bool = False) -> List[Tuple]:
    if label not in ('intended', 'executed'):
        raise ValueError("label must be 'intended' or 'executed'")
    if plan not in ROBOT_PLANS:
        raise ValueError(f'plan must be one of {", ".join(ROBOT_PLANS)}, not {plan!r}')
    if not noise_levels:
        raise ValueError('at least one noise level is needed')
    return [(int(seed), split, noise_levels[k % len(noise_levels)].to_noise(), int(image_size),
             label, float(decision_rate_hz), int(max_steps), plan, render,
             episode_family(families, seed), bool(grounding))
            for k, seed in enumerate(seeds)]


def robot_examples(seeds: Sequence[int], image_size: int, split: str = 'train',
                   noise_levels: Sequence[NoiseLevel] = DEFAULT_NOISE_LEVELS,
                   label: str = 'intended', workers: int = 1,
                   decision_rate_hz: float = DEFAULT_DECISION_RATE_HZ,
                   max_steps: int = DEFAULT_MAX_STEPS,
                   progress: Optional[object] = None, plan: str = 'none',
                   families: Optional[Sequence[str]] = None,
                   grounding: bool = False, template: str = 'rt2') -> ExampleSet:
    """
    Run the expert on each seed (noise level cycling with the seed) and collect every step.

    label: 'intended' (noise-free action, the default) or 'executed'. plan: one of
    ROBOT_PLANS (see planned_answer). families: force each seed's task family (cycling
    through the list) instead of the split's draw. grounding: also ask the pointing questions
    of grounding_questions about every frame (kind 'vqa', sharing the frame's image row).
    template: the prompt template of the robot rows (one with `{gripper}` states each state's
    gripper opening). progress, if given, is called with the number of episodes finished so far.
    """
    jobs = _jobs(seeds, split, noise_levels, image_size, label, decision_rate_hz, max_steps,
                 plan, render=True, families=families, grounding=grounding)
    images: List[np.ndarray] = []
    out = ExampleSet(images=np.zeros((0, image_size, image_size, 3), np.uint8))
    for done, (frames, labels, instructions, family, _, questions, openings) in enumerate(
            _map(_episode_job, jobs, workers), start=1):
        for frame, text, instruction, asked, opening in zip(frames, labels, instructions,
                                                            questions, openings):
            add_frame(out, len(images), instruction, text, family, asked, template, opening)
            images.append(frame)
        if progress is not None:
            progress(done)
    if images:
        out.images = np.stack(images)
    return out


def replanned(examples: ExampleSet, seeds: Sequence[int], plan: str, split: str = 'train',
              noise_levels: Sequence[NoiseLevel] = DEFAULT_NOISE_LEVELS,
              label: str = 'intended', workers: int = 1,
              decision_rate_hz: float = DEFAULT_DECISION_RATE_HZ,
              max_steps: int = DEFAULT_MAX_STEPS,
              families: Optional[Sequence[str]] = None, template: str = 'rt2') -> ExampleSet:
    """
    Return robot_examples' data for these seeds with its answers written in another plan layout.

    Rendering is most of the cost of robot data; plan points need only the expert and the
    camera model, so this re-runs the expert on the same seeds without drawing a frame (about
    2 minutes instead of 18 for 3,000 episodes here) and keeps the images. Grounding questions
    asked about the frames are kept as they are. Every prompt and action must come out as the
    data has them, or ValueError: the data is not those episodes.
    """
    jobs = _jobs(seeds, split, noise_levels, examples.images.shape[1], label, decision_rate_hz,
                 max_steps, plan, render=False, families=families)
    robot_rows = [k for k, kind in enumerate(examples.kinds) if kind == 'robot']
    answers = list(examples.answers)
    done = 0
    for _, labels, instructions, _, _, _, openings in _map(_episode_job, jobs, workers):
        for text, instruction, opening in zip(labels, instructions, openings):
            if done >= len(robot_rows):
                raise ValueError(f'the seeds give more than the {done} states of the data')
            k = robot_rows[done]
            if examples.prompts[k] != action_prompt(instruction, template, opening) or \
                    answer_action(examples.answers[k]) != answer_action(text):
                raise ValueError(f'example {k} is not what the expert does on these seeds: '
                                 'not the robot data of this recipe')
            answers[k] = text
            done += 1
    if done != len(robot_rows):
        raise ValueError(f'the seeds give {done} states, the data has {len(robot_rows)}')
    return dataclasses.replace(examples, answers=answers)


def _map(function, jobs: List, workers: int) -> Iterator:
    """Map in order, over a spawn pool when workers > 1 (results do not depend on workers)."""
    if workers <= 1 or len(jobs) < 2:
        yield from map(function, jobs)
        return
    import multiprocessing
    with multiprocessing.get_context('spawn').Pool(int(workers)) as pool:
        yield from pool.imap(function, jobs, chunksize=4)

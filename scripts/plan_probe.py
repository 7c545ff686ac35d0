#!/usr/bin/env python3
"""
Does a checkpoint's action follow its plan? A probe on held-out expert states.

A closed-loop success rate says only that a policy fails; this says which part of a decision is
wrong. It replays the scripted expert on episodes of a split (seeds the training never used)
and, on every few states, compares what the model says with what the expert did: the two
image points of a grounded plan (waypoint and fingertips, `robot_plan: points`), and each
action dimension's bin (mean absolute error, and for clear moves - more than 20 bins from the
middle - whether its direction is right). Answering the median is printed beside each error.

Two modes:
- `--model DIR`: free-running, through the `local` backend and constrained decoding, exactly
  as the robot runs the checkpoint (plan mode from the checkpoint, see checkpoint_plan_mode).
- `--state RUN/train_state.pt`: teacher-forced - the model sees the expert's own answer up to
  each token, plan included, so the action scores say whether the action reads a right plan.

    .venv/bin/python scripts/plan_probe.py --model runs/plan/model --episodes 30
    .venv/bin/python scripts/plan_probe.py --state runs/plan/train_state.pt --episodes 20
"""
import argparse
from dataclasses import dataclass
import json
from pathlib import Path
import re
import sys
import tempfile
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLEAR_MOVE = 20          # bins from the middle: a move whose direction is not a coin toss
ACTION_NAMES = ('terminate', 'dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')
PLAN_NAMES = ('waypoint_row', 'waypoint_col', 'fingertips_row', 'fingertips_col')


@dataclass
class ExpertState:
    """One expert decision: what the camera showed and what the expert answered."""

    image: np.ndarray          # 224 x 224 camera frame
    instruction: str
    bins: np.ndarray           # the expert's intended action, rt2 bins
    points: np.ndarray         # camera pixels (row, col) of the waypoint and the fingertips
    plan: np.ndarray           # the same on the plans' 0..255 grid (row, col, row, col)


def expert_states(split: str, first_seed: int, episodes: int, every: int) -> List[ExpertState]:
    """Run the noisy expert (noise levels as in training) and keep every `every`-th state."""
    from rt2_ros.sim.rollout import expert_episode
    from rt2_ros.sim.tasks import make_episode
    from rt2_ros.training.robot_data import CAMERA_SIZE, DEFAULT_NOISE_LEVELS
    from rt2_ros.training.vqa import grid_point

    states = []
    for seed in range(first_seed, first_seed + episodes):
        demo = expert_episode(make_episode(split, seed), render=True, points=True,
                              width=CAMERA_SIZE, height=CAMERA_SIZE,
                              noise=DEFAULT_NOISE_LEVELS[seed % len(DEFAULT_NOISE_LEVELS)]
                              .to_noise())
        for step in demo.steps[::every]:
            plan = [v for p in step.points for v in grid_point(p, CAMERA_SIZE)]
            states.append(ExpertState(step.image, demo.instruction,
                                      np.asarray(step.intended_bins, int), step.points,
                                      np.array(plan)))
    return states


def plan_numbers(text: Optional[str]) -> Optional[np.ndarray]:
    """Read a plan's four numbers; None when it has not exactly four."""
    numbers = re.findall(r'\d+', text or '')
    return np.array([int(v) for v in numbers]) if len(numbers) == 4 else None


def free_running(model: Path, states: List[ExpertState], threads: int) -> Dict[str, list]:
    """Decide every state with the local backend; return bins, plans and request times."""
    from rt2_ros.policy import Observation, PolicyConfig
    from rt2_ros.policy.local import LocalTransformersPolicy

    policy = LocalTransformersPolicy(PolicyConfig(
        backend='local', model_path=str(model), extra={'torch_threads': threads}))
    out: Dict[str, list] = {'bins': [], 'plans': [], 'request_ms': []}
    for state in states:
        result = policy.infer(Observation(image=state.image, instruction=state.instruction))
        out['bins'].append(np.asarray(result.decoded[0].bins, int))
        out['plans'].append(plan_numbers(result.plan))
        out['request_ms'].append(result.timing.request_s * 1000.0)
    return out


def teacher_forced(state_file: Path, states: List[ExpertState]) -> Dict[str, list]:
    """Predict each answer token given the expert's answer before it (plan included)."""
    import torch
    from rt2_ros.training.batches import EncodedSet, make_batch
    from rt2_ros.training.config import TrainConfig
    from rt2_ros.training.examples import ExampleSet, resize_image
    from rt2_ros.training.robot_data import action_prompt, bins_text, planned_answer
    from rt2_ros.training.trainer import answer_logits, Trainer

    saved = torch.load(state_file, map_location='cpu', weights_only=True)
    config = TrainConfig.from_dict(saved['config'])
    planned = config.robot_plan == 'points'
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, Path(scratch), log=lambda _: None)
    trainer.model.load_state_dict(saved['model'])
    trainer.model.train(False)
    answers = [planned_answer(s.points, bins_text(s.bins)) if planned else bins_text(s.bins)
               for s in states]  # the training data's own text for each state
    size = config.model.image_size
    prompts = [action_prompt(s.instruction) for s in states]
    examples = ExampleSet(
        images=np.stack([resize_image(s.image, size) for s in states]),
        image_index=list(range(len(states))), prompts=prompts, answers=answers,
        kinds=['robot'] * len(states), tags=[''] * len(states))
    encoded = EncodedSet(examples, trainer.encoder)
    out: Dict[str, list] = {'bins': [], 'plans': []}
    with torch.no_grad():
        for start in range(0, len(states), 50):
            rows = range(start, min(start + 50, len(states)))
            batch = make_batch([encoded], [(0, i) for i in rows])
            predicted = answer_logits(trainer.model, batch).argmax(-1)
            for row in predicted:
                numbers = [int(v) for v in re.findall(r'\d+', trainer.tokenizer.decode(row))]
                numbers = (numbers + [-1] * 12)[:12 if planned else 8]
                out['plans'].append(np.array(numbers[:4]) if planned else None)
                out['bins'].append(np.array(numbers[4:] if planned else numbers))
    return out


def score(states: List[ExpertState], said: Dict[str, list]) -> Dict[str, object]:
    """Per action dimension and plan number: error, median-answer baseline, direction right."""
    truth = np.stack([s.bins for s in states])
    guess = np.stack(said['bins'])
    report: Dict[str, object] = {'states': len(states)}
    for k, name in enumerate(ACTION_NAMES):
        entry = {'mae_bins': round(float(np.abs(guess[:, k] - truth[:, k]).mean()), 1),
                 'median_answer_mae': round(float(np.abs(truth[:, k] - np.median(truth[:, k]))
                                                  .mean()), 1)}
        clear = np.abs(truth[:, k] - 127.5) > CLEAR_MOVE
        if name in ('dx', 'dy', 'dz') and clear.any():
            right = np.sign(guess[clear, k] - 127.5) == np.sign(truth[clear, k] - 127.5)
            entry['direction_right'] = round(float(right.mean()), 3)
        if name in ('terminate', 'gripper'):
            entry['exact'] = round(float((guess[:, k] == truth[:, k]).mean()), 3)
        report[name] = entry
    rows = [(s.plan, p) for s, p in zip(states, said['plans']) if p is not None]
    if rows:
        plan_truth = np.stack([t for t, _ in rows])
        error = np.abs(np.stack([p for _, p in rows]) - plan_truth)
        report['plans_read'] = len(rows)
        for k, name in enumerate(PLAN_NAMES):
            report[name] = {
                'mae': round(float(error[:, k].mean()), 1),
                'within_8': round(float((error[:, k] <= 8).mean()), 3),
                'median_answer_mae': round(float(np.abs(plan_truth[:, k] -
                                                        np.median(plan_truth[:, k])).mean()), 1)}
    if said.get('request_ms'):
        report['request_ms_median'] = round(float(np.median(said['request_ms'])), 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', type=Path, help='checkpoint directory (free-running)')
    source.add_argument('--state', type=Path, help="a run's train_state.pt (teacher-forced)")
    parser.add_argument('--split', default='seen')
    parser.add_argument('--first-seed', type=int, default=7000,
                        help='first episode seed (the training split uses 0..robot_episodes)')
    parser.add_argument('--episodes', type=int, default=30)
    parser.add_argument('--every', type=int, default=2, help='keep every N-th expert state')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    if args.episodes < 1 or args.every < 1:
        parser.error('--episodes and --every must be at least 1')
    import torch
    torch.set_num_threads(args.threads)
    states = expert_states(args.split, args.first_seed, args.episodes, args.every)
    said = (free_running(args.model, states, args.threads) if args.model is not None
            else teacher_forced(args.state, states))
    print(json.dumps(score(states, said), indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

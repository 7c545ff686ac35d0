#!/usr/bin/env python3
r"""
Does a checkpoint's action follow its plan? A probe on held-out expert states.

A closed-loop success rate says only that a policy fails; this says which part of a decision is
wrong. It replays the scripted expert on episodes of a split (seeds the training never used)
and, on every few states, compares what the model says with what the expert did: the image
points of a grounded plan (waypoint and fingertips with `robot_plan: points`, the named
block's point before them with `target_points`, and the waypoint and fingertips dropped onto
the table with `ground_points`), each action dimension's bin (mean absolute error, and for
clear moves - more than 20 bins from the middle - whether its direction is right), and per
horizontal axis whether the action follows the model's own plan and whether that plan points
the expert's way (plan_reading). Answering the median is printed beside each error.

Three modes:
- `--model DIR`: free-running, through the `local` backend and constrained decoding, exactly
  as the robot runs the checkpoint (plan mode from the checkpoint, see checkpoint_plan_mode).
- `--state RUN/train_state.pt`: teacher-forced - the model sees the expert's own answer up to
  each token, plan included, so the action scores say whether the action reads a right plan.
- `--model DIR --trace`: closed loop, one line per decision with the model's plan and action
  beside the expert's at the state the model reached.

    .venv/bin/python experiments/scripts/plan_probe.py --model runs/plan/model --episodes 30
    .venv/bin/python experiments/scripts/plan_probe.py --state runs/plan/train_state.pt \
        --episodes 20
    .venv/bin/python experiments/scripts/plan_probe.py --model runs/plan/model --trace \
        --family pick \
        --first-seed 1000000 --episodes 3
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CLEAR_MOVE = 20          # bins from the middle: a move whose direction is not a coin toss
ACTION_NAMES = ('terminate', 'dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper')


@dataclass
class ExpertState:
    """One expert decision: what the camera showed and what the expert answered."""

    image: np.ndarray          # 224 x 224 camera frame
    instruction: str
    bins: np.ndarray           # the expert's intended action, rt2 bins
    points: np.ndarray         # camera pixels (row, col), rows as in rollout.POINT_ROWS
    opening: float             # finger opening before the action (1: fully open)


def expert_states(split: str, first_seed: int, episodes: int, every: int) -> List[ExpertState]:
    """Run the noisy expert (noise levels as in training) and keep every `every`-th state."""
    from rt2_ros.sim.rollout import expert_episode
    from rt2_ros.sim.tasks import make_episode
    from rt2_ros.training.robot_data import CAMERA_SIZE, DEFAULT_NOISE_LEVELS

    states = []
    for seed in range(first_seed, first_seed + episodes):
        demo = expert_episode(make_episode(split, seed), render=True, points=True,
                              width=CAMERA_SIZE, height=CAMERA_SIZE,
                              noise=DEFAULT_NOISE_LEVELS[seed % len(DEFAULT_NOISE_LEVELS)]
                              .to_noise())
        for step in demo.steps[::every]:
            states.append(ExpertState(step.image, demo.instruction,
                                      np.asarray(step.intended_bins, int), step.points,
                                      float(step.ee[4])))
    return states


def plan_names(plan: str) -> List[str]:
    """Name the numbers a plan layout writes: '<point>_row', '<point>_col' per point."""
    from rt2_ros.training.robot_data import PLAN_POINTS

    return [f'{point}_{axis}' for point in PLAN_POINTS[plan] for axis in ('row', 'col')]


def plan_truth(points: np.ndarray, plan: str) -> np.ndarray:
    """Return the numbers the expert's plan writes for a state's points, on the 0..255 grid."""
    from rt2_ros.training.robot_data import CAMERA_SIZE, plan_points
    from rt2_ros.training.vqa import grid_point

    return np.array([v for p in plan_points(points, plan) for v in grid_point(p, CAMERA_SIZE)],
                    int)


def plan_numbers(text: Optional[str], count: int) -> Optional[np.ndarray]:
    """Read a plan's numbers; None when it has not exactly `count` (or the layout has none)."""
    numbers = re.findall(r'\d+', text or '')
    return np.array([int(v) for v in numbers]) if count and len(numbers) == count else None


def free_running(model: Path, states: List[ExpertState], threads: int) -> Dict[str, list]:
    """Decide every state with the local backend; return bins, plans and request times."""
    from rt2_ros.policy import Observation, PolicyConfig
    from rt2_ros.policy.local import checkpoint_robot_plan, LocalTransformersPolicy

    policy = LocalTransformersPolicy(PolicyConfig(
        backend='local', model_path=str(model), extra={'torch_threads': threads}))
    plan = checkpoint_robot_plan(model)
    out: Dict[str, list] = {'bins': [], 'plans': [], 'request_ms': [], 'plan': plan}
    for state in states:
        result = policy.infer(Observation(image=state.image, instruction=state.instruction,
                                          gripper=state.opening))
        out['bins'].append(np.asarray(result.decoded[0].bins, int))
        out['plans'].append(plan_numbers(result.plan, len(plan_names(plan))))
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
    plan = config.robot_plan
    count = len(plan_names(plan))
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, Path(scratch), log=lambda _: None)
    trainer.model.load_state_dict(saved['model'])
    trainer.model.train(False)
    answers = [planned_answer(s.points, bins_text(s.bins), plan, s.opening) if count
               else bins_text(s.bins) for s in states]  # the training data's own text
    size = config.model.image_size
    prompts = [action_prompt(s.instruction, config.prompt_template, s.opening) for s in states]
    examples = ExampleSet(
        images=np.stack([resize_image(s.image, size) for s in states]),
        image_index=list(range(len(states))), prompts=prompts, answers=answers,
        kinds=['robot'] * len(states), tags=[''] * len(states))
    encoded = EncodedSet(examples, trainer.encoder)
    out: Dict[str, list] = {'bins': [], 'plans': [], 'words': [], 'plan': plan}
    with torch.no_grad():
        for start in range(0, len(states), 50):
            rows = range(start, min(start + 50, len(states)))
            batch = make_batch([encoded], [(0, i) for i in rows])
            predicted = answer_logits(trainer.model, batch).argmax(-1)
            for row in predicted:
                text = trainer.tokenizer.decode(row)
                numbers = [int(v) for v in re.findall(r'\d+', text)]
                out['words'].append(next(iter(re.findall(r'\b(open|closed)\b', text)), None))
                numbers = (numbers + [-1] * (count + 8))[:count + 8]
                out['plans'].append(np.array(numbers[:count]) if count else None)
                out['bins'].append(np.array(numbers[count:]))
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
    report.update(grasp_reading(states, guess, said.get('words')))
    plan = said.get('plan', 'none')
    rows = [(s.bins, b, p, plan_truth(s.points, plan))
            for s, b, p in zip(states, said['bins'], said['plans']) if p is not None]
    if rows:
        expert_bins, bins, plans, truths = (list(column) for column in zip(*rows))
        truth_numbers = np.stack(truths)
        error = np.abs(np.stack(plans) - truth_numbers)
        report['plans_read'] = len(rows)
        for k, name in enumerate(plan_names(plan)):
            report[name] = {
                'mae': round(float(error[:, k].mean()), 1),
                'within_8': round(float((error[:, k] <= 8).mean()), 3),
                'median_answer_mae': round(float(np.abs(truth_numbers[:, k] -
                                                        np.median(truth_numbers[:, k]))
                                                 .mean()), 1)}
        report.update(plan_reading(expert_bins, bins, plans, truths, plan))
    if said.get('request_ms'):
        report['request_ms_median'] = round(float(np.median(said['request_ms'])), 1)
    return report


def grasp_reading(states: List[ExpertState], guess: np.ndarray,
                  words: Optional[List[Optional[str]]]) -> Dict[str, object]:
    """
    Score the grasp, where the recipes so far failed.

    Where the expert closes open fingers it holds still (dz 128) and lifts only once they are
    shut; 'holds_while_closing' is how often the model's dz stays within CLEAR_MOVE of still
    there. With a gripper plan, how often its open/closed word is right.
    """
    from rt2_ros.policy.prompts import gripper_word

    out: Dict[str, object] = {}
    closing = [k for k, s in enumerate(states)
               if s.bins[7] < 128 and gripper_word(s.opening) == 'open']
    if closing:
        held = [abs(int(guess[k, 3]) - 128) <= CLEAR_MOVE for k in closing]
        out['holds_while_closing'] = {'states': len(closing),
                                      'right': round(float(np.mean(held)), 3)}
    if words and any(w is not None for w in words):
        truth = [gripper_word(s.opening) for s in states]
        out['gripper_word_right'] = {
            name: round(float(np.mean([w == t for w, t in zip(words, truth) if t == name])), 3)
            for name in ('open', 'closed') if name in truth}
    return out


def plan_reading(expert_bins: List[np.ndarray], bins: List[np.ndarray],
                 plans: List[np.ndarray], truths: List[np.ndarray],
                 plan: str) -> Dict[str, object]:
    """
    Score, per horizontal axis, whether the action follows the model's plan and the plan is right.

    Right means the waypoint lies on the same side of the fingertips as the expert's. dx goes
    with the image row (further away is higher up) and dy with the column (left is further
    left), so the sign of a move is minus the sign of waypoint - fingertips along that image
    axis: exactly on the table, only mostly for points in the air (see PLAN_POINTS).
    'follows_own_plan' counts the model's clear moves where its own points differ by more
    than 3 cells; 'plan_direction_right' the expert's clear moves.
    """
    names = plan_names(plan)
    ground = '_ground' if 'waypoint_ground_row' in names else ''
    if f'waypoint{ground}_row' not in names:
        return {}
    out: Dict[str, object] = {}
    for k, (move, axis) in enumerate((('dx', 'row'), ('dy', 'col'))):
        w, f = (names.index(f'{p}{ground}_{axis}') for p in ('waypoint', 'fingertips'))
        follows, right = [], []
        for expert, said, own, truth in zip(expert_bins, bins, plans, truths):
            own_diff = own[w] - own[f]
            if abs(said[1 + k] - 127.5) > CLEAR_MOVE and abs(own_diff) > 3:
                follows.append(np.sign(said[1 + k] - 127.5) == -np.sign(own_diff))
            if abs(expert[1 + k] - 127.5) > CLEAR_MOVE:
                right.append(np.sign(own_diff) == np.sign(truth[w] - truth[f]))
        out[f'{move}_reads_plan'] = {
            'follows_own_plan': round(float(np.mean(follows)), 3) if follows else None,
            'moves': len(follows),
            'plan_direction_right': round(float(np.mean(right)), 3) if right else None,
            'expert_moves': len(right)}
    return out


def trace(model: Path, split: str, family: Optional[str], seeds: List[int],
          threads: int) -> List[str]:
    """
    Run the checkpoint closed loop and write, per decision, its plan beside the expert's.

    The scores above are on the expert's states; a policy goes where its own mistakes take it.
    The episodes run in the lockstep evaluator (as `rt2 eval-sim --fast` runs them), one at a
    time, with the expert labelling every state the model reaches. Each line: decision, the
    model's plan / the expert's plan at that very state, the model's action / the expert's
    (terminate dx dy dz gripper bins).
    """
    from rt2_ros.evaluation.lockstep import local_batch_policy, run_lockstep
    from rt2_ros.policy import PolicyConfig
    from rt2_ros.policy.local import checkpoint_robot_plan, LocalTransformersPolicy

    policy = LocalTransformersPolicy(PolicyConfig(
        backend='local', model_path=str(model), extra={'torch_threads': threads}))
    plan = checkpoint_robot_plan(model)
    act = local_batch_policy(policy)
    said: List[Optional[str]] = []

    def recording(images: List[np.ndarray], instructions: List[str],
                  openings: List[float]) -> List[Optional[str]]:
        texts = act(images, instructions, openings)
        said.extend(texts)
        return texts

    result = run_lockstep(recording, split, seeds, family=family, batch=1,
                          label_with_expert=True)
    shown = [0, 1, 2, 3, 7]
    lines, texts = [], iter(said)
    for episode in result.episodes:
        lines.append(f'== {split} seed {episode.seed}: {episode.instruction}')
        for decision, (_, label, points, _) in enumerate(episode.states):
            text = next(texts)
            truth = ' '.join(str(v) for v in plan_truth(points, plan)) or '-'
            expert = ' '.join(label.split()[k] for k in shown)
            try:
                decoded = policy.codec.decode(text) if text is not None else None
            except ValueError:  # what the evaluator counts as invalid, too
                decoded = None
            if decoded is None:
                lines.append(f'{decision:2d} | invalid output / {truth} | - / {expert}')
                continue
            bins = ' '.join(str(int(decoded.bins[k])) for k in shown)
            lines.append(f'{decision:2d} | plan {decoded.plan or "-"} / {truth} | '
                         f'act {bins} / {expert}')
        lines.append(f'success: {episode.success}')
    return lines


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
    parser.add_argument('--trace', action='store_true',
                        help='with --model: run the episodes closed loop and print each '
                        'decision beside the expert (see trace)')
    parser.add_argument('--family', help='with --trace: only this task family')
    args = parser.parse_args()
    if args.episodes < 1 or args.every < 1:
        parser.error('--episodes and --every must be at least 1')
    if args.trace and args.model is None:
        parser.error('--trace needs --model')
    import torch
    torch.set_num_threads(args.threads)
    if args.trace:
        seeds = list(range(args.first_seed, args.first_seed + args.episodes))
        print('\n'.join(trace(args.model, args.split, args.family, seeds, args.threads)))
        return 0
    states = expert_states(args.split, args.first_seed, args.episodes, args.every)
    said = (free_running(args.model, states, args.threads) if args.model is not None
            else teacher_forced(args.state, states))
    print(json.dumps(score(states, said), indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())

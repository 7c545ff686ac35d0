#!/usr/bin/env python3
"""
Can the demo architecture learn to point at a named block, and how fast? A grounding probe.

Every task needs the skill "find the block this phrase names" before any action can be right,
and the bundled model's failure traces back to it
(experiments/notes/why_the_bundled_model_fails.md). A full `rt2 train`
run takes most of an hour to show whether a recipe change helps; this trains the same model
(sizes, learning rate, loss and initialization from a training config) on pointing questions
only - "where is the <name>?", "where is the gripper?", answered as image row/column in
0..255 - and prints the held-out median pointing error every few hundred steps beside the error
of always answering the mean position. An error well below that baseline means the skill is
being learned. Grouped by referent: the gripper (no name to resolve), a block named by colour
and shape, and a block named by a property (smallest, closest to ..., colour of ...).

    .venv/bin/python experiments/scripts/pointing_probe.py --steps 1500 --lr 5e-4 --threads 2
    .venv/bin/python experiments/scripts/pointing_probe.py ... --blocks 1-2   # easier scenes only
    .venv/bin/python experiments/scripts/pointing_probe.py ... --stage 1:2000 --stage 2-5:1500
"""
import argparse
import json
from pathlib import Path
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HELD_OUT = 300
# An answer this close (0..255 grid) is on the block: about a block's width in the image, and
# well under the median distance to the nearest other block in 2-5-block scenes (63).
HIT_RADIUS = 16.0


def block_range(text: str) -> Tuple[int, int]:
    from rt2_ros.training.config import parse_blocks, TrainConfigError

    try:
        low, high = parse_blocks(text)
    except TrainConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return low, high


def stage(text: str) -> Tuple[Tuple[int, int], int]:
    """Parse a curriculum stage, BLOCKS:STEPS (e.g. 1:2000 or 2-5:1500), as `rt2 train` does."""
    from rt2_ros.training.config import TrainConfigError, VqaStage

    try:
        parsed = VqaStage.parse(text)
    except TrainConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return (parsed.blocks[0], parsed.blocks[1]), parsed.steps


def referent_kind(prompt: str) -> str:
    from rt2_ros.sim.objects import COLOURS, SHAPES

    phrase = prompt.split()[4:-1]  # 'Q: where is the <phrase>? A:'
    if phrase == ['gripper?']:
        return 'gripper'
    named = len(phrase) == 2 and phrase[0] in COLOURS and phrase[1].rstrip('?') in SHAPES
    return 'named' if named else 'property'


def parse_numbers(text: str, count: int) -> List[float]:
    """Read the first `count` numbers of an answer; all NaN if any is missing or not a number."""
    parts = text.split()[:count]
    try:
        if len(parts) < count:
            raise ValueError
        return [float(v) for v in parts]
    except ValueError:
        return [float('nan')] * count


def parse_point(text: str) -> Tuple[float, float]:
    row, col = parse_numbers(text, 2)
    return row, col


def parsing_scenes(count: int, image_size: int, grid: int, seed: int
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return images and per-patch labels (colour, shape, gripper) of `count` 2-5-block scenes.

    A patch is labelled with the block whose top centre projects into it (colour and shape
    index + 1; 0 = none) and with whether the point between the fingertips does.
    """
    from rt2_ros.sim.objects import COLOURS, SHAPES
    from rt2_ros.training.examples import resize_image
    from rt2_ros.training.vqa import CAMERA_SIZE, sample_scene

    rng = np.random.default_rng([seed, 0x5E])
    images = np.zeros((count, image_size, image_size, 3), np.uint8)
    labels = np.zeros((count, 3, grid, grid), np.int64)
    scale = grid / CAMERA_SIZE
    colours, shapes = list(COLOURS), list(SHAPES)
    for i in range(count):
        sim, renderer, facts = sample_scene(rng)
        images[i] = resize_image(renderer.render(sim), image_size)
        for spec, (row, col) in zip(facts.specs, facts.pixels * scale):
            if 0 <= row < grid and 0 <= col < grid:
                labels[i, 0, int(row), int(col)] = 1 + colours.index(spec.colour)
                labels[i, 1, int(row), int(col)] = 1 + shapes.index(spec.shape)
        row, col = facts.gripper_pixel * scale
        if 0 <= row < grid and 0 <= col < grid:
            labels[i, 2, int(row), int(col)] = 1
    return images, labels


def pretrain_by_parsing(model, config, steps: int, scenes: int, seed: int) -> Dict[str, float]:
    """
    Train the vision tower alone to label every patch (block colour, shape; gripper).

    A stand-in for the pretrained image encoder RT-2 starts from: dense labels teach the
    tower to see small blocks from many more targets per image than one pointing answer. The
    linear head is thrown away; returns held-out accuracy on the labelled patches.
    """
    import math

    from rt2_ros.training.batches import pixel_values
    import torch
    import torch.nn.functional as F

    tower = model.model.vision_tower
    grid = config.model.image_size // config.model.patch_size
    images, labels = parsing_scenes(scenes + HELD_OUT, config.model.image_size, grid, seed)
    head = torch.nn.Linear(tower.config.hidden_size, 7 + 4 + 2)
    params = list(tower.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.98))
    weights = [torch.tensor([0.1] + [1.0] * (n - 1)) for n in (7, 4, 2)]
    splits = ((0, 7), (7, 11), (11, 13))

    def logits(rows: np.ndarray) -> torch.Tensor:
        return head(tower(pixel_values=pixel_values(images[rows])).last_hidden_state)

    def targets(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(labels[rows]).flatten(2).transpose(1, 2)  # B, patches, 3

    rng = np.random.default_rng(seed)
    for step in range(steps):
        scale = min(1.0, (step + 1) / 100) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        for group in optimizer.param_groups:
            group['lr'] = 1e-3 * scale
        rows = rng.integers(HELD_OUT, len(images), 64)
        out, want = logits(rows), targets(rows)
        loss = sum(F.cross_entropy(out[..., a:b].flatten(0, 1), want[..., k].flatten(),
                                   weight=weights[k]) for k, (a, b) in enumerate(splits))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
    with torch.no_grad():
        rows = np.arange(HELD_OUT)
        out, want = logits(rows), targets(rows)
    found = {}
    for k, (name, (a, b)) in enumerate(zip(('colour', 'shape', 'gripper'), splits)):
        labelled = want[..., k] > 0
        said = out[..., a:b].argmax(-1)
        found[name] = round(float((said[labelled] == want[..., k][labelled]).float().mean()), 3)
    return found


class Probe:
    """A Trainer's model and optimizer, fed pointing questions only."""

    def __init__(self, config, stages: List[Tuple[object, int]], scratch: Path) -> None:
        from rt2_ros.training.batches import EncodedSet
        from rt2_ros.training.examples import ExampleSet
        from rt2_ros.training.trainer import Trainer

        self.trainer = Trainer(config, scratch, log=lambda _: None)

        def subset(examples, rows: List[int]) -> EncodedSet:
            part = ExampleSet(images=examples.images,
                              image_index=[examples.image_index[i] for i in rows],
                              prompts=[examples.prompts[i] for i in rows],
                              answers=[examples.answers[i] for i in rows],
                              kinds=[examples.kinds[i] for i in rows],
                              tags=[examples.tags[i] for i in rows])
            return EncodedSet(part, self.trainer.encoder)

        # Each stage trains on its own questions past the first HELD_OUT; the last stage's
        # first HELD_OUT questions are the test set throughout (the skill the curriculum is for).
        self.stages = [(subset(examples, list(range(HELD_OUT, len(examples)))), int(steps))
                       for examples, steps in stages]
        last = stages[-1][0]
        self.test = subset(last, list(range(min(HELD_OUT, len(last)))))
        self.rng = np.random.default_rng(config.seed)

    def train_set(self, step: int):
        """Return the training questions of the stage that `step` falls in."""
        end = 0
        for examples, steps in self.stages:
            end += steps
            if step < end:
                return examples
        return self.stages[-1][0]

    def step(self, step: int) -> float:
        from rt2_ros.training.batches import make_batch
        from rt2_ros.training.trainer import answer_loss, learning_rate
        import torch

        t, c = self.trainer, self.trainer.config
        for group in t.optimizer.param_groups:
            group['lr'] = learning_rate(c, step)
        train = self.train_set(step)
        picks = [(0, int(i)) for i in self.rng.integers(0, len(train), c.batch_size)]
        loss, _ = answer_loss(t.model, make_batch([train], picks), t.smoothing)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), c.grad_clip)
        t.optimizer.step()
        t.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def guesses(self, tokens: int) -> List[str]:
        """Return the teacher-forced answer (first `tokens` tokens) to each test question."""
        from rt2_ros.training.batches import make_batch
        from rt2_ros.training.trainer import answer_logits
        import torch

        t = self.trainer
        t.model.train(False)
        said: List[str] = []
        with torch.no_grad():
            for start in range(0, len(self.test), 50):
                picks = [(0, i) for i in range(start, min(start + 50, len(self.test)))]
                guess = answer_logits(t.model, make_batch([self.test], picks)).argmax(-1)
                said.extend(t.tokenizer.decode(row[:tokens]) for row in guess)
        t.model.train()
        return said

    def errors(self) -> Dict[str, Dict[str, float]]:
        """Median pointing error (0..255 grid) per referent kind, and the mean-guess baseline."""
        found: Dict[str, List[Tuple[Tuple[float, float], Tuple[float, float]]]] = {}
        for i, text in enumerate(self.guesses(2)):
            kind = referent_kind(self.test.examples.prompts[i])
            found.setdefault(kind, []).append(
                (parse_point(text), parse_point(self.test.examples.answers[i])))
        report = {}
        for kind, pairs in sorted(found.items()):
            said = np.array([p[0] for p in pairs])
            truth = np.array([p[1] for p in pairs])
            error = np.hypot(*(said - truth).T)
            error[np.isnan(error)] = 362.0  # no readable answer: the grid's diagonal
            baseline = np.hypot(*(truth - truth.mean(0)).T)
            report[kind] = {'median_error': round(float(np.median(error)), 1),
                            'mean_guess': round(float(np.median(baseline)), 1),
                            'hit_rate': round(float(np.mean(error <= HIT_RADIUS)), 3),
                            'questions': len(pairs)}
        return report


def measure_checkpoint(path: Path, blocks: Tuple[int, int], seed: int, threads: int,
                       out: str) -> int:
    """Print (and write) an exported model's pointing errors on the probe's held-out questions."""
    from rt2_ros.training.config import POINTING_QUESTIONS, TrainConfig
    from rt2_ros.training.vqa import vqa_examples
    from transformers import PaliGemmaForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = TrainConfig.load(path / 'training.json')
    config.threads = threads
    # The first HELD_OUT questions of a seed are the same however many are drawn after them.
    test = vqa_examples(HELD_OUT, config.model.image_size, seed=seed, questions_per_image=2,
                        block_range=blocks, weights=POINTING_QUESTIONS)
    reach = vqa_examples(HELD_OUT, config.model.image_size, seed=seed, questions_per_image=2,
                         block_range=blocks, weights={'reach': 1.0})
    model = PaliGemmaForConditionalGeneration.from_pretrained(str(path))
    with tempfile.TemporaryDirectory() as scratch:
        probe = Probe(config, [(test, 1)], Path(scratch))
        probe.trainer.model = model
        report = probe.errors()
        probe = Probe(config, [(reach, 1)], Path(scratch))
        probe.trainer.model = model
        moves = reach_errors(probe.guesses(3), probe.test.examples.answers)
    for kind, found in report.items():
        print(f'{kind}: median error {found["median_error"]:.1f} (mean guess '
              f'{found["mean_guess"]:.1f}), {100 * found["hit_rate"]:.1f} % within '
              f'{HIT_RADIUS:g}, {found["questions"]} questions')
    for axis, found in moves.items():
        sign = '' if found['sign_right'] is None else \
            f', direction right {100 * found["sign_right"]:.1f} %'
        print(f'reach {axis}: mean error {found["mean_error"]:.1f} bins (median guess '
              f'{found["median_guess"]:.1f}){sign}')
    if out:
        Path(out).write_text(json.dumps({'checkpoint': str(path), 'seed': seed,
                                         'blocks': list(blocks), 'errors': report,
                                         'reach': moves}, indent=2),
                             encoding='utf-8')
    return 0


def reach_errors(said: List[str], truth: List[str]) -> Dict[str, Dict[str, object]]:
    """
    Score "what move puts the gripper over the <phrase>?" answers per axis, in action bins.

    The bridge from grounding to acting: pointing finds the block and the gripper in the image;
    this asks for the move between them in the robot's frame. Beside each mean error is that of
    always answering the median; the direction is scored where the move is clearly one way
    (more than 20 bins from the middle) for dx and dy.
    """
    guess = np.array([parse_numbers(text, 3) for text in said])
    want = np.array([parse_numbers(text, 3) for text in truth])
    report: Dict[str, Dict[str, object]] = {}
    for k, axis in enumerate(('dx', 'dy', 'dz')):
        error = np.abs(guess[:, k] - want[:, k])
        error[np.isnan(error)] = 255.0  # no readable answer: the range
        clear = np.abs(want[:, k] - 127.5) > 20
        right = np.sign(guess[clear, k] - 127.5) == np.sign(want[clear, k] - 127.5)
        report[axis] = {
            'mean_error': round(float(error.mean()), 1),
            'median_guess': round(float(np.abs(want[:, k] - np.median(want[:, k])).mean()), 1),
            'sign_right': round(float(right.mean()), 3) if k < 2 and clear.any() else None,
            'questions': len(said)}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config',
                        default=str(ROOT / 'experiments/recipes/rt2_cofinetuned_vla.json'))
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--every', type=int, default=250)
    parser.add_argument('--lr', type=float, help='peak learning rate (default: the config)')
    parser.add_argument('--patch-size', type=int,
                        help="the vision tower's patch size in pixels (default: the config)")
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--examples', type=int, default=16000)
    parser.add_argument('--blocks', type=block_range, default=(2, 5),
                        help='blocks per scene, N or LOW-HIGH (default 2-5, as the VQA data)')
    parser.add_argument('--stage', type=stage, action='append', metavar='BLOCKS:STEPS',
                        help='a curriculum: train on BLOCKS-block scenes for STEPS steps, then '
                        'the next stage (repeat; replaces --blocks and --steps; errors are '
                        "measured on the last stage's scenes throughout)")
    parser.add_argument('--parse-steps', type=int, default=0,
                        help='first train the vision tower to label every patch for this many '
                        'steps (batch 64; default 0: no such stage)')
    parser.add_argument('--parse-scenes', type=int, default=6000)
    parser.add_argument('--seed', type=int, default=11, help='data seed (stage k: seed + k)')
    parser.add_argument('--json', help='write the error curve here')
    parser.add_argument('--checkpoint', metavar='DIR',
                        help='no training: measure an exported model (rt2 train, models/...) on '
                        'the held-out questions of --seed and --blocks, and print the errors')
    args = parser.parse_args()

    import torch
    from rt2_ros.training.config import POINTING_QUESTIONS, TrainConfig
    from rt2_ros.training.vqa import vqa_examples

    if args.checkpoint:
        return measure_checkpoint(Path(args.checkpoint), args.blocks, args.seed, args.threads,
                                  args.json)
    stages = args.stage or [(args.blocks, args.steps)]
    total = sum(steps for _, steps in stages)
    data = json.loads(Path(args.config).read_text(encoding='utf-8'))
    data.update({'steps': total, 'threads': args.threads,
                 'warmup_steps': min(data.get('warmup_steps', 100), total // 10)})
    if args.lr is not None:
        data.update({'learning_rate': args.lr, 'min_learning_rate': args.lr / 10})
    if args.patch_size is not None:
        data['model'] = dict(data.get('model', {}), patch_size=args.patch_size)
    config = TrainConfig.from_dict(data)
    torch.manual_seed(config.seed)
    staged = []
    for k, (blocks, steps) in enumerate(stages):
        started = time.perf_counter()
        examples = vqa_examples(args.examples, config.model.image_size, seed=args.seed + k,
                                questions_per_image=2, block_range=blocks,
                                weights=POINTING_QUESTIONS)
        staged.append((examples, steps))
        print(f'{len(examples)} pointing questions on {len(examples.images)} scenes of '
              f'{blocks[0]}-{blocks[1]} blocks ({time.perf_counter() - started:.0f} s) '
              f'for {steps} steps', flush=True)
    test_blocks = stages[-1][0]
    print(f'learning rate {config.learning_rate:g}, {total} steps; errors on {HELD_OUT} held-out '
          f'questions about {test_blocks[0]}-{test_blocks[1]}-block scenes', flush=True)
    curve = []
    with tempfile.TemporaryDirectory() as scratch:
        probe = Probe(config, staged, Path(scratch))
        if args.parse_steps > 0:
            started = time.perf_counter()
            accuracy = pretrain_by_parsing(probe.trainer.model, config, args.parse_steps,
                                           args.parse_scenes, args.seed)
            print(f'vision tower trained to label patches for {args.parse_steps} steps '
                  f'({time.perf_counter() - started:.0f} s); held-out accuracy on labelled '
                  f'patches: {accuracy}', flush=True)
        started = time.perf_counter()
        losses: List[float] = []
        for step in range(total):
            losses.append(probe.step(step))
            if (step + 1) % args.every == 0 or step + 1 == total:
                report = probe.errors()
                curve.append({'step': step + 1, 'loss': round(float(np.mean(losses)), 3),
                              'seconds': round(time.perf_counter() - started), **report})
                losses = []
                shown = ', '.join(
                    f'{k} {v["median_error"]:.1f} (mean guess {v["mean_guess"]:.1f}, '
                    f'{100 * v["hit_rate"]:.0f} % within {HIT_RADIUS:g})'
                    for k, v in report.items())
                print(f'step {step + 1}: loss {curve[-1]["loss"]:.3f}; median error {shown}',
                      flush=True)
    if args.json:
        report = {'args': vars(args), 'test_blocks': list(test_blocks), 'curve': curve}
        Path(args.json).write_text(json.dumps(report, indent=2), encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())

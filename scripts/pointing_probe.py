#!/usr/bin/env python3
"""
Can the demo architecture learn to point at a named block, and how fast? A grounding probe.

Every task needs the skill "find the block this phrase names" before any action can be right,
and the bundled model's failure traces back to it (README, "Why it fails"). A full `rt2 train`
run takes most of an hour to show whether a recipe change helps; this trains the same model
(sizes, learning rate, loss and initialization from a training config) on pointing questions
only - "where is the <name>?", "where is the gripper?", answered as image row/column in
0..255 - and prints the held-out median pointing error every few hundred steps beside the error
of always answering the mean position. An error well below that baseline means the skill is
being learned. Grouped by referent: the gripper (no name to resolve), a block named by colour
and shape, and a block named by a property (smallest, closest to ..., colour of ...).

    .venv/bin/python scripts/pointing_probe.py --steps 1500 --lr 5e-4 --threads 2
    .venv/bin/python scripts/pointing_probe.py ... --blocks 1-2   # a one-or-two-block curriculum
"""
import argparse
import json
from pathlib import Path
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELD_OUT = 300


def block_range(text: str) -> Tuple[int, int]:
    low, _, high = text.partition('-')
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected N or LOW-HIGH, got {text!r}') from None


def referent_kind(prompt: str) -> str:
    from rt2_ros.sim.objects import COLOURS, SHAPES

    phrase = prompt.split()[4:-1]  # 'Q: where is the <phrase>? A:'
    if phrase == ['gripper?']:
        return 'gripper'
    named = len(phrase) == 2 and phrase[0] in COLOURS and phrase[1].rstrip('?') in SHAPES
    return 'named' if named else 'property'


def parse_point(text: str) -> Tuple[float, float]:
    parts = text.split()[:2]
    try:
        return float(parts[0]), float(parts[1])
    except (IndexError, ValueError):
        return float('nan'), float('nan')


class Probe:
    """A Trainer's model and optimizer, fed pointing questions only."""

    def __init__(self, config, examples, scratch: Path) -> None:
        from rt2_ros.training.batches import EncodedSet
        from rt2_ros.training.examples import ExampleSet
        from rt2_ros.training.trainer import Trainer

        self.trainer = Trainer(config, scratch, log=lambda _: None)

        def subset(rows: List[int]) -> EncodedSet:
            part = ExampleSet(images=examples.images,
                              image_index=[examples.image_index[i] for i in rows],
                              prompts=[examples.prompts[i] for i in rows],
                              answers=[examples.answers[i] for i in rows],
                              kinds=[examples.kinds[i] for i in rows],
                              tags=[examples.tags[i] for i in rows])
            return EncodedSet(part, self.trainer.encoder)

        rows = list(range(len(examples)))
        self.test, self.train = subset(rows[:HELD_OUT]), subset(rows[HELD_OUT:])
        self.rng = np.random.default_rng(config.seed)

    def step(self, step: int) -> float:
        from rt2_ros.training.batches import make_batch
        from rt2_ros.training.trainer import answer_loss, learning_rate
        import torch

        t, c = self.trainer, self.trainer.config
        for group in t.optimizer.param_groups:
            group['lr'] = learning_rate(c, step)
        picks = [(0, int(i)) for i in self.rng.integers(0, len(self.train), c.batch_size)]
        loss, _ = answer_loss(t.model, make_batch([self.train], picks), t.smoothing)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), c.grad_clip)
        t.optimizer.step()
        t.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def errors(self) -> Dict[str, Dict[str, float]]:
        """Median pointing error (0..255 grid) per referent kind, and the mean-guess baseline."""
        from rt2_ros.training.batches import make_batch
        from rt2_ros.training.trainer import answer_logits
        import torch

        t = self.trainer
        t.model.train(False)
        found: Dict[str, List[Tuple[Tuple[float, float], Tuple[float, float]]]] = {}
        with torch.no_grad():
            for start in range(0, len(self.test), 50):
                picks = [(0, i) for i in range(start, min(start + 50, len(self.test)))]
                guess = answer_logits(t.model, make_batch([self.test], picks)).argmax(-1)
                for row, (_, i) in enumerate(picks):
                    kind = referent_kind(self.test.examples.prompts[i])
                    said = parse_point(t.tokenizer.decode(guess[row][:2]))
                    found.setdefault(kind, []).append(
                        (said, parse_point(self.test.examples.answers[i])))
        t.model.train()
        report = {}
        for kind, pairs in sorted(found.items()):
            said = np.array([p[0] for p in pairs])
            truth = np.array([p[1] for p in pairs])
            error = np.hypot(*(said - truth).T)
            error[np.isnan(error)] = 362.0  # no readable answer: the grid's diagonal
            baseline = np.hypot(*(truth - truth.mean(0)).T)
            report[kind] = {'median_error': round(float(np.median(error)), 1),
                            'mean_guess': round(float(np.median(baseline)), 1),
                            'questions': len(pairs)}
        return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=str(ROOT / 'config/training/rt2_demo_vla.json'))
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--every', type=int, default=250)
    parser.add_argument('--lr', type=float, help='peak learning rate (default: the config)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--examples', type=int, default=16000)
    parser.add_argument('--blocks', type=block_range, default=(2, 5),
                        help='blocks per scene, N or LOW-HIGH (default 2-5, as the VQA data)')
    parser.add_argument('--seed', type=int, default=11, help='data seed')
    parser.add_argument('--json', help='write the error curve here')
    args = parser.parse_args()

    import torch
    from rt2_ros.training.config import TrainConfig
    from rt2_ros.training.vqa import vqa_examples

    data = json.loads(Path(args.config).read_text(encoding='utf-8'))
    data.update({'steps': args.steps, 'threads': args.threads,
                 'warmup_steps': min(data.get('warmup_steps', 100), args.steps // 10)})
    if args.lr is not None:
        data.update({'learning_rate': args.lr, 'min_learning_rate': args.lr / 10})
    config = TrainConfig.from_dict(data)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    examples = vqa_examples(args.examples, config.model.image_size, seed=args.seed,
                            questions_per_image=2, block_range=args.blocks,
                            weights={'point': 3.0, 'point_gripper': 1.0})
    print(f'{len(examples)} pointing questions on {len(examples.images)} scenes of '
          f'{args.blocks[0]}-{args.blocks[1]} blocks ({time.perf_counter() - started:.0f} s); '
          f'learning rate {config.learning_rate:g}, {args.steps} steps', flush=True)
    curve = []
    with tempfile.TemporaryDirectory() as scratch:
        probe = Probe(config, examples, Path(scratch))
        started = time.perf_counter()
        losses: List[float] = []
        for step in range(args.steps):
            losses.append(probe.step(step))
            if (step + 1) % args.every == 0 or step + 1 == args.steps:
                report = probe.errors()
                curve.append({'step': step + 1, 'loss': round(float(np.mean(losses)), 3),
                              'seconds': round(time.perf_counter() - started), **report})
                losses = []
                shown = ', '.join(f'{k} {v["median_error"]:.1f} (mean guess {v["mean_guess"]:.1f})'
                                  for k, v in report.items())
                print(f'step {step + 1}: loss {curve[-1]["loss"]:.3f}; median error {shown}',
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({'args': vars(args), 'curve': curve}, indent=2),
                                   encoding='utf-8')
    return 0


if __name__ == '__main__':
    sys.exit(main())

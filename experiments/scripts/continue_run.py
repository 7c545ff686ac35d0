#!/usr/bin/env python3
r"""
Continue a training run's saved state under a changed recipe, in a new run directory.

`rt2 train` resumes a run only with the recipe it started with, which is what reproducibility
needs. Experiments often need the other thing: take a state that already learned something and
train it on with one setting changed (more steps, a higher learning-rate floor, a plan layout,
a DAgger round). This writes the state into a new directory with the changed recipe, links the
cached data sets of the old run (no regeneration), and trains there with the usual trainer.
When `robot_plan` changes, the robot data is rewritten in the new layout by re-running the
expert without a camera (robot_data.replanned, about 2 minutes for 3,000 episodes) instead of
being generated again.

The result is a chain, not a recipe: say so when reporting it, with every link's command.

    .venv/bin/python experiments/scripts/continue_run.py --state runs/plan/train_state.pt \
        --data runs/plan/data --out runs/plan_ground \
        --set robot_plan='"ground_points"' --set steps=7100 --set min_learning_rate=2e-4
"""
import argparse
import json
import os
from pathlib import Path
import shutil
import sys
import time
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

STATE_FILE = 'train_state.pt'


def changed_config(saved: Dict, settings: List[str]) -> Dict:
    """Return the saved recipe with each 'key=<json value>' setting applied."""
    config = dict(saved)
    for setting in settings:
        key, sep, value = setting.partition('=')
        if not sep or key not in config:
            raise SystemExit(f'--set {setting!r}: expected KEY=JSON with a recipe key; keys: '
                             f'{", ".join(sorted(config))}')
        try:
            config[key] = json.loads(value)
        except ValueError as exc:
            raise SystemExit(f'--set {setting!r}: the value is not JSON ({exc})') from None
    return config


def link_data(source: Path, out: Path, names: List[str]) -> None:
    """Hard-link (or copy where links cannot be made) the named cached data sets."""
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        src, dst = source / f'{name}.npz', out / f'{name}.npz'
        if dst.exists() or not src.exists():
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--state', type=Path, required=True, help="a run's train_state.pt")
    parser.add_argument('--data', type=Path, required=True, help="that run's data directory")
    parser.add_argument('--out', type=Path, required=True, help='the new run directory')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=JSON',
                        help='a recipe setting to change (repeatable)')
    args = parser.parse_args()

    import torch
    from rt2_ros.training.config import TrainConfig, TrainConfigError
    from rt2_ros.training.examples import ExampleSet
    from rt2_ros.training.robot_data import DEFAULT_NOISE_LEVELS, replanned
    from rt2_ros.training.trainer import Trainer, TrainingError

    saved = torch.load(args.state, map_location='cpu', weights_only=True)
    try:
        config = TrainConfig.from_dict(changed_config(saved['config'], args.set))
        config.validate()
    except TrainConfigError as exc:
        raise SystemExit(f'the changed recipe is not valid: {exc}') from None
    old = TrainConfig.from_dict(saved['config'])
    if config.prompt_template != old.prompt_template:
        raise SystemExit('the robot data was written with prompt_template '
                         f'{old.prompt_template!r}; a new template needs a new run')
    replan = config.robot_plan != old.robot_plan
    if replan and saved['state'].get('dagger_done', 0):
        raise SystemExit('the state trained on DAgger rows in the old plan layout; those '
                         'states cannot be replayed, so its plan layout cannot change')
    data = args.out / 'data'
    names = ['vqa'] + [f'stage{k}' for k in range(len(config.stages))] + \
        [f'dagger{k}' for k in range(saved['state'].get('dagger_done', 0))]
    link_data(args.data, data, names + ([] if replan else ['robot']))
    if replan and not (data / 'robot.npz').exists():
        start = time.perf_counter()
        robot = replanned(ExampleSet.load(str(args.data / 'robot.npz')),
                          config.train_seed_ranges()[0], config.robot_plan,
                          split=config.robot_split, noise_levels=DEFAULT_NOISE_LEVELS,
                          label=config.label, workers=config.workers,
                          families=config.robot_families, template=config.prompt_template)
        robot.save(str(data / 'robot.npz'))
        print(f'robot data rewritten with plan {config.robot_plan!r} '
              f'({time.perf_counter() - start:.0f} s)', flush=True)
    state_file = args.out / STATE_FILE
    if not state_file.exists():  # else: resume the continuation itself
        saved['config'] = config.to_dict()
        torch.save(saved, state_file)
    trainer = Trainer(config, args.out, log=lambda line: print(line, flush=True))
    try:
        trainer.load_state()
        trainer.prepare()
        print(f'continuing at step {trainer.state.step} of {config.steps}', flush=True)
        trainer.run(on_step=lambda s: print(f'step {s.step} loss {s.loss:.3f}', flush=True)
                    if s.step % 50 == 0 else None)
        trainer.save_state()
        print(trainer.export(), flush=True)
    except TrainingError as exc:
        raise SystemExit(str(exc)) from None
    return 0


if __name__ == '__main__':
    sys.exit(main())

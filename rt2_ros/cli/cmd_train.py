"""
`rt2 train`: co-fine-tune the demo VLA in the simulator (RT-2's recipe at toy scale).

    rt2 train --out runs/demo                      # the bundled model's recipe
    rt2 train --out runs/robot-only --robot-only   # the ablation: no vision-language data
    rt2 train --out runs/x --stage 1:1500 --stage 2-5:1500 --steps 5600   # pointing stages first
    rt2 train --out runs/demo                      # again: resumes from the last checkpoint
    rt2 train --out runs/demo --device cuda        # on a GPU (the default when there is one)

Data (expert demonstrations of the `train` split, scene VQA) is generated into OUT/data and
cached; the training state is saved to OUT/train_state.pt every --checkpoint-every steps, so an
interrupted run continues where it stopped (same batches, same result). The finished model is
written to OUT/model (or --export), loadable by the `local` policy backend.
"""
import argparse
from pathlib import Path
import sys
import time

from rt2_ros.cli.argtypes import positive_int
from rt2_ros.cli.errors import UsageError
from rt2_ros.torch_device import PRECISIONS


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError('must be in (0, 1]')
    return value


def _dagger(text: str):
    try:
        step, episodes = (int(v) for v in text.split(':'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected STEP:EPISODES, not {text!r}') from None
    return step, episodes


def _stage(text: str):
    from rt2_ros.training.config import TrainConfigError, VqaStage

    try:
        return VqaStage.parse(text)
    except TrainConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'train', help='train the demo VLA in the simulator (co-fine-tuning, DAgger)',
        description='Train a PaliGemma-style VLA on sim expert demonstrations co-fine-tuned '
                    'with scene VQA (RT-2 recipe). Resumes from OUT when a run is there.')
    parser.add_argument('--out', required=True, help='run directory (data cache, state, model)')
    parser.add_argument('--config', help="JSON recipe (a checkpoint's training.json works); "
                                         'options below override it')
    parser.add_argument('--seed', type=int, help='seed of weights, data order and VQA scenes')
    parser.add_argument('--steps', type=positive_int, help='optimizer steps')
    parser.add_argument('--batch-size', type=positive_int, help='examples per step')
    parser.add_argument('--robot-episodes', type=positive_int,
                        help='expert episodes of the train split (seeds from --robot-first-seed)')
    parser.add_argument('--robot-first-seed', type=int, help='first train-split seed')
    parser.add_argument('--vqa-examples', type=positive_int, help='scene VQA examples')
    parser.add_argument('--robot-fraction', type=_fraction,
                        help='share of each batch from robot data (1 = robot only)')
    parser.add_argument('--robot-only', action='store_true',
                        help='no vision-language data (the ablation; --robot-fraction 1)')
    parser.add_argument('--dagger', type=_dagger, action='append', metavar='STEP:EPISODES',
                        help='a DAgger round at STEP over EPISODES fresh train seeds '
                             "(repeatable; replaces the recipe's rounds)")
    parser.add_argument('--no-dagger', action='store_true', help='no DAgger rounds')
    parser.add_argument('--stage', type=_stage, action='append', metavar='BLOCKS:STEPS',
                        help='a VQA-only pointing stage opening the run: STEPS steps on scenes of '
                             "BLOCKS blocks, N or LOW-HIGH (repeatable; replaces the recipe's "
                             'stages; they count in --steps)')
    parser.add_argument('--no-stages', action='store_true', help='no VQA-only stages')
    parser.add_argument('--learning-rate', type=float, help='peak learning rate')
    parser.add_argument('--threads', type=positive_int, help='torch CPU threads')
    parser.add_argument('--device', default='auto',
                        help='auto (a GPU when there is one), cpu or cuda[:N]; a state saved on '
                             'one device resumes on another')
    parser.add_argument('--precision', default='auto', choices=PRECISIONS,
                        help='forward-pass precision: auto is bf16 on a GPU that has it and '
                             'fp32 on the CPU; weights stay fp32 either way')
    parser.add_argument('--workers', type=positive_int, help='processes generating robot data')
    parser.add_argument('--checkpoint-every', type=positive_int, help='steps between saved states')
    parser.add_argument('--until', type=positive_int, metavar='STEP',
                        help='stop at this step of the recipe and export (the learning-rate '
                             "schedule stays the recipe's; run again without it to finish)")
    parser.add_argument('--export', help='where to write the finished model (default OUT/model)')
    parser.add_argument('--restart', action='store_true',
                        help='discard a saved state in OUT and start again (keeps cached data)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    """Return the TrainConfig for the command line (recipe file, then overrides)."""
    from rt2_ros.training.config import DaggerRound, TrainConfig, TrainConfigError

    try:
        config = TrainConfig.load(args.config) if args.config else TrainConfig()
        data = config.to_dict()
        for name in ('seed', 'steps', 'batch_size', 'robot_episodes', 'robot_first_seed',
                     'vqa_examples', 'robot_fraction', 'learning_rate', 'threads', 'workers',
                     'checkpoint_every'):
            value = getattr(args, name)
            if value is not None:
                data[name] = value
        if args.robot_only:
            data['robot_fraction'] = 1.0
        if args.no_stages:
            data['stages'] = []
        elif args.stage:
            data['stages'] = [stage.__dict__ for stage in args.stage]
        if args.no_dagger:
            data['dagger'] = []
        elif args.dagger:
            data['dagger'] = [DaggerRound(s, e).__dict__ for s, e in args.dagger]
        return TrainConfig.from_dict(data)
    except TrainConfigError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f'{out} exists and is not a directory')
    from rt2_ros.training.device import training_device, TrainDeviceError
    from rt2_ros.training.trainer import STATE_FILE, Trainer, TrainingError
    from tqdm import tqdm
    from transformers.utils import logging as hf_logging

    try:  # before the run directory and minutes of data generation
        device = training_device(args.device, args.precision)
    except TrainDeviceError as exc:
        raise UsageError(str(exc)) from None
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    out.mkdir(parents=True, exist_ok=True)
    if args.restart and (out / STATE_FILE).exists():
        (out / STATE_FILE).unlink()
    quiet = args.no_progress or not sys.stderr.isatty()

    def log(text: str) -> None:
        tqdm.write(text, file=sys.stderr)

    trainer = Trainer(config, out, log=log, device=device)
    try:
        resumed = trainer.load_state()
    except TrainingError as exc:
        raise UsageError(str(exc)) from None
    start = time.perf_counter()
    bars = {}

    def data_progress(what: str, done: int, total: int) -> None:
        bar = bars.get(what)
        if bar is None:
            bar = bars[what] = tqdm(total=total, desc=what, unit='', disable=quiet,
                                    leave=False, file=sys.stderr)
        bar.update(done - bar.n)

    if resumed:
        log(f'resuming {out} at step {trainer.state.step}/{config.steps}')
    trainer.prepare(progress=data_progress)
    for bar in bars.values():
        bar.close()
    sizes = ', '.join(f'{len(s)} {name}' for name, s in zip(trainer.stream_names(),
                                                            trainer.sets))
    millions = sum(p.numel() for p in trainer.model.parameters()) / 1e6
    where = device.describe()
    log(f'data: {sizes} examples; model {millions:.2f} M '
        f'parameters; {config.steps} steps of {config.batch_size}, seed {config.seed}; '
        f'{where["device_name"]} ({where["device"]}), {where["precision"]}')
    bar = tqdm(total=config.steps, initial=trainer.state.step, desc='train', unit='step',
               disable=quiet, file=sys.stderr, dynamic_ncols=True)

    def on_step(step_log) -> None:
        bar.update(1)
        if step_log.step % 10 == 0:
            bar.set_postfix(loss=f'{step_log.loss:.3f}', robot=f'{step_log.robot_loss:.3f}',
                            lr=f'{step_log.lr:.1e}')
        if quiet and (step_log.step + 1) % 200 == 0:
            log(f'step {step_log.step + 1}/{config.steps}: loss {step_log.loss:.3f}')

    try:
        trainer.run(until=args.until, on_step=on_step)
    except KeyboardInterrupt:
        bar.close()
        trainer.save_state()
        print(f'interrupted at step {trainer.state.step}; run the same command to resume',
              file=sys.stderr)
        return 130
    bar.close()
    wall = round(time.perf_counter() - start, 1)
    model_dir = trainer.export(Path(args.export) if args.export else None,
                               final=trainer.state.step >= config.steps,
                               extra={'wall_seconds_this_session': wall})
    state = trainer.state
    print(f'wrote {model_dir}: {state.step} steps, training {state.train_seconds / 60:.1f} min, '
          f'data {state.data_seconds / 60:.1f} min; evaluate with '
          f'rt2 eval-sim --model {model_dir} --split seen')
    return 0

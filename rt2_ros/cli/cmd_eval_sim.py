"""
`rt2 eval-sim`: closed-loop success rate of a policy in the simulator, through the real nodes.

    rt2 eval-sim --model models/rt2_demo_vla --split seen --episodes 100 --json seen.json
    rt2 eval-sim --backend openvla_http --url http://gpu-box:8000 --split seen --episodes 100
    rt2 eval-sim --model DIR --split seen --episodes 20 --fast      # pure sim, no ROS
    rt2 eval-sim --model DIR --split ladder --episodes 100          # every rung, easiest first

By default every episode runs through `rt2_sim` and `rt2_controller` processes over DDS - the
controller's policy backend, action mapping and safety stage included - in `--lanes` parallel
namespaces. `--fast` runs the same episodes in the pure simulator with the local backend, in
lockstep batches: much quicker, the same action semantics, but no ROS; its report says
`"mode": "fast"`.
"""
import argparse
import json
from pathlib import Path
import sys
import time

from rt2_ros.cli.argtypes import positive_int, seed_value
from rt2_ros.cli.errors import UsageError

MAX_STEPS = 40
DECISION_PERIOD_S = 0.2


def _param(text: str):
    if '=' not in text:
        raise argparse.ArgumentTypeError(f'expected NAME=VALUE, not {text!r}')
    name, value = text.split('=', 1)
    import yaml
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    return name.strip(), parsed


def register(subparsers: argparse._SubParsersAction) -> None:
    from rt2_ros.evaluation.report import EVAL_FIRST_SEED
    from rt2_ros.sim.splits import LADDER, SPLITS

    parser = subparsers.add_parser(
        'eval-sim', help='closed-loop success rate in the simulator (through the real nodes)',
        description='Run a policy closed loop in rt2_sim through rt2_controller (policy backend '
                    'and safety stage) over DDS and report the success rate with a Wilson 95 %% '
                    'interval and the decision latency.')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--model', help='checkpoint directory for the local backend')
    which.add_argument('--backend', help='another policy backend (openvla_http, openai, openpi, '
                                         'a registered plug-in or module:Class), configured '
                                         'with --url / --param')
    parser.add_argument('--url', help='server URL for --backend')
    parser.add_argument('--action-space', default='rt2',
                        help='action space of a --backend policy (default rt2)')
    parser.add_argument('--param', type=_param, action='append', default=[],
                        metavar='NAME=VALUE', help='extra rt2_controller parameter '
                        '(e.g. policy.extra.statistics=...); repeatable')
    parser.add_argument('--split', required=True, choices=sorted(SPLITS) + ['ladder'],
                        help='task split, or ladder: every rung in turn, easiest first '
                             f'({", ".join(LADDER)})')
    parser.add_argument('--episodes', type=positive_int, default=100,
                        help='episodes (default 100)')
    parser.add_argument('--seed', type=seed_value, default=EVAL_FIRST_SEED,
                        help=f'first seed; episodes use seed..seed+N-1 (default {EVAL_FIRST_SEED},'
                             ' far from training seeds)')
    parser.add_argument('--json', dest='json_out', help='write the report here')
    parser.add_argument('--lanes', type=positive_int, default=1,
                        help='parallel sim + controller pairs (default 1)')
    parser.add_argument('--max-steps', type=positive_int, default=MAX_STEPS,
                        help=f'decisions before an episode is cut off (default {MAX_STEPS})')
    parser.add_argument('--decision-period', type=float, default=DECISION_PERIOD_S,
                        help=f'seconds per action step (default {DECISION_PERIOD_S}, the rate '
                             'the demo model was trained at)')
    parser.add_argument('--fast', action='store_true',
                        help='pure simulator, no ROS (quick check; not the reported numbers)')
    parser.add_argument('--threads', type=positive_int, default=1,
                        help='torch threads of the local backend (default 1)')
    parser.add_argument('--log-dir', help="keep the node processes' logs here")
    parser.add_argument('--allow-train-seeds', action='store_true',
                        help='do not refuse seeds the model was trained on')
    parser.set_defaults(func=run)


def _train_ranges(model: Path):
    info = model / 'training.json'
    if not info.is_file():
        return []
    try:
        return json.loads(info.read_text(encoding='utf-8')).get('train_seed_ranges', [])
    except ValueError:
        return []


def run(args: argparse.Namespace) -> int:
    from rt2_ros.evaluation.report import check_seed_overlap, format_summary, SeedOverlapError

    seeds = list(range(args.seed, args.seed + args.episodes))
    if not 0.01 <= args.decision_period <= 10.0:
        raise UsageError('--decision-period must be within 0.01 .. 10 s')
    if args.model:
        model = Path(args.model)
        if not (model / 'config.json').is_file():
            raise UsageError(f'{model} is not a checkpoint directory (no config.json)')
        if not args.allow_train_seeds:
            try:
                check_seed_overlap(seeds, _train_ranges(model))
            except SeedOverlapError as exc:
                raise UsageError(str(exc)) from None
        policy = {'policy.backend': 'local', 'policy.model_path': str(model.resolve()),
                  'policy.device': 'cpu', 'policy.extra.torch_threads': args.threads}
    else:
        if args.fast:
            raise UsageError('--fast runs a --model in-process; use the ROS path for --backend')
        from rt2_ros.policy.factory import backend_error
        if backend_error(args.backend) is not None:
            raise UsageError(backend_error(args.backend))
        policy = {'policy.backend': args.backend, 'action_space': args.action_space}
        if args.url:
            policy['policy.url'] = args.url
    policy.update(dict(args.param))
    settings = {'max_steps': args.max_steps, 'decision_period_s': args.decision_period,
                'lanes': 1 if args.fast else args.lanes, 'variation': 'none'}
    from rt2_ros.sim.splits import LADDER
    splits = list(LADDER) if args.split == 'ladder' else [args.split]
    reports = {}
    for split in splits:
        start = time.perf_counter()
        if args.fast:
            report = _run_fast(args, split, seeds, policy, settings)
        else:
            report = _run_ros(args, split, seeds, policy, settings)
        report['wall_s'] = round(time.perf_counter() - start, 1)
        reports[split] = report
        print(format_summary(report), flush=True)
    if args.json_out:
        document = reports[splits[0]] if len(splits) == 1 else {'rungs': reports}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(document, indent=2), encoding='utf-8')
    return 0


def _progress(total: int, label: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=label, unit='ep', disable=not sys.stderr.isatty(),
                file=sys.stderr)


def _run_fast(args, split, seeds, policy, settings):
    from rt2_ros.evaluation.lockstep import local_batch_policy, run_lockstep
    from rt2_ros.evaluation.report import build_report
    from rt2_ros.policy import PolicyConfig
    from rt2_ros.policy.base import PolicyError
    from rt2_ros.policy.local import LocalTransformersPolicy

    try:
        local = LocalTransformersPolicy(PolicyConfig(
            backend='local', model_path=args.model, device='cpu',
            extra={'torch_threads': args.threads}))
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    bar = _progress(len(seeds), f'{split} (fast)')
    result = run_lockstep(local_batch_policy(local), split, seeds, batch=20,
                          max_steps=args.max_steps,
                          decision_rate_hz=1.0 / args.decision_period,
                          progress=lambda n: bar.update(n - bar.n))
    bar.close()
    records = [{'seed': e.seed, 'family': e.family, 'referent': e.referent,
                'instruction': e.instruction, 'success': e.success,
                'terminated': e.terminated, 'decisions': e.steps, 'invalid': e.invalid,
                'closest_xy_m': round(e.closest_xy_m, 4), 'grasped': e.grasped}
               for e in result.episodes]
    info = {'backend': 'local', 'model': str(Path(args.model).resolve()), 'plan': local.plan,
            'note': 'batched lockstep: latency is per row of a batch of up to 20'}
    local.close()
    return build_report(split, records, 'fast', info, settings,
                        result.decision_latencies_s, wall_s=result.wall_s)


def _run_ros(args, split, seeds, policy, settings):
    from rt2_ros.evaluation.report import build_report

    try:
        from rt2_ros.evaluation.ros_eval_node import run_ros_evaluation
    except ImportError as exc:
        raise UsageError(f'the ROS path needs rclpy ({exc}); use --fast for a pure check') \
            from None
    bar = _progress(len(seeds), split)
    wins = [0]

    def on_episode(record) -> None:
        wins[0] += int(record.success)
        bar.update(1)
        bar.set_postfix(success=f'{wins[0]}/{bar.n}')

    try:
        records, diagnostics = run_ros_evaluation(
            policy, split, seeds, lanes=args.lanes, max_steps=args.max_steps,
            decision_period_s=args.decision_period, log_dir=args.log_dir, on_episode=on_episode)
    except (RuntimeError, TimeoutError) as exc:
        bar.close()
        raise UsageError(f'evaluation failed: {" ".join(str(exc).split())[:400]}') from None
    bar.close()
    latencies = [max(0.0, interval - args.decision_period)
                 for r in records for interval in r.decision_intervals_s]
    controller = {ns: {k: v for k, v in values.items() if 'latency' in k or k == 'decisions'}
                  for ns, values in diagnostics.items() if 'rt2_eval_' in ns}
    info = {key.replace('policy.', ''): value for key, value in policy.items()}
    info['latency_note'] = ('decision_latency: time between two accepted decisions minus the '
                            'decision period (request at step end -> action accepted), measured '
                            'from the ~/action topic')
    return build_report(split, [r.to_dict() for r in records], 'ros', info, settings,
                        latencies, controller_latency=controller)

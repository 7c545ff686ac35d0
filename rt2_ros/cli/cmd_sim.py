"""
`rt2 sim`: the tabletop simulator's tools.

  rt2 sim tasks          the splits, families and instruction templates (the data definition)
  rt2 sim render         save a PNG of an episode's scene (optionally after some expert steps)
  rt2 sim expert         scripted-expert success per family (pure, no ROS)
  rt2 sim generate       expert demonstrations to an .npz (pure, no ROS), with the rate reached
  rt2 sim record-demos   the expert through the real topics (rt2_sim process + expert node),
                         recorded to rosbag2 bags (MCAP or sqlite3)
"""
import argparse
import json
from pathlib import Path
import sys
import time

from rt2_ros.cli.argtypes import positive_int, seed_value
from rt2_ros.cli.errors import UsageError

FAMILY_CHOICES = ('pick', 'place_on', 'move_to', 'push_next_to')


def _size(text: str):
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT, e.g. 224x224, not {text!r}')
    if not (16 <= width <= 1920 and 16 <= height <= 1080):
        raise argparse.ArgumentTypeError('image size must be within 16x16 .. 1920x1080')
    return width, height


def _add_episode_args(parser: argparse.ArgumentParser, episodes: int = 10) -> None:
    from rt2_ros.sim.splits import SPLITS, VARIATION_LEVELS
    parser.add_argument('--split', default='train', choices=sorted(SPLITS),
                        help='task split (default: train)')
    parser.add_argument('--family', choices=FAMILY_CHOICES,
                        help='only this task family (default: drawn from the split)')
    parser.add_argument('--seed', type=seed_value, default=0, help='first seed (default: 0)')
    parser.add_argument('--episodes', type=positive_int, default=episodes,
                        help=f'number of episodes, seeds seed..seed+N-1 (default: {episodes})')
    parser.add_argument('--variation', default='none', choices=VARIATION_LEVELS,
                        help='scene appearance variation (default: none)')


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'sim', help='tabletop simulator tools: tasks, render, expert, generate, record-demos',
        description='Tabletop simulator tools.')
    sub = parser.add_subparsers(dest='sim_command', metavar='SIM_COMMAND')
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    tasks = sub.add_parser('tasks', help='show the splits, families and templates',
                           description='Show the task splits, families and instruction '
                           'templates, with example instructions.')
    tasks.add_argument('--json', action='store_true', help='print the definitions as JSON')
    tasks.add_argument('--examples', type=int, default=3,
                       help='example instructions per split (default: 3)')
    tasks.set_defaults(func=run_tasks)

    render = sub.add_parser('render', help='save a PNG of an episode',
                            description="Render an episode's camera image to a PNG.")
    _add_episode_args(render, episodes=1)
    render.add_argument('--out', required=True, help='PNG path')
    render.add_argument('--size', type=_size, default=(224, 224),
                        help='image size WIDTHxHEIGHT (default: 224x224)')
    render.add_argument('--steps', type=int, default=0,
                        help='run this many expert decisions first (default: 0)')
    render.set_defaults(func=run_render)

    expert = sub.add_parser('expert', help='scripted-expert success per family (pure)',
                            description="Measure the scripted expert's success rate per task "
                            'family in the pure simulator (no ROS, no rendering).')
    _add_episode_args(expert, episodes=100)
    expert.add_argument('--no-noise', action='store_true', help='run the expert without noise')
    expert.add_argument('--decision-rate-hz', type=float, default=5.0,
                        help='decisions per second (default: 5)')
    expert.add_argument('--json', help='also write the results to this JSON file')
    expert.set_defaults(func=run_expert)

    gen = sub.add_parser('generate', help='expert demonstrations to .npz (pure)',
                         description='Generate expert demonstrations (image, instruction, rt2 '
                         'action tokens, success) in the pure simulator and save them as .npz.')
    _add_episode_args(gen, episodes=100)
    gen.add_argument('--out', required=True, help='.npz path')
    gen.add_argument('--size', type=_size, default=(224, 224),
                     help='image size WIDTHxHEIGHT (default: 224x224)')
    gen.add_argument('--decision-rate-hz', type=float, default=5.0,
                     help='decisions per second (default: 5)')
    gen.add_argument('--only-successful', action='store_true',
                     help='drop the (rare) failed episodes')
    gen.add_argument('--workers', type=positive_int, default=1,
                     help='processes to generate with (default: 1)')
    gen.set_defaults(func=run_generate)

    rec = sub.add_parser(
        'record-demos', help='record expert demonstrations over ROS topics to rosbag2 bags',
        description='Start an rt2_sim process, drive it with the scripted expert over the real '
        'topics (TwistStamped on servo/delta_twist_cmds, gripper/commands) and record camera, '
        "instruction, ee_pose, the commands and the expert's rt2 actions into rosbag2 bags.")
    _add_episode_args(rec, episodes=10)
    rec.add_argument('--out', required=True, help='directory for the bags and index.json')
    layout = rec.add_mutually_exclusive_group()
    layout.add_argument('--per-episode', dest='per_episode', action='store_true', default=True,
                        help='one bag per episode (default)')
    layout.add_argument('--single', dest='per_episode', action='store_false',
                        help='all episodes in one bag')
    rec.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'),
                     help='rosbag2 storage (default: mcap)')
    rec.add_argument('--distro', default='kilted', choices=('kilted', 'jazzy', 'humble'),
                     help='message definitions stored in the bag (default: kilted)')
    rec.add_argument('--decision-rate-hz', type=float, default=5.0,
                     help='expert decisions per second (default: 5)')
    rec.add_argument('--camera-rate-hz', type=float, default=30.0,
                     help='sim camera rate (default: 30)')
    rec.add_argument('--size', type=_size, default=(224, 224),
                     help='image size WIDTHxHEIGHT (default: 224x224)')
    rec.add_argument('--max-decisions', type=positive_int, default=40,
                     help='give up an episode after this many decisions (default: 40)')
    rec.add_argument('--no-noise', action='store_true', help='run the expert without noise')
    rec.add_argument('--episode-timeout', type=float, default=60.0,
                     help='wall-clock limit per episode in seconds (default: 60)')
    rec.add_argument('--namespace', default='',
                     help='ROS namespace for the sim, expert and recorder (default: none)')
    rec.set_defaults(func=run_record_demos)


def run_tasks(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from rt2_ros.sim.splits import HELD_OUT_COMBOS, REGIONS, SPLITS, TEMPLATES
    from rt2_ros.sim.tasks import make_episode
    if args.json:
        print(json.dumps({'splits': {k: asdict(v) for k, v in SPLITS.items()},
                          'templates': TEMPLATES, 'held_out_combos': HELD_OUT_COMBOS,
                          'regions': REGIONS}, indent=1))
        return 0
    print('held-out colour x shape combinations (never in train): '
          + ', '.join(f'{c} {s}' for c, s in HELD_OUT_COMBOS))
    for split in SPLITS.values():
        print(f'\n{split.name}: {split.description}')
        print(f'  families: {", ".join(split.families)}; referents: '
              f'{", ".join(split.referents)}; templates: {", ".join(split.templates)}')
        for seed in range(max(0, args.examples)):
            print(f'  e.g. seed {seed}: {make_episode(split.name, seed).instruction}')
    return 0


def run_render(args: argparse.Namespace) -> int:
    from rt2_ros.sim.expert import ScriptedExpert
    from rt2_ros.sim.render import render_png
    from rt2_ros.sim.rollout import ActionExecutor, make_renderer
    from rt2_ros.sim.tasks import make_episode
    if args.steps < 0:
        raise UsageError('--steps must be >= 0')
    episode = make_episode(args.split, args.seed, family=args.family, variation=args.variation)
    sim = episode.build_sim()
    executor = ActionExecutor()
    expert = ScriptedExpert(episode.task)
    for _ in range(args.steps):
        executed, _ = expert.act(sim)
        if executor.execute(sim, executor.quantize(executed)):
            break
    image = make_renderer(episode, *args.size).render(sim)
    try:
        render_png(image, args.out)
    except OSError as exc:
        raise UsageError(str(exc)) from None
    print(f'{args.out}: "{episode.instruction}" ({args.split} seed {args.seed})')
    return 0


def run_expert(args: argparse.Namespace) -> int:
    from rt2_ros.sim.expert import ExpertNoise
    from rt2_ros.sim.rollout import expert_success_rates
    from rt2_ros.sim.splits import get_split
    families = [args.family] if args.family else list(get_split(args.split).families)
    noise = ExpertNoise.none() if args.no_noise else ExpertNoise()
    rates = expert_success_rates(args.split, range(args.seed, args.seed + args.episodes),
                                 families, noise=noise, decision_rate_hz=args.decision_rate_hz)
    print(f'{"family":<14} {"success":>8} {"episodes":>9} {"decisions":>10} {"s/episode":>10}')
    for family, r in rates.items():
        print(f'{family:<14} {r["success_rate"]:>8.1%} {r["episodes"]:>9} '
              f'{r["mean_decisions"]:>10.1f} {r["seconds"] / r["episodes"]:>10.4f}')
    if args.json:
        Path(args.json).write_text(json.dumps({'split': args.split, 'families': rates},
                                              indent=1) + '\n')
    return 0


def run_generate(args: argparse.Namespace) -> int:
    import numpy as np
    from rt2_ros.sim.rollout import generate_demonstrations
    out = Path(args.out)
    if out.suffix != '.npz':
        raise UsageError('--out must end in .npz')
    if not out.parent.exists():
        raise UsageError(f'directory {out.parent} does not exist')
    seeds = range(args.seed, args.seed + args.episodes)
    images, bins, actions, intended, episode_of, instructions, success = [], [], [], [], [], [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    for demo in generate_demonstrations(
            args.split, seeds, family=args.family, width=args.size[0], height=args.size[1],
            decision_rate_hz=args.decision_rate_hz, variation=args.variation,
            only_successful=args.only_successful, workers=args.workers):
        for step in demo.steps:
            images.append(step.image)
            bins.append(step.bins)
            actions.append(step.action)
            intended.append(step.intended)
            episode_of.append(len(instructions))
        instructions.append(demo.instruction)
        success.append(demo.success)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    np.savez_compressed(
        out, images=np.stack(images), bins=np.stack(bins), actions=np.stack(actions),
        intended=np.stack(intended), episode=np.array(episode_of),
        instructions=np.array(instructions), success=np.array(success),
        split=args.split, seeds=np.array(list(seeds)))
    print(f'{out}: {len(instructions)} episodes, {len(images)} steps, '
          f'{sum(success) / max(1, len(success)):.1%} success; generated in {elapsed:.1f} s = '
          f'{len(instructions) / elapsed:.1f} episodes/s, {len(images) / elapsed:.0f} steps/s '
          f'(images {args.size[0]}x{args.size[1]}, {args.workers} worker(s)); this process used '
          f'{cpu:.1f} s CPU = {len(images) / max(cpu, 1e-9):.0f} steps per CPU-second')
    return 0


def run_record_demos(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f'{out} exists and is not a directory')
    if args.decision_rate_hz <= 0 or args.camera_rate_hz <= 0:
        raise UsageError('rates must be positive')
    if args.namespace and not args.namespace.startswith('/'):
        raise UsageError('--namespace must start with /')
    first, last = args.seed, args.seed + args.episodes - 1
    if args.per_episode:
        clash = [out / f'{args.split}_seed{s:06d}' for s in range(first, last + 1)]
    else:
        clash = [out / f'{args.split}_seed{first}-{last}']
    existing = [str(p) for p in clash if p.exists()]
    if existing:
        raise UsageError(f'bag {existing[0]} already exists; choose another --out or --seed')
    from rt2_ros.sim.demo_recorder_node import record_demos
    try:
        results = record_demos(
            out, args.episodes, split=args.split, family=args.family, seed=args.seed,
            variation=args.variation, storage=args.storage, per_episode=args.per_episode,
            distro=args.distro, decision_rate_hz=args.decision_rate_hz,
            camera_rate_hz=args.camera_rate_hz, width=args.size[0], height=args.size[1],
            max_decisions=args.max_decisions, noise=not args.no_noise,
            episode_timeout_s=args.episode_timeout, namespace=args.namespace,
            log=lambda line: print(line, flush=True))
    except (RuntimeError, TimeoutError) as exc:
        print(f'rt2 sim record-demos: {exc}', file=sys.stderr)
        return 1
    wins = sum(r['success'] for r in results)
    print(f'{wins}/{len(results)} episodes succeeded; bags and index.json in {out}')
    return 0

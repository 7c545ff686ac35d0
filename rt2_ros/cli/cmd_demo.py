"""
`rt2 demo`: the closed loop a new user runs first (`make demo`).

One process runs the tabletop simulator (rt2_sim), the controller (rt2_controller with its
safety stage, enabled, so the simulated arm really moves) and a policy - the bundled demo model
by default - for a few episodes of different task families, then prints per-episode success,
decisions and latency and writes a video of the controller's annotated camera, a plot of
commanded vs clamped velocities and the numbers as JSON/CSV. Scenes come from the split `seen`
by default: the demo model's kinds of task in scenes it never trained on.
"""
import argparse
import csv
import json
from pathlib import Path
import sys
import time
from typing import Any, Dict, List

from rt2_ros.cli.argtypes import positive_int, seed_value
from rt2_ros.cli.errors import UsageError

DEFAULT_OUT = Path('out') / 'demo'
DESCRIPTION = """\
Run the tabletop simulator, rt2_controller (safety stage on, actuation enabled)
and a policy in one process for a few episodes. Prints per-episode success,
decisions and decision latency (p50/p95); writes a video of the controller's
annotated camera and a plot of commanded vs clamped velocities.

Policy: the bundled demo model, or --model, or any controller backend
(--backend/--url). Without a bundled model it falls back to a tiny RANDOM
(untrained) model and says so."""
EXAMPLES = """\
what it writes (in --out, default out/demo/):
  demo.gif | demo.mp4   the controller's annotated camera (instruction, action bars, latency,
                        state), one result card per episode
  velocities.png        commanded (policy action / decision period) vs clamped (the twists the
                        safety stage published) end-effector velocities, with the limits
  velocities.csv        the same series; summary.json: per-episode results and settings

examples:
  rt2 demo                                      one episode per task family, bundled model
  rt2 demo --families pick,place_on --episodes 4 --seed 100
  rt2 demo --split reasoning --variation mild   harder instructions, another room
  rt2 demo --model ~/checkpoints/my-vla         a local transformers checkpoint
  rt2 demo --backend openvla_http --url http://gpu-box:8000 --action-space openvla
  rt2 demo --param limits.max_linear_speed=0.05 --video mp4 --headless
"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError('must be within 0.5 .. 3600 s')
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    from rt2_ros.demo.plan import DEFAULT_EPISODES, DEFAULT_SPLIT, VIDEO_FORMATS
    from rt2_ros.sim.splits import LADDER, SPLITS, VARIATION_LEVELS
    parser = subparsers.add_parser(
        'demo', help='closed-loop demo: simulator + controller + policy, with video and plots',
        description=DESCRIPTION,
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = parser.add_argument_group('episodes')
    tasks.add_argument('--families', metavar='F[,F...]',
                       help="task families, comma-separated, run in turn (default: the split's)")
    tasks.add_argument('--episodes', type=positive_int,
                       help=f'number of episodes (default: {DEFAULT_EPISODES}, or one per '
                       'family given)')
    tasks.add_argument('--split', choices=sorted(SPLITS),
                       help='task split; the ladder, easiest first: ' + ', '.join(LADDER) +
                       " (default: the hardest rung the model's shipped evaluation says it is "
                       f'good at, else {DEFAULT_SPLIT})')
    tasks.add_argument('--seed', type=seed_value, default=0,
                       help='seed of the first episode; episode i uses seed+i (default: 0)')
    tasks.add_argument('--variation', default='none', choices=VARIATION_LEVELS,
                       help='scene appearance variation (default: none)')
    tasks.add_argument('--max-decisions', type=positive_int, default=40,
                       help='end an episode after this many policy decisions (default: 40)')
    tasks.add_argument('--episode-timeout', type=_seconds, default=30.0, metavar='SECONDS',
                       help='end an episode after this much wall-clock time (default: 30)')

    policy = parser.add_argument_group(
        'policy (default: the bundled demo model; else a tiny random model)')
    policy.add_argument('--model', metavar='PATH',
                        help='a local transformers checkpoint directory (policy.backend local)')
    policy.add_argument('--backend',
                        help='policy backend as for rt2_controller policy.backend: local, '
                        'openvla_http, openai, openpi, or module:Class')
    policy.add_argument('--url', help='policy server URL for a remote backend (policy.url)')
    policy.add_argument('--action-space', metavar='SPACE',
                        help="action space preset or YAML (default: the model's own "
                        'action_space.yaml, else rt2)')
    policy.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                        help='any other rt2_controller parameter, repeatable (e.g. '
                        'limits.max_linear_speed=0.05, policy.extra.temperature=0.5)')

    output = parser.add_argument_group('output')
    output.add_argument('--out', default=str(DEFAULT_OUT), metavar='DIR',
                        help=f'output directory (default: {DEFAULT_OUT})')
    output.add_argument('--video', default='gif', choices=VIDEO_FORMATS,
                        help='video format of the annotated camera (default: gif)')
    output.add_argument('--headless', action='store_true',
                        help='no live window, files only (automatic without a display)')
    output.add_argument('--namespace', default='/rt2_demo',
                        help='ROS namespace of the demo nodes (default: /rt2_demo, so a real '
                        'robot on the same ROS domain never hears the demo)')
    output.add_argument('--verbose', action='store_true', help="show the nodes' ROS log")
    parser.set_defaults(func=run)


def _parse_params(items: List[str]) -> Dict[str, Any]:
    """NAME=VALUE pairs (YAML values, as `ros2 param set` takes them) checked against the node."""
    import yaml
    from rt2_ros.controller import params as P
    values: Dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition('=')
        name = name.strip()
        if not sep or not name:
            raise UsageError(f'--param expects NAME=VALUE, not {item!r}')
        try:
            value = yaml.safe_load(text) if text.strip() else ''
        except yaml.YAMLError:
            value = text
        if name.startswith('policy.extra.') and len(name) > len('policy.extra.'):
            values[name] = value
            continue
        spec = P.BY_NAME.get(name)
        if spec is None:
            raise UsageError(f'--param {name}: not an rt2_controller parameter (`rt2 params` '
                             'lists them)')
        if spec.kind == 'double' and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if spec.kind == 'string' and not isinstance(value, str):
            value = text.strip()
        problem = P.check_value(spec, value)
        if problem:
            raise UsageError(f'--param {problem}')
        values[name] = value
    return values


def _write_outputs(run, settings, policy, started: float) -> Dict[str, Path]:
    from rt2_ros.demo.media import EpisodeSpan, plot_velocities, VelocitySeries, write_video
    from rt2_ros.demo.results import overall
    out = settings.out_dir
    files: Dict[str, Path] = {}
    video = write_video(run.frames, out, settings.video)
    if video is not None:
        files['video'] = video
    spans = [EpisodeSpan(r.start_s, r.end_s, f'{r.index + 1} {r.family}', r.success)
             for r in run.results]
    commanded = VelocitySeries.from_rows(run.commanded)
    clamped = VelocitySeries.from_rows(run.clamped)
    title = (f'rt2 demo: commanded vs clamped end-effector velocity; policy: {policy.label}; '
             f'limits {run.limits["max_linear_speed"]:g} m/s, '
             f'{run.limits["max_angular_speed"]:g} rad/s')
    files['plot'] = plot_velocities(commanded, clamped, spans, run.limits['max_linear_speed'],
                                    run.limits['max_angular_speed'], out / 'velocities.png',
                                    title='\n'.join(_wrap(title, 120)))
    with open(out / 'velocities.csv', 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['series', 't_s', 'vx', 'vy', 'vz', 'wx', 'wy', 'wz'])
        for name, rows in (('commanded', run.commanded), ('clamped', run.clamped)):
            for t, linear, angular in rows:
                writer.writerow([name, f'{t:.4f}'] + [f'{v:.6g}' for v in (*linear, *angular)])
    files['csv'] = out / 'velocities.csv'
    summary = {
        'policy': policy.description, 'trained': policy.trained,
        'controller_parameters': run.controller_parameters,
        'limits': run.limits, 'interrupted': run.interrupted,
        'wall_time_s': round(time.monotonic() - started, 2),
        'overall': overall(run.results),
        'episodes': [r.to_json() for r in run.results],
        'files': {k: str(v) for k, v in files.items()},
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    files['summary'] = out / 'summary.json'
    return files


def _wrap(text: str, width: int) -> List[str]:
    import textwrap
    return textwrap.wrap(text, width)


def _plan(args: argparse.Namespace, rungs: Dict[str, Any]):
    from rt2_ros.demo.plan import DEFAULT_EPISODES, default_split, plan_episodes
    from rt2_ros.sim.splits import get_split
    if args.families is not None:
        families = [f.strip() for f in args.families.split(',') if f.strip()]
        split = args.split or default_split(rungs, families)
        episodes = args.episodes or len(families)
    else:
        split = args.split or default_split(rungs)
        families = list(get_split(split).families)
        episodes = args.episodes or DEFAULT_EPISODES
    try:
        return split, plan_episodes(split, families, episodes, args.seed, args.variation)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from rt2_ros.demo.plan import DemoSettings, rung_summary, TRAINING_SPLIT
    from rt2_ros.models.bundled import measured_rungs
    started = time.monotonic()
    if not args.namespace.startswith('/') or args.namespace.rstrip('/') == '':
        raise UsageError('--namespace must start with / and name something, e.g. /rt2_demo')
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f'--out {out} exists and is not a directory')
    overrides = _parse_params(args.param)
    _plan(args, {})  # bad families or seeds are usage errors before any model loads

    from rt2_ros.demo.policy_choice import choose_policy
    try:
        policy = choose_policy(args.model, args.backend, args.url, args.action_space, out,
                               log=lambda line: print(line, flush=True))
        out.mkdir(parents=True, exist_ok=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f'cannot write to {out}: {exc}') from None
    model_path = policy.parameters.get('policy.model_path')
    rungs = measured_rungs(Path(model_path)) if model_path else {}
    split, plan = _plan(args, rungs)
    settings = DemoSettings(plan=plan, out_dir=out, video=args.video, headless=args.headless,
                            namespace=args.namespace.rstrip('/'),
                            max_decisions=args.max_decisions,
                            episode_timeout_s=args.episode_timeout,
                            controller_overrides=overrides, verbose=args.verbose)
    print(f'rt2 demo: {len(plan)} episode(s) of split {split} '
          f'({", ".join(dict.fromkeys(p.family for p in plan))}), seeds {plan[0].seed}..'
          f'{plan[-1].seed}; policy: {policy.description}', flush=True)
    if policy.trained is False:
        print('  NOTE: this model is untrained (random weights): its actions are valid but '
              'meaningless, so the arm wanders and success is not expected. It shows the loop, '
              'the safety stage and the latency, not a skill.', flush=True)
    if split == TRAINING_SPLIT:
        print('  note: split train holds the scenes the demo model was trained on', flush=True)

    view = None
    if not args.headless:
        from rt2_ros.demo.live_view import try_live_view
        view = try_live_view(lambda line: print(f'  {line}', flush=True))
    from rt2_ros.demo.demo_node import DemoError, run_demo
    try:
        result = run_demo(settings, policy, log=lambda line: print(line, flush=True),
                          on_frame=view.show if view is not None else None)
    except DemoError as exc:
        print(f'rt2 demo: error: {exc}', file=sys.stderr)
        return 1
    finally:
        if view is not None:
            view.close()
    files = _write_outputs(result, settings, policy, started)
    wins = sum(r.success for r in result.results)
    decisions = sum(r.decisions for r in result.results)
    what = policy.description
    if policy.trained is False:
        what += ' - success was not expected'
    listing = ', '.join(str(p) for p in files.values())
    print(f'rt2 demo: {wins}/{len(result.results)} episodes succeeded, {decisions} decisions, '
          f'{time.monotonic() - started:.0f} s; policy: {what}; files: {listing}', flush=True)
    if rungs:
        print(f'rt2 demo: measured success of this model per rung (rt2 eval-sim, new scenes): '
              f'{rung_summary(rungs)}; --split picks a rung', flush=True)
    if result.interrupted:
        print('rt2 demo: interrupted', file=sys.stderr)
        return 130
    if decisions == 0:
        print('rt2 demo: error: the policy produced no decision in any episode (see the policy '
              'errors above)', file=sys.stderr)
        return 1
    return 0

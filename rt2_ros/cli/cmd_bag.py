"""
`rt2 bag`: replay, record, evaluate, regression-test and export rosbag2 recordings.

Thin argument handling over rt2_ros.bags (pure: read, eval, export) and its `*_node` modules
(ROS: play, record, replay-test). Every user mistake - a missing bag or topic, a corrupt or
truncated file, an unknown type, a policy that cannot be built - ends as one line on stderr and
exit status 2; `replay-test` exits 1 when the outputs differ from the golden bag.
"""
import argparse
import json
from pathlib import Path
import sys
from typing import Any, Dict, List, Optional

from rt2_ros.cli.errors import UsageError

DISTRO_HELP = ('ROS distro whose message definitions to assume for bags that do not store '
               'them (Humble sqlite3); default: from the bag metadata')


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'bag', help='play, record, evaluate, regression-test and export rosbag2 bags',
        description='Tools for rosbag2 recordings (sqlite3 or MCAP; Humble, Jazzy, Kilted) '
                    'that need no ros2 bag install.')
    sub = parser.add_subparsers(dest='bag_command', metavar='BAG_COMMAND', required=True)
    _register_info(sub)
    _register_play(sub)
    _register_record(sub)
    _register_eval(sub)
    _register_replay_test(sub)
    _register_export(sub)


# -- shared option groups ---------------------------------------------------------------------

def _step_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('topics and action derivation')
    group.add_argument('--image-topic', help='camera topic (default: the Image/CompressedImage '
                       'topic, preferring .../camera/image_raw)')
    group.add_argument('--instruction', help='instruction text for every step (overrides the '
                       "bag's instruction topic)")
    group.add_argument('--instruction-topic', help='std_msgs/String instruction topic '
                       '(default: the topic ending in "instruction")')
    group.add_argument('--action-topic', help='recorded action topic, Float64MultiArray in the '
                       "space's order and units (default: .../expert/action when present)")
    group.add_argument('--from-twists', action='store_true', help='derive actions from the '
                       'twist/gripper commands even when an action topic is present')
    group.add_argument('--twist-topic', help='TwistStamped command topic (default: '
                       '.../delta_twist_cmds)')
    group.add_argument('--gripper-topic', help='Float64MultiArray [position] gripper topic '
                       '(default: .../gripper/commands)')
    group.add_argument('--pose-topic', help='PoseStamped end-effector topic passed to the policy '
                       'as its state (default: .../ee_pose when present)')
    group.add_argument('--joint-topic', help='sensor_msgs/JointState topic holding the gripper '
                       'joint, passed to a policy whose prompt states the gripper (default: '
                       '.../joint_states when present)')
    group.add_argument('--gripper-joint', help='name of the gripper joint in --joint-topic, '
                       'scaled by --gripper-closed/open-position (default: gripper_joint, the '
                       "simulator's)")
    group.add_argument('--period', type=float, help='decision period in seconds for twist-derived '
                       "actions (default: 1 / the space's nominal rate)")
    group.add_argument('--twist-timeout', type=float, default=0.1, help='seconds a twist stays in '
                       'force without a newer one (MoveIt Servo default 0.1)')
    group.add_argument('--gripper-open-position', type=float, default=1.0)
    group.add_argument('--gripper-closed-position', type=float, default=0.0)
    group.add_argument('--distro', help=DISTRO_HELP)


def _make_step_options(args: argparse.Namespace) -> Any:
    from rt2_ros.bags.steps import StepOptions
    if args.from_twists and args.action_topic:
        raise UsageError('--from-twists and --action-topic exclude each other')
    for name in ('period', 'twist_timeout'):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise UsageError(f'--{name.replace("_", "-")} must be positive')
    return StepOptions(
        image_topic=args.image_topic, instruction_topic=args.instruction_topic,
        instruction=args.instruction, action_topic=args.action_topic,
        twist_topic=args.twist_topic, gripper_topic=args.gripper_topic,
        pose_topic=args.pose_topic, joint_topic=args.joint_topic,
        gripper_joint=args.gripper_joint or StepOptions.gripper_joint, period_s=args.period,
        twist_timeout_s=args.twist_timeout,
        gripper_closed_position=args.gripper_closed_position,
        gripper_open_position=args.gripper_open_position, use_actions=not args.from_twists)


def _load_space(name: str) -> Any:
    from rt2_ros.actions import ActionSpaceError, load_action_space
    try:
        return load_action_space(name)
    except ActionSpaceError as exc:
        raise UsageError(str(exc)) from None


def _open(path: str, distro: Optional[str] = None) -> Any:
    from rt2_ros.bags.errors import BagError
    from rt2_ros.bags.reader import open_bag
    try:
        bag = open_bag(path, distro)
    except BagError as exc:
        raise UsageError(str(exc)) from None
    for warning in bag.warnings:
        print(f'rt2 bag: warning: {warning}', file=sys.stderr)
    return bag


def _bag_errors(func):
    """Turn BagError raised while working on a bag into UsageError (exit 2, one line)."""
    def wrapper(args: argparse.Namespace) -> int:
        from rt2_ros.bags.errors import BagError
        try:
            return func(args)
        except BagError as exc:
            raise UsageError(str(exc)) from None
    wrapper.__doc__ = func.__doc__
    return wrapper


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


# -- info -------------------------------------------------------------------------------------

def _register_info(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser('info', help='storage, distro, duration and topics of a bag')
    parser.add_argument('bag', metavar='BAG', help='bag directory or .mcap/.db3 file')
    parser.add_argument('--json', action='store_true', help='print JSON')
    parser.add_argument('--distro', help=DISTRO_HELP)
    parser.set_defaults(func=run_info)


@_bag_errors
def run_info(args: argparse.Namespace) -> int:
    with _open(args.bag, args.distro) as bag:
        info = bag.summary()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f'bag:        {info["path"]}')
    print(f'storage:    {info["storage"]} (metadata version {info["version"]}, '
          f'ros_distro {info["ros_distro"] or "not recorded"})')
    print(f'types:      {info["definitions"]}')
    print(f'duration:   {info["duration_s"]} s, {info["messages"]} messages')
    for topic in info['topics']:
        qos = ', '.join(f'{q["reliability"]}/{q["durability"]}/{q["depth"]}'
                        for q in topic['qos']) or 'no QoS recorded'
        print(f'  {topic["name"]:32s} {topic["type"]:36s} {topic["count"]:6d}  {qos}')
    return 0


# -- play -------------------------------------------------------------------------------------

def _register_play(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser('play', help="publish a bag's messages with their original timing",
                            description='Publish a bag on live ROS topics (no ros2 bag needed).')
    parser.add_argument('bag', metavar='BAG', help='bag directory or .mcap/.db3 file')
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed factor')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC', help='only these topics')
    parser.add_argument('--remap', nargs='+', default=[], metavar='FROM:=TO',
                        help='publish a topic under another name')
    parser.add_argument('--loop', action='store_true', help='start over at the end')
    parser.add_argument('--clock', nargs='?', const=100.0, type=float, metavar='HZ',
                        help='publish bag time on /clock (default 100 Hz) for use_sim_time')
    parser.add_argument('--start-offset', type=float, default=0.0, metavar='S',
                        help='skip the first S seconds')
    parser.add_argument('--delay', type=float, default=0.5, metavar='S',
                        help='wait S seconds after creating publishers (discovery) before '
                        'the first message')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='S',
                        help='wait up to S seconds until every topic has a subscriber')
    parser.add_argument('--distro', help=DISTRO_HELP)
    parser.set_defaults(func=run_play)


def _parse_remaps(items: List[str]) -> Dict[str, str]:
    from rt2_ros.bags.reader import normalize_topic
    remaps = {}
    for item in items:
        source, sep, target = item.partition(':=')
        if not sep or not source.strip() or not target.strip():
            raise UsageError(f'--remap {item!r} must look like FROM:=TO')
        remaps[normalize_topic(source)] = normalize_topic(target)
    return remaps


@_bag_errors
def run_play(args: argparse.Namespace) -> int:
    if not args.rate > 0:
        raise UsageError('--rate must be positive')
    if args.clock is not None and not args.clock > 0:
        raise UsageError('--clock rate must be positive')
    if args.start_offset < 0 or args.delay < 0 or args.wait_for_subscribers < 0:
        raise UsageError('--start-offset, --delay and --wait-for-subscribers must be >= 0')
    remaps = _parse_remaps(args.remap)
    with _open(args.bag, args.distro) as bag:
        topics = [bag.topic(t).name for t in args.topics] if args.topics else list(bag.topics)
        from rt2_ros.bags.play_node import play, PlayOptions
        summary = play(bag, PlayOptions(
            topics=topics, rate=args.rate, loop=args.loop, clock_hz=args.clock,
            start_offset_s=args.start_offset, delay_s=args.delay, remaps=remaps,
            wait_for_subscribers_s=args.wait_for_subscribers))
    print(json.dumps(summary))
    return 0 if not summary.get('interrupted') else 130


# -- record -----------------------------------------------------------------------------------

def _register_record(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser('record', help='record topics into a new rosbag2 bag',
                            description='Record topics until SIGINT/SIGTERM (the bag is closed '
                            'cleanly), or for a duration or message count.')
    parser.add_argument('out', metavar='OUT', help='new bag directory')
    parser.add_argument('--topics', nargs='+', required=True, metavar='TOPIC')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    parser.add_argument('--duration', type=float, metavar='S', help='stop after S seconds')
    parser.add_argument('--max-messages', type=int, metavar='N',
                        help='stop after N messages in total')
    parser.add_argument('--discovery-timeout', type=float, default=10.0, metavar='S',
                        help="how long to wait for a topic's publisher to learn its type "
                        '(topics found later are added while recording)')
    parser.add_argument('--types', nargs='+', default=[], metavar='TOPIC:=TYPE',
                        help='subscribe at once with this type instead of discovering it, '
                        'e.g. /instruction:=std_msgs/msg/String')
    parser.add_argument('--qos', nargs='+', default=[], metavar='TOPIC:=PROFILE',
                        help='QoS override: sensor_data, latched, reliable or best_effort')
    parser.set_defaults(func=run_record)


@_bag_errors
def run_record(args: argparse.Namespace) -> int:
    from rt2_ros.bags.qos import BEST_EFFORT, DEFAULT, LATCHED, QosSpec, SENSOR_DATA
    from rt2_ros.bags.reader import normalize_topic
    if args.duration is not None and not args.duration > 0:
        raise UsageError('--duration must be positive')
    if args.max_messages is not None and args.max_messages < 1:
        raise UsageError('--max-messages must be at least 1')
    profiles = {'sensor_data': SENSOR_DATA, 'latched': LATCHED, 'reliable': DEFAULT,
                'best_effort': QosSpec(BEST_EFFORT, 'volatile', 10)}
    qos = {}
    for item in args.qos:
        topic, sep, name = item.partition(':=')
        if not sep or name not in profiles:
            raise UsageError(f'--qos {item!r} must be TOPIC:=PROFILE with PROFILE one of '
                             f'{", ".join(profiles)}')
        qos[normalize_topic(topic)] = profiles[name]
    types = {}
    for item in args.types:
        topic, sep, msgtype = item.partition(':=')
        if not sep or msgtype.count('/') != 2:
            raise UsageError(f'--types {item!r} must be TOPIC:=pkg/msg/Type')
        types[normalize_topic(topic)] = msgtype
    from rt2_ros.bags.record_node import record, RecordOptions
    summary = record(RecordOptions(
        out=Path(args.out), topics=[normalize_topic(t) for t in args.topics],
        storage=args.storage, duration_s=args.duration, max_messages=args.max_messages,
        discovery_timeout_s=args.discovery_timeout, types=types, qos=qos))
    print(json.dumps(summary))
    return 0


# -- eval -------------------------------------------------------------------------------------

def _policy_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('policy (see docs/backends.md)')
    group.add_argument('--policy', required=True, metavar='BACKEND',
                       help='backend: local, openvla_http, openai, openpi, a registered '
                       'plug-in or module:Class')
    group.add_argument('--url', default='', help='server URL for remote backends')
    group.add_argument('--model', default='', help='model directory for the local backend')
    group.add_argument('--model-name', default='', help='model name (OpenAI-compatible servers)')
    group.add_argument('--space', default='rt2', help='action space preset or YAML path')
    group.add_argument('--timeout', type=float, default=10.0, help='per-call timeout (s)')
    group.add_argument('--unnorm-key', default='')
    group.add_argument('--api-key-env', default='', help='environment variable with the API key')
    group.add_argument('--prompt-template', default='')
    group.add_argument('--device', default='auto')


def policy_config_from_args(args: argparse.Namespace) -> Any:
    """Build a PolicyConfig from the policy flags; an unknown backend is a user error."""
    from rt2_ros.policy.base import PolicyConfig
    from rt2_ros.policy.factory import backend_error
    if backend_error(args.policy) is not None:
        raise UsageError(backend_error(args.policy))
    if not args.timeout > 0:
        raise UsageError('--timeout must be positive')
    return PolicyConfig(
        backend=args.policy, url=args.url, timeout_s=args.timeout, model_path=args.model,
        unnorm_key=args.unnorm_key, action_space=args.space, api_key_env=args.api_key_env,
        prompt_template=args.prompt_template, model_name=args.model_name, device=args.device)


def make_policy_from_args(args: argparse.Namespace) -> Any:
    """Build the policy with the backend registry; construction failures are user errors."""
    from rt2_ros.policy.base import PolicyError
    from rt2_ros.policy.factory import make_policy, UnknownBackendError
    config = policy_config_from_args(args)
    try:
        return make_policy(config)
    except UnknownBackendError as exc:
        raise UsageError(str(exc)) from None
    except ModuleNotFoundError as exc:
        raise UsageError(f'policy backend {args.policy!r} is not available in this install '
                         f'({exc})') from None
    except (PolicyError, ValueError, OSError) as exc:
        raise UsageError(f'cannot start policy {args.policy!r}: {exc}') from None


def _register_eval(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        'eval', help='score a policy offline against the recorded commands',
        description="Feed each decision step's camera frame and instruction to a policy and "
        'compare with what was recorded; writes report.json, steps.jsonl and PNG plots.')
    parser.add_argument('bag', metavar='BAG', help='bag directory or .mcap/.db3 file')
    _policy_options(parser)
    _step_options(parser)
    parser.add_argument('--out', help='report directory (default: ./eval_<bag name>)')
    parser.add_argument('--max-steps', type=int, help='evaluate only the first N steps')
    parser.add_argument('--no-plots', action='store_true')
    parser.add_argument('--no-progress', action='store_true')
    parser.set_defaults(func=run_eval)


@_bag_errors
def run_eval(args: argparse.Namespace) -> int:
    from itertools import islice
    from rt2_ros.bags.evaluation import run_policy, score
    from rt2_ros.bags.report import write_report
    from rt2_ros.bags.steps import iter_steps, plan_steps
    policy_config_from_args(args)  # fail on a bad backend before reading the bag
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError('--max-steps must be at least 1')
    space = _load_space(args.space)
    options = _make_step_options(args)
    out = Path(args.out) if args.out else Path(f'eval_{Path(args.bag).resolve().name}')
    with _open(args.bag, args.distro) as bag:
        plan = plan_steps(bag, space, options)
        if not plan.steps:
            raise UsageError(f'{args.bag} has no decision steps to evaluate '
                             f'(skipped: {plan.skipped or "none"})')
        for warning in plan.warnings:
            print(f'rt2 bag eval: warning: {warning}', file=sys.stderr)
        total = min(len(plan.steps), args.max_steps or len(plan.steps))
        policy = make_policy_from_args(args)
        try:
            results = run_policy(islice(iter_steps(bag, plan), total), policy, total=total,
                                 progress=_progress(args))
        finally:
            policy.close()
        report = score(results, space)
        described = plan.describe()
        report['steps']['planned'] = described.pop('steps')
        report.update({'bag': str(bag.path), 'space': space.name, **described,
                       'policy': {'backend': args.policy, 'url': args.url or None,
                                  'model': args.model or None}})
        paths = write_report(out, report, results, space, plots=not args.no_plots)
    _print_eval_summary(report, paths)
    return 0


def _print_eval_summary(report: Dict[str, Any], paths: Dict[str, str]) -> None:
    steps = report['steps']
    print(f'{steps["answered"]}/{steps["total"]} steps answered'
          + (f', failures: {report["failures"]}' if report['failures'] else ''))
    accuracy = report['bin_accuracy']
    if accuracy['exact'] is not None:
        print(f'bin accuracy {accuracy["exact"]:.3f} (within 1 bin {accuracy["within_1"]:.3f})')
    for name, stats in report['dimensions'].items():
        if stats.get('n'):
            print(f'  {name:18s} mae {stats["mae"]:.5g} {stats["unit"]:3s} '
                  f'bin acc {stats["bin_accuracy"]:.3f}')
    for key in ('gripper', 'terminate'):
        if report.get(key):
            print(f'{key} agreement {report[key]["agreement"]:.3f} (n={report[key]["n"]})')
    wall = report['latency_s']['wall']
    if wall:
        print(f'latency p50 {wall["p50"] * 1000:.1f} ms, p99 {wall["p99"] * 1000:.1f} ms, '
              f'max {wall["max"] * 1000:.1f} ms')
    print(f'report: {paths["report"]}')


# -- replay-test ------------------------------------------------------------------------------

def _register_replay_test(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        'replay-test', help='run rt2_controller on a bag and compare with a golden output bag',
        description="Replays the bag's inputs to the real rt2_controller over DDS in simulated "
        'time (one control tick at a time, the clock held while the policy thinks), records '
        'what it publishes and compares the sequence of commands and decisions with GOLDEN '
        '(content and order, with a tolerance). Exit 0: same; 1: different (a diff is '
        'printed); 2: usage error or the replay could not run.')
    parser.add_argument('bag', metavar='BAG', help='input bag (camera, instruction, ee_pose)')
    parser.add_argument('--golden', required=True, help='golden output bag')
    parser.add_argument('--update-golden', action='store_true',
                        help='(re)write GOLDEN from this run instead of comparing')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='absolute tolerance on every number (m/s, rad/s, positions); '
                        'covers float rounding of times near the epoch (~2e-7 s)')
    parser.add_argument('--params', help='controller parameter YAML (ros__parameters)')
    parser.add_argument('--set', nargs='+', default=[], metavar='NAME:=VALUE',
                        help='controller parameter overrides, e.g. control_rate_hz:=30')
    parser.add_argument('--deadline', type=float, default=300.0, metavar='S',
                        help='give up after S seconds of wall time')
    parser.add_argument('--keep', help='also keep the recorded output bag here')
    parser.add_argument('--distro', help=DISTRO_HELP)
    _policy_options(parser)
    parser.set_defaults(func=run_replay_test)


@_bag_errors
def run_replay_test(args: argparse.Namespace) -> int:
    from rt2_ros.bags.replay_node import replay_test, ReplayOptions
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition(':=')
        if not sep or not name:
            raise UsageError(f'--set {item!r} must look like NAME:=VALUE')
        overrides[name] = value
    if not args.tolerance >= 0:
        raise UsageError('--tolerance must be >= 0')
    if not args.deadline > 0:
        raise UsageError('--deadline must be positive')
    config = policy_config_from_args(args)
    _load_space(args.space)
    result = replay_test(ReplayOptions(
        bag=Path(args.bag), golden=Path(args.golden), policy=config, update=args.update_golden,
        tolerance=args.tolerance, params_file=Path(args.params) if args.params else None,
        overrides=overrides, timeout_s=args.deadline,
        keep=Path(args.keep) if args.keep else None, distro=args.distro))
    print(result.text)
    return 0 if result.passed else 1


# -- export -----------------------------------------------------------------------------------

def _register_export(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        'export', help='export an RT-2-format training set (images + dataset.jsonl)',
        description='One row per decision step: image file, instruction, prompt, action '
        "string in the space's tokens (plus bins and values).")
    parser.add_argument('bag', metavar='BAG', help='bag directory or .mcap/.db3 file')
    parser.add_argument('out', metavar='OUT', help='new (or empty) output directory')
    parser.add_argument('--space', default='rt2', help='action space preset or YAML path')
    parser.add_argument('--image-format', choices=('png', 'jpg'), default='png')
    parser.add_argument('--prompt-template', default=None,
                        help="rt2 (default: the RT-2 paper's), openvla, or a template with "
                        '{instruction} or {instruction_lower}')
    parser.add_argument('--assume-gripper', choices=('open', 'closed'),
                        help='gripper value when the bag has no gripper commands')
    parser.add_argument('--no-progress', action='store_true')
    _step_options(parser)
    parser.set_defaults(func=run_export)


@_bag_errors
def run_export(args: argparse.Namespace) -> int:
    from rt2_ros.actions import make_codec
    from rt2_ros.bags.export import export_dataset, RT2_PROMPT
    from rt2_ros.bags.steps import plan_steps
    space = _load_space(args.space)
    options = _make_step_options(args)
    with _open(args.bag, args.distro) as bag:
        plan = plan_steps(bag, space, options)
        if not plan.steps:
            raise UsageError(f'{args.bag} has no decision steps to export '
                             f'(skipped: {plan.skipped or "none"})')
        for warning in plan.warnings:
            print(f'rt2 bag export: warning: {warning}', file=sys.stderr)
        info = export_dataset(bag, plan, make_codec(space), Path(args.out),
                              image_format=args.image_format,
                              prompt_template=args.prompt_template or RT2_PROMPT,
                              assume_gripper=args.assume_gripper, progress=_progress(args))
    print(f'{info["rows"]} rows, {info["episodes"]} episodes -> {Path(args.out) / "dataset.jsonl"}'
          f' (actions from {info["action_source"]})')
    return 0

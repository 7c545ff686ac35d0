"""
`rt2 bag replay-test`: run the real rt2_controller on a bag's inputs and check its outputs.

The controller runs as its own process over DDS, unchanged, with use_sim_time. This process
plays the bag's inputs (camera, instruction, ee_pose, joint_states, estop) and drives /clock
itself, one control period at a time, so the run is reproducible although nothing in it is:

- Timer phase: /clock advances by exactly one control period per step, so the control timer
  fires once per step at a known time; the replay waits for that tick's command before the next
  step (when the controller is commanding - idle and terminated controllers are silent).
- Policy latency: the policy sits behind a PolicyGate; while a call is in flight simulated time
  stands still, so every decision arrives on the tick it was asked on, however long the model or
  server took in wall-clock time.
- What remains (an image arriving a moment after the tick it was published for, a request
  reaching the gate a moment late) can only shift events by whole ticks, which changes how many
  times a command repeats, never the commands or their order - and that is what the golden
  comparison (rt2_ros.bags.golden) looks at.

Outputs are recorded with simulated receive times into an MCAP bag, then compared with the
golden bag, or become the new golden bag with --update-golden.
"""
from dataclasses import dataclass, field
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Set

from rt2_ros.bags.errors import BagError
from rt2_ros.bags.golden import compare_bags, compared_topics, NOT_COMPARED
from rt2_ros.bags.play_node import message_class, to_qos_profile
from rt2_ros.bags.qos import combine_offered, LATCHED, playback_qos
from rt2_ros.bags.reader import BagReader, open_bag
from rt2_ros.bags.record_node import offered_specs
from rt2_ros.bags.writer import BagWriter
from rt2_ros.params_file import params_file_text
from rt2_ros.policy.base import PolicyConfig, PolicyError
import yaml

NAMESPACE = '/rt2_replay'
CONTROLLER = 'rt2_controller'
INPUT_SUFFIXES = ('camera/image_raw/compressed', 'camera/image_raw', 'instruction', 'ee_pose',
                  'joint_states', 'estop')
COMMAND_TOPICS = {'servo/delta_twist_cmds': 'geometry_msgs/msg/TwistStamped',
                  'target_pose': 'geometry_msgs/msg/PoseStamped'}
# Settings replay-test imposes: they make the run reproducible (see the module docstring).
FORCED_PARAMS = {
    'use_sim_time': True, 'autostart': True, 'enabled_on_start': True,
    'policy.backend': 'openvla_http', 'policy.timeout_s': 300.0,
    'policy.connect_timeout_s': 10.0, 'inference.latency_aware': False,
    'inference.max_in_flight': 1, 'viz.annotated_image': False, 'viz.rate_hz': 0.0,
    'diagnostics.period_s': 0.1,
    'watchdog.clock_timeout_s': 0.0,  # simulated time stands still on purpose during a call
}
WARMUP_S = 1.0
STARTUP_TIMEOUT_S = 60.0
TICK_TIMEOUT_S = 5.0
QUIET_TICK_S = 0.02
STOPPING_TICK_S = 0.25
REPLY_SETTLE_S = 1.0


@dataclass
class ReplayOptions:
    """What to replay, against what, with which policy (the CLI flags)."""

    bag: Path
    golden: Path
    policy: PolicyConfig
    update: bool = False
    tolerance: float = 1e-4
    params_file: Optional[Path] = None
    overrides: Dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 120.0
    keep: Optional[Path] = None
    distro: Optional[str] = None
    tail_s: float = 2.0


@dataclass
class ReplayResult:
    passed: bool
    text: str
    stats: Dict[str, Any] = field(default_factory=dict)


def _flatten(tree: Dict[str, Any], prefix: str = '') -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}.{key}' if prefix else str(key)
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def controller_parameters(options: ReplayOptions, gate_url: str) -> Dict[str, Any]:
    """Return the controller's parameters: the user's file and --set, then the replay's."""
    from rt2_ros.controller import params as P
    values: Dict[str, Any] = {}
    if options.params_file is not None:
        try:
            data = yaml.safe_load(Path(options.params_file).read_text(encoding='utf-8'))
        except (OSError, yaml.YAMLError) as exc:
            raise BagError('usage', f'cannot read --params {options.params_file}: '
                           f'{str(exc).splitlines()[0]}') from None
        for section in (data or {}).values() if isinstance(data, dict) else []:
            if isinstance(section, dict) and isinstance(section.get('ros__parameters'), dict):
                values.update(_flatten(section['ros__parameters']))
    for name, text in options.overrides.items():
        values[name] = yaml.safe_load(text) if isinstance(text, str) else text
    unknown = [n for n in values if n not in P.BY_NAME and n != 'use_sim_time'
               and not n.startswith('policy.extra.')]
    if unknown:
        raise BagError('usage', f'not rt2_controller parameters: {", ".join(sorted(unknown))}')
    values.update(FORCED_PARAMS)
    values['policy.url'] = gate_url
    values['action_space'] = options.policy.action_space
    merged = {spec.name: spec.default for spec in P.PARAMS}
    merged.update({k: v for k, v in values.items() if k in P.BY_NAME})
    problems = P.check_all(merged)
    if problems:
        raise BagError('usage', 'controller parameters: ' + '; '.join(problems))
    return values


def controller_command(namespace: str, params_path: Path) -> List[str]:
    """How to start rt2_controller from this environment."""
    script = Path(sys.executable).parent / CONTROLLER
    base = [str(script)] if script.exists() else (
        [shutil.which(CONTROLLER)] if shutil.which(CONTROLLER)
        else [sys.executable, '-m', 'rt2_ros.controller.node'])
    return base + ['--ros-args', '-r', f'__ns:={namespace}', '--params-file', str(params_path)]


def input_topics(bag: BagReader) -> Dict[str, str]:
    """Bag topic -> the controller's input it feeds (by name ending); the rest is not played."""
    chosen: Dict[str, str] = {}
    for name in bag.topics:
        for suffix in INPUT_SUFFIXES:
            if name == '/' + suffix or name.endswith('/' + suffix):
                if suffix == 'camera/image_raw' and name.endswith('/compressed'):
                    continue
                chosen[name] = suffix
                break
    suffixes = set(chosen.values())
    if not suffixes & {'camera/image_raw', 'camera/image_raw/compressed'}:
        raise BagError('missing_topic', f'{bag.path} has no camera/image_raw topic for the '
                       'controller')
    if 'instruction' not in suffixes:
        raise BagError('missing_topic', f'{bag.path} has no instruction topic for the controller')
    return chosen


class _Outputs:
    """Records what the controller publishes, with simulated receive times."""

    def __init__(self, writer: BagWriter) -> None:
        self.writer = writer
        self.condition = threading.Condition()
        self.sim_ns = 0
        self.last_command_ns = -1
        self.actions = 0
        self.state = ''
        self.commands = 0
        self.frames_received = 0
        # start-up (unconfigured -> inactive -> idle) depends on discovery timing: not recorded
        self.recording = False

    def on_diagnostics(self, message: Any) -> None:
        """Read the controller's 'frames received' counter (the start-up handshake)."""
        for status in message.status:
            for item in status.values:
                if item.key == 'frames received' and item.value.isdigit():
                    with self.condition:
                        self.frames_received = max(self.frames_received, int(item.value))
                        self.condition.notify_all()

    def callback(self, topic: str, kind: str):
        from rclpy.serialization import deserialize_message
        cls = message_class(kind)

        def on_message(raw: bytes) -> None:
            with self.condition:
                if self.recording:
                    self.writer.write(topic, self.sim_ns, raw)
                if topic.endswith(tuple(COMMAND_TOPICS)):
                    stamp = deserialize_message(raw, cls).header.stamp
                    self.last_command_ns = stamp.sec * 10**9 + stamp.nanosec
                    self.commands += 1
                elif topic.endswith('/action'):
                    self.actions += 1
                elif topic.endswith('/state'):
                    self.state = deserialize_message(raw, cls).data
                self.condition.notify_all()
        return on_message

    def wait(self, predicate, timeout: float) -> bool:
        with self.condition:
            return self.condition.wait_for(predicate, timeout)


def replay_test(options: ReplayOptions) -> ReplayResult:
    """Run the replay and compare (or write the golden bag); see the module docstring."""
    from rt2_ros.bags.policy_gate import PolicyGate
    from rt2_ros.policy.factory import make_policy
    golden = Path(options.golden)
    if not options.update and not golden.exists():
        raise BagError('missing', f'golden bag {golden} does not exist; create it with '
                       '--update-golden')
    if options.update and golden.exists() and not _is_bag_directory(golden):
        raise BagError('exists', f'{golden} exists and is not a bag directory; --update-golden '
                       'only replaces a bag')
    if options.keep is not None and Path(options.keep).exists():
        raise BagError('exists', f'{options.keep} already exists; --keep needs a new path')
    work = Path(tempfile.mkdtemp(prefix='rt2_replay_'))
    output = work / 'output'
    try:
        with open_bag(options.bag, options.distro) as bag:
            inputs = input_topics(bag)
            try:
                policy = make_policy(options.policy)
            except (PolicyError, ValueError, OSError, ImportError) as exc:
                raise BagError('usage', f'cannot start policy {options.policy.backend!r}: '
                               f'{exc}') from None
            gate = PolicyGate(policy)
            try:
                params = controller_parameters(options, gate.start())
                stats = _run(bag, inputs, params, gate, output, work, options,
                             _expected_outputs(golden, options, params))
            finally:
                gate.close()
        if options.keep is not None:
            shutil.copytree(output, options.keep)
        summary = (f'replayed {stats["ticks"]} control ticks ({stats["sim_s"]:.2f} s simulated '
                   f'in {stats["stepping_s"]:.1f} s; {stats["wall_s"]:.1f} s with start-up), '
                   f'{stats["policy_calls"]} policy calls, {stats["commands"]} commands')
        if options.update:
            if golden.exists():
                shutil.rmtree(golden)
            golden.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(output, golden)
            return ReplayResult(True, f'{summary}\nwrote golden bag {golden}', stats)
        with open_bag(golden) as want, open_bag(output) as got:
            comparison = compare_bags(want, got, options.tolerance)
        return ReplayResult(comparison.passed, summary + '\n' + comparison.text, stats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _is_bag_directory(path: Path) -> bool:
    """Tell whether path holds a rosbag2 bag and nothing else (safe to replace)."""
    if not path.is_dir() or not (path / 'metadata.yaml').is_file():
        return False
    return all(p.is_file() and (p.name == 'metadata.yaml' or p.suffix in ('.mcap', '.db3'))
               for p in path.iterdir())


def _expected_outputs(golden: Path, options: ReplayOptions, params: Dict[str, Any]) -> Set[str]:
    """
    Return the controller topics the replay must be subscribed to before it starts.

    DDS discovers a node's publishers one by one, so the first ones found are not all of them:
    a topic subscribed to late (or never) would record nothing. Comparing: every topic of the
    golden bag. Writing one: the decisions, the episode end and the arm's command topic.
    """
    if not options.update:
        with open_bag(golden) as want:
            return set(compared_topics(want))
    command = 'target_pose' if params.get('output.mode') == 'pose' else 'servo/delta_twist_cmds'
    return {f'{NAMESPACE}/{CONTROLLER}/action', f'{NAMESPACE}/{CONTROLLER}/terminated',
            f'{NAMESPACE}/{command}'}


def _run(bag: BagReader, inputs: Dict[str, str], params: Dict[str, Any], gate: Any,
         output: Path, work: Path, options: ReplayOptions, expected: Set[str]) -> Dict[str, Any]:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile
    from rosgraph_msgs.msg import Clock
    params_path = work / 'params.yaml'
    params_path.write_text(params_file_text(CONTROLLER, params), encoding='utf-8')
    log_path = work / 'controller.log'
    period_ns = int(round(1e9 / float(params.get('control_rate_hz', 50.0))))
    context = Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node('rt2_replay_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    process = None
    started = time.monotonic()
    writer = BagWriter(output, storage='mcap')
    outputs = _Outputs(writer)
    try:
        publishers = {}
        for topic, suffix in inputs.items():
            info = bag.topic(topic)
            spec = playback_qos(topic, info.msgtype, info.offered_qos)
            publishers[topic] = node.create_publisher(message_class(info.msgtype),
                                                      f'{NAMESPACE}/{suffix}',
                                                      to_qos_profile(spec))
        clock = node.create_publisher(Clock, '/clock', QoSProfile(depth=10))
        first_ns = bag.start_ns - int(WARMUP_S * 1e9)
        _publish_clock(clock, first_ns)
        with open(log_path, 'w') as log:
            process = subprocess.Popen(controller_command(NAMESPACE, params_path), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       env=dict(os.environ, PYTHONUNBUFFERED='1'))
        _subscribe_outputs(node, outputs, writer, process, log_path, clock, first_ns, expected)
        stats = _step(bag, inputs, publishers, clock, outputs, gate, process, log_path,
                      period_ns, options, started)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        with outputs.condition:
            writer.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5)
    return stats


def _publish_clock(publisher: Any, time_ns: int) -> None:
    from rosgraph_msgs.msg import Clock
    message = Clock()
    message.clock.sec, message.clock.nanosec = divmod(int(time_ns), 10**9)
    publisher.publish(message)


def _controller_failed(process: Any, log_path: Path, what: str) -> BagError:
    log = log_path.read_text(errors='replace') if log_path.exists() else ''
    lines = [line for line in log.splitlines() if line.strip()]
    tail = lines[-1] if lines else 'no output'
    state = 'exited' if process.poll() is not None else 'is running'
    return BagError('controller', f'rt2_controller {state} but {what}: {tail[:300]}')


def _subscribe_outputs(node: Any, outputs: _Outputs, writer: BagWriter, process: Any,
                       log_path: Path, clock: Any, clock_ns: int, expected: Set[str]) -> None:
    """Wait until the controller publishes every expected topic; subscribe to all it has."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    found: Dict[str, str] = {}
    while True:
        if process.poll() is not None:
            raise _controller_failed(process, log_path, 'never came up')
        try:
            names = node.get_publisher_names_and_types_by_node(CONTROLLER, NAMESPACE)
        except Exception:  # noqa: BLE001 - the node is not discovered yet
            names = []
        found = {name: types[0] for name, types in names if types}
        if expected <= set(found):
            break
        if time.monotonic() > deadline:
            missing = ', '.join(sorted(expected - set(found)))
            raise _controller_failed(process, log_path, 'did not configure within '
                                     f'{STARTUP_TIMEOUT_S:.0f} s (no publisher of {missing})')
        _publish_clock(clock, clock_ns)
        time.sleep(0.05)  # polling DDS discovery, which has no event
    from diagnostic_msgs.msg import DiagnosticArray
    node.create_subscription(DiagnosticArray, '/diagnostics', outputs.on_diagnostics, 10)
    for name, msgtype in sorted(found.items()):
        if any(name.endswith(skip) or name == skip for skip in NOT_COMPARED) or \
                name.endswith('/transition_event'):
            continue
        offered = offered_specs(node.get_publishers_info_by_topic(name))
        spec = combine_offered(offered) or LATCHED
        writer.add_topic(name, msgtype, offered or [spec])
        node.create_subscription(message_class(msgtype), name, outputs.callback(name, msgtype),
                                 to_qos_profile(spec), raw=True)


def _warm_up(bag: BagReader, inputs: Dict[str, str], publishers: Dict[str, Any], clock: Any,
             outputs: _Outputs, process: Any, log_path: Path) -> None:
    """
    Make sure the controller has a camera frame before the replay starts.

    Camera frames travel best effort and the first one may reach the controller before its
    subscription has matched ours; an episode that starts without an image halts at once
    (stale_image), so whether that happens would depend on DDS discovery. The first frame is
    therefore repeated, with simulated time running up to the bag's start, until the
    controller's diagnostics count it - before any instruction is sent.
    """
    camera = next((t for t, suffix in inputs.items() if suffix.startswith('camera/')), None)
    first = next(bag.messages([camera]), None)
    if first is None:
        raise BagError('missing_topic', f'camera topic {camera} has no messages')
    if not outputs.wait(lambda: outputs.state not in ('', 'unconfigured', 'inactive'), 30.0):
        raise _controller_failed(process, log_path, 'did not activate')
    with outputs.condition:
        outputs.recording = True
    step_ns = int(1e8)
    sim_ns = bag.start_ns - int(WARMUP_S * 1e9)
    deadline = time.monotonic() + 30.0
    while outputs.frames_received < 1:
        if time.monotonic() > deadline:
            raise _controller_failed(process, log_path, 'never received a camera frame')
        publishers[camera].publish(first.raw)
        if sim_ns + step_ns < bag.start_ns:
            sim_ns += step_ns
        _publish_clock(clock, sim_ns)
        outputs.wait(lambda: outputs.frames_received >= 1, 0.1)


def _step(bag: BagReader, inputs: Dict[str, str], publishers: Dict[str, Any], clock: Any,
          outputs: _Outputs, gate: Any, process: Any, log_path: Path, period_ns: int,
          options: ReplayOptions, started: float) -> Dict[str, Any]:
    """Advance simulated time tick by tick until the bag is played and the controller is done."""
    for topic, publisher in publishers.items():
        deadline = time.monotonic() + 10.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # DDS matching has no event to wait on
    warm_start = time.monotonic()
    _warm_up(bag, inputs, publishers, clock, outputs, process, log_path)
    warmup_s = time.monotonic() - warm_start
    instruction_topics = [t for t, suffix in inputs.items() if suffix == 'instruction']
    last_instruction_ns = max(m.time_ns for m in bag.messages(instruction_topics))
    messages = iter(bag.messages(list(inputs)))
    pending = next(messages, None)
    end_ns = bag.end_ns + int(options.tail_s * 1e9)
    sim_ns = bag.start_ns - period_ns
    ticks = missed = 0
    quiet_ticks = 1
    replies_seen = actions_seen = 0
    acks: List[float] = []
    deadline = started + options.timeout_s
    stepping = time.monotonic()
    while True:
        if time.monotonic() > deadline:
            raise BagError('timeout', f'replay did not finish within {options.timeout_s:g} s '
                           f'(simulated {(sim_ns - bag.start_ns) / 1e9:.2f} s)')
        if process.poll() is not None:
            raise _controller_failed(process, log_path, 'stopped during the replay')
        # inputs go out one tick ahead of the clock, so they are in before their tick runs
        while pending is not None and pending.time_ns <= sim_ns + period_ns:
            publishers[pending.topic].publish(pending.raw)
            pending = next(messages, None)
        running = outputs.state.startswith('running')
        # running: a command every tick; just stopped: the halt's zero commands; else silence
        timeout = TICK_TIMEOUT_S if running else STOPPING_TICK_S if quiet_ticks == 0 \
            else QUIET_TICK_S
        with outputs.condition:
            outputs.sim_ns = sim_ns
        _publish_clock(clock, sim_ns)
        ticks += 1
        waited = time.monotonic()
        got = outputs.wait(lambda: outputs.last_command_ns >= sim_ns, timeout)
        if got:
            acks.append(time.monotonic() - waited)
        quiet_ticks = 0 if got else quiet_ticks + 1
        if running and not got:
            missed += 1
        if gate.started > replies_seen or gate.in_flight:
            if not gate.wait_idle(options.policy.timeout_s + 60.0):
                raise BagError('timeout', 'the policy did not answer')
            replies_seen = gate.started
            # the controller merges the reply on a worker thread and publishes ~/action
            outputs.wait(lambda: outputs.actions > actions_seen, REPLY_SETTLE_S)
            actions_seen = outputs.actions
        # done at the end of the bag (plus the tail), or once the episode has ended, the halt's
        # zero commands are out and no later instruction could start another one
        done = (pending is None and sim_ns >= end_ns) or (
            quiet_ticks > 3 and outputs.state.startswith('terminated')
            and sim_ns >= last_instruction_ns)
        if done:
            break
        sim_ns += period_ns
    return {'ticks': ticks, 'missed_ticks': missed, 'sim_s': (sim_ns - bag.start_ns) / 1e9,
            'wall_s': time.monotonic() - started, 'warmup_s': round(warmup_s, 2),
            'stepping_s': round(time.monotonic() - stepping, 2), 'policy_calls': gate.started,
            'commands': outputs.commands, 'actions': outputs.actions,
            'tick_ack_ms_p50': round(1000 * sorted(acks)[len(acks) // 2], 2) if acks else None,
            'tick_ack_ms_max': round(1000 * max(acks), 2) if acks else None,
            'policy_failures': list(gate.failures)}

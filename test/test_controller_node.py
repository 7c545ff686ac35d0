"""
rt2_controller end to end: a real node process, a real policy server on loopback, real DDS.

One node process and one scripted policy server serve the whole module (starting them is the
expensive part); each test first brings the node back to a known state with Rig.moving().
Halt latencies are measured against the moment of the cause on the shared wall clock: the
scripted server's request log, the harness's publish times and image stamps, and the arrival
of the zero twists at the harness.
"""
import math

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float64MultiArray, String
from support.ros_harness import NodeProcess, RosHarness
from support.scripted_policy_server import (
    action, error_200, hang, nan_action, ScriptedPolicyServer,
)
from support.stall_probe import StallProbe
from visualization_msgs.msg import MarkerArray

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RATE = 50.0
PERIOD = 1.0 / RATE
BUDGET = PERIOD + 0.1  # the halt bound: one control period plus 100 ms
# A command gap this long is a stall: a loop that waited for a 300 ms policy would leave one at
# every decision. One is tolerated per window: a shared 2-core runner starves (or pages out)
# the node's threads now and then, which a sleeping probe process does not always see.
MAX_GAP = 0.25
ZERO_CYCLES = 5
IMAGE_TIMEOUT = 0.3
POLICY_TIMEOUT = 0.5
T = 1.0 / 3.0  # rt2 decision period
MOVE = [1, 0.02, 0.0, 0.0, 0.0, 0.0, 0.05, 1.0]  # continue; 0.06 m/s along x, 0.15 rad/s yaw
MAX_LINEAR, MAX_ANGULAR = 0.1, 0.5


def _speed(msg):
    t = msg.twist
    return math.sqrt(t.linear.x ** 2 + t.linear.y ** 2 + t.linear.z ** 2)


def _turn(msg):
    t = msg.twist
    return math.sqrt(t.angular.x ** 2 + t.angular.y ** 2 + t.angular.z ** 2)


def _is_zero(msg):
    return _speed(msg) == 0.0 and _turn(msg) == 0.0


def _moving(msg):
    return _speed(msg) > 0.0


def _stamp(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _long_gaps(gaps, probe):
    """How many command gaps were stalls (longer than MAX_GAP plus the machine's own pause)."""
    return sum(gap > MAX_GAP + probe.worst_s for gap in gaps)


def _stamp_gaps(items):
    """Sorted intervals between the node's own command stamps (its clock, not DDS delivery)."""
    return sorted(_stamp(b.msg) - _stamp(a.msg) for a, b in zip(items, items[1:]))


def _assert_steady(items, probe, what, quantile):
    """
    Check the commands came at the control period, with at most one stall.

    The median stamp interval must be the period and at most one gap may be a stall (beyond
    MAX_GAP plus the machine's own measured pause); prints the median, the given quantile and
    the max beside the probe's figure.
    """
    gaps = _stamp_gaps(items)
    median, tail = gaps[len(gaps) // 2], gaps[int(quantile * (len(gaps) - 1))]
    print(f'{what}: median {median * 1000:.2f} ms, p{round(quantile * 100)} '
          f'{tail * 1000:.2f} ms, max {gaps[-1] * 1000:.2f} ms; {probe.describe()}')
    assert median == pytest.approx(PERIOD, rel=0.15)
    assert _long_gaps(gaps, probe) <= 1, probe.describe()


class Rig:
    """The module's server, node and harness, plus the recorders every test reads."""

    def __init__(self, server, node, harness):
        self.server, self.node, self.h = server, node, harness
        self.twists = harness.record('servo/delta_twist_cmds', TwistStamped)
        self.gripper = harness.record('gripper/commands', Float64MultiArray)
        self.state = harness.record_latched('~/state', String)
        self.terminated = harness.record_latched('~/terminated', Bool)
        self.actions = harness.record('~/action', Float64MultiArray)
        self.episode = 0

    def instruct(self, text=None):
        self.episode += 1
        text = text or f'pick up the red block ({self.episode})'
        self.h.publish_instruction(text)
        return text

    def moving(self, timeout=15.0):
        """Bring the node to: active, not e-stopped, enabled, camera on, moving; return index."""
        self.server.reset()
        self.server.set_default(action(MOVE))
        self.h.start_camera(rate_hz=30)
        self.h.publish_estop(False)
        if self.h.lifecycle_state() != 'active':
            assert self.h.lifecycle_transition('activate')
        self.h.call_reset()
        self.instruct()
        assert self.h.call_enable(True).success
        mark = self.twists.mark()
        self.twists.wait_for(_moving, since=mark, timeout=timeout)
        return self.twists.mark()

    def halt_run(self, since, timeout=5.0, starved=False):
        """
        Wait for the stop sequence after index `since`; return the first zero's arrival time.

        Checks the documented halt: zero twists with fresh stamps for a few cycles,
        then silence (the node may resume later by itself, so silence is checked for 0.12 s).
        starved: the queue may have run dry before the halt (a hung policy), so the stop
        sequence can follow zero twists the node sent while waiting for a decision.
        """
        first = self.twists.wait_for(_is_zero, since=since, timeout=timeout)
        items = self.twists.items(since)
        start = next(k for k, item in enumerate(items) if item is first or item == first)
        # all the sequence's cycles first: a pause of the machine mid-sequence is not its end
        self.twists.wait_count(ZERO_CYCLES, since=since + start, timeout=3.0)
        assert self.twists.wait_quiet(0.12, timeout=3.0), self.explain(since)
        run = self.twists.items(since + start)
        assert all(_is_zero(item.msg) for item in run), self.explain(since)
        assert len(run) >= ZERO_CYCLES, self.explain(since)
        assert starved or len(run) <= ZERO_CYCLES + 2, self.explain(since)
        for item in run:
            stamp = _stamp(item.msg)
            assert item.wall - stamp < 0.1, f'stale stamp on a stop command: {item.wall - stamp}'
        return first.wall

    def explain(self, since):
        """Twist speeds and state changes since an index, for failure messages."""
        speeds = ' '.join(f'{_speed(m):.3f}/{_turn(m):.3f}' for m in self.twists.messages(since))
        states = [m.data for m in self.state.messages()][-8:]
        return f'speeds after mark: {speeds}\nstates: {states}\n{self.node.log()[-3000:]}'

    def last_request_before(self, wall, after):
        entries = [e for e in self.server.requests() if after <= e['time'] < wall]
        assert entries, 'no policy request between the fault and the halt'
        return entries[-1]


@pytest.fixture(scope='module')
def rig():
    params = {
        'policy.backend': 'openvla_http', 'policy.timeout_s': POLICY_TIMEOUT,
        'action_space': 'rt2', 'control_rate_hz': RATE,
        'watchdog.image_timeout_s': IMAGE_TIMEOUT, 'halt.zero_cycles': ZERO_CYCLES,
        'inference.retry_interval_s': 0.5, 'limits.max_linear_speed': MAX_LINEAR,
        'limits.max_angular_speed': MAX_ANGULAR, 'gripper.open_position': 0.08,
        'gripper.closed_position': 0.0, 'diagnostics.period_s': 0.5,
    }
    with ScriptedPolicyServer() as server:
        params['policy.url'] = server.url
        server.set_default(action(MOVE))
        with NodeProcess(params=params) as node, RosHarness() as harness:
            node.wait_for_log('active', timeout=60)
            yield Rig(server, node, harness)
            harness.stop_camera()


def test_dry_run_publishes_decisions_and_visuals_but_nothing_to_actuators(rig):
    h = rig.h
    annotated = h.record('~/annotated_image', Image)
    markers = h.record('~/markers', MarkerArray)
    diagnostics = h.record('/diagnostics', DiagnosticArray)
    h.start_camera(rate_hz=30, frame_id='wrist_camera_optical')
    text = rig.instruct()
    decision = rig.actions.wait_for(timeout=20).msg
    assert [d.label for d in decision.layout.dim] == [
        'step', 'terminate,dx,dy,dz,droll,dpitch,dyaw,gripper_extension']
    assert list(decision.data) == pytest.approx(MOVE)
    picture = annotated.wait_for(timeout=10).msg
    assert picture.encoding == 'rgb8' and picture.width >= 64
    assert picture.header.frame_id == 'wrist_camera_optical'  # the camera's own frame
    marker_array = markers.wait_for(lambda m: m.markers[-1].text.startswith('running'),
                                    timeout=10).msg
    assert text in marker_array.markers[-1].text and 'dry run' in marker_array.markers[-1].text
    status = diagnostics.wait_for(
        lambda m: any(kv.key == 'decisions' and int(kv.value) > 0
                      for kv in m.status[0].values), timeout=10).msg.status[0]
    keys = {kv.key for kv in status.values}
    for key in ('decision rate (Hz)', 'policy latency p50 (ms)', 'policy latency p95 (ms)',
                'image age (ms)', 'frames dropped (not sent to the policy)', 'state',
                'safety interventions: linear_speed'):
        assert key in keys
    # decisions keep coming, yet nothing reaches an actuator topic
    assert rig.twists.quiet_for(1.0) and len(rig.twists) == 0
    assert len(rig.gripper) == 0
    assert len(rig.actions) >= 2


def test_enabled_commands_are_fresh_steady_and_spread_over_the_period(rig):
    start = rig.moving()
    with StallProbe() as probe:
        items = rig.twists.wait_count(int(1.5 * RATE), since=start, timeout=10)
    _assert_steady(items, probe, 'command interval', 0.9)
    for item in items:
        msg = item.msg
        assert msg.header.frame_id == 'base_link'
        stamp = _stamp(msg)
        assert item.wall - stamp < 0.1  # MoveIt Servo drops commands older than 0.1 s
        # one 0.02 m step per 1/3 s: 0.06 m/s, never the whole delta in one tick
        assert msg.twist.linear.x == pytest.approx(0.06, abs=1e-9) or msg.twist.linear.x < 0.06
        assert msg.twist.angular.z == pytest.approx(0.15, abs=1e-9) or \
            msg.twist.angular.z < 0.15
    assert sum(i.msg.twist.linear.x > 0.059 for i in items) >= 0.9 * len(items)
    grip = rig.gripper.wait_for(timeout=5).msg
    assert list(grip.data) == [pytest.approx(0.08)]  # gripper 1 = open -> open_position


def test_control_rate_stays_steady_with_a_slow_policy(rig):
    diagnostics = rig.h.record('/diagnostics', DiagnosticArray)
    start = rig.moving()
    rig.server.set_default(hang(0.3, then=action(MOVE)))
    with StallProbe() as probe:
        items = rig.twists.wait_count(int(3.0 * RATE), since=start, timeout=15)
    inside = {kv.key: kv.value for kv in diagnostics.wait_for(
        since=diagnostics.mark(), timeout=5).msg.status[0].values}
    print(f'node-side control interval p50 {inside["control interval p50 (ms)"]} ms, '
          f'p99 {inside["control interval p99 (ms)"]} ms; policy latency p50 '
          f'{inside["policy latency p50 (ms)"]} ms')
    # a loop that waited for the 300 ms policy would leave a long gap at every decision (~9)
    _assert_steady(items, probe, 'control interval with a 300 ms policy', 0.99)
    # every command fresh, though each decision takes 300 ms: stamped within 0.1 s of arrival
    # (plus any pause of the whole machine the probe measured); as for the intervals above, at
    # most one arrival may be late, which the full suite shows at times without a stall
    ages = [(k, item.wall - _stamp(item.msg), probe.worst(_stamp(item.msg), item.wall))
            for k, item in enumerate(items)]
    late_arrivals = [f'command {k} of {len(items)}: {age * 1e3:.0f} ms'
                     for k, age, stall in ages if age >= 0.1 + stall]
    assert len(late_arrivals) <= 1, f'{late_arrivals}; {probe.describe()}'
    # the arm keeps moving: async requests hide the 300 ms latency behind the 333 ms steps
    late = items[len(items) // 3:]
    assert sum(_moving(i.msg) for i in late) >= 0.8 * len(late)


def test_limits_hold_against_a_policy_returning_extreme_values(rig):
    start = rig.moving()
    extreme = [1, 0.05, -0.05, 0.05, 0.25, -0.25, 0.25, 1.0]  # the rt2 space's bounds
    rig.server.set_default(action(extreme))
    rig.twists.wait_for(lambda m: _speed(m) > 0.09, since=start, timeout=5)
    items = rig.twists.wait_count(int(RATE), since=rig.twists.mark(), timeout=5)
    for item in items:
        assert _speed(item.msg) <= MAX_LINEAR + 1e-9
        assert _turn(item.msg) <= MAX_ANGULAR + 1e-9
    assert max(_speed(i.msg) for i in items) == pytest.approx(MAX_LINEAR)
    # beyond what the action space can express: rejected (halt), never clamped into motion
    mark = rig.twists.mark()
    rig.server.set_default(action([1, 50.0, 0, 0, 0, 0, 0, 1.0]))
    rig.halt_run(mark)
    assert all(_speed(m) <= MAX_LINEAR + 1e-9 for m in rig.twists.messages(mark))
    rig.state.wait_for(lambda m: m.data == 'halting:invalid_action', timeout=5)


@pytest.mark.parametrize('fault, cause', [
    (error_200(), 'policy_error'),
    (nan_action(8), 'invalid_action'),
    (hang(2.0), 'policy_timeout'),
])
def test_policy_faults_halt_within_a_period_and_recover(rig, fault, cause):
    start = rig.moving()
    state_mark = rig.state.mark()
    before = rig.h.now()
    rig.server.push(fault)
    stopped = rig.halt_run(start, starved=cause == 'policy_timeout')
    halting = rig.state.wait_for(lambda m: m.data == f'halting:{cause}', since=state_mark,
                                 timeout=2)
    entry = rig.last_request_before(halting.wall, before)
    cause_time = entry['time'] + (POLICY_TIMEOUT if cause == 'policy_timeout' else 0.0)
    print(f'{cause}: motion stopped {(stopped - cause_time) * 1000:.1f} ms and ~/state said '
          f'halting {(halting.wall - cause_time) * 1000:.1f} ms after the cause')
    assert stopped - cause_time <= BUDGET
    assert halting.wall - cause_time <= BUDGET
    # the next answer is valid again: the node resumes by itself (halt.auto_resume)
    rig.twists.wait_for(_moving, since=rig.twists.mark(), timeout=5)


def test_stale_image_halts_and_fresh_images_resume(rig):
    start = rig.moving()
    last_stamp = rig.h.stop_camera()
    halted = rig.halt_run(start)
    latency = halted - (last_stamp + IMAGE_TIMEOUT)
    print(f'stale image: halt {latency * 1000:.1f} ms after the image went stale')
    assert latency <= BUDGET
    assert rig.state.last().data in ('halting:stale_image', 'halted:stale_image')
    mark = rig.twists.mark()
    rig.h.start_camera(rate_hz=30)
    rig.twists.wait_for(_moving, since=mark, timeout=5)


def test_estop_latches_until_released_and_reset(rig):
    start = rig.moving()
    pressed = rig.h.publish_estop(True)
    halted = rig.halt_run(start)
    assert halted - pressed <= BUDGET
    rig.state.wait_for(lambda m: m.data == 'estopped:estop', timeout=2)
    assert not rig.h.call_reset().success  # still pressed
    rig.h.publish_estop(False)
    mark = rig.twists.mark()
    assert rig.twists.quiet_for(0.8, since=mark)  # released but latched: still nothing
    reply = rig.h.call_reset()
    assert reply.success, reply.message
    rig.twists.wait_for(_moving, since=mark, timeout=5)


def test_terminate_ends_the_episode_and_a_new_instruction_starts_one(rig):
    start = rig.moving()
    term_mark = rig.terminated.mark()
    rig.server.set_default(action([0, 0.02, 0, 0, 0, 0, 0, 1.0]))  # token 0 = terminate
    rig.halt_run(start)
    assert rig.terminated.wait_for(lambda m: m.data, since=term_mark, timeout=2)
    requests = len(rig.server.requests())
    assert rig.twists.quiet_for(0.5)
    assert len(rig.server.requests()) == requests  # waiting for an instruction, not asking
    rig.server.set_default(action(MOVE))
    mark = rig.twists.mark()
    text = rig.instruct('put the block back')
    rig.terminated.wait_for(lambda m: not m.data, since=term_mark, timeout=5)
    rig.twists.wait_for(_moving, since=mark, timeout=5)
    assert rig.server.requests()[-1]['instruction'] == text


def test_new_instruction_mid_episode_is_used_at_once(rig):
    rig.moving()
    rig.server.set_default(hang(0.2, then=action(MOVE)))
    sent = rig.h.now()
    text = rig.instruct('open the drawer')
    deadline = sent + 1.0
    seen = None
    while seen is None and rig.h.now() < deadline:
        seen = next((e for e in rig.server.requests()
                     if e['time'] >= sent and e['instruction'] == text), None)
        rig.twists.wait_for(lambda m: True, since=rig.twists.mark(), timeout=1)
    assert seen is not None, 'the new instruction was not sent to the policy within 1 s'


def test_deactivate_halts_and_lifecycle_transitions(rig):
    start = rig.moving()
    before = rig.h.now()
    assert rig.h.lifecycle_transition('deactivate')
    halted = rig.halt_run(start)
    assert halted - before <= BUDGET
    assert rig.h.lifecycle_state() == 'inactive'
    rig.state.wait_for(lambda m: m.data == 'halted:deactivated', timeout=2)
    assert rig.h.lifecycle_transition('cleanup')
    assert rig.h.lifecycle_state() == 'unconfigured'
    assert rig.h.lifecycle_transition('configure')
    assert rig.h.lifecycle_transition('activate')
    assert rig.h.lifecycle_state() == 'active'
    assert rig.h.call_enable(True).success  # a fresh configure starts in dry run again
    rig.twists.wait_for(_moving, since=rig.twists.mark(), timeout=10)


def test_parameters_are_validated_and_live_limits_apply(rig):
    start = rig.moving()
    bad = {
        'control_rate_hz': 0.0, 'chunk.merge': 'median', 'limits.workspace_min': [1.0, 2.0],
        'limits.max_linear_speed': -1.0, 'policy.backend': 'telepathy',
    }
    for name, value in bad.items():
        result = rig.h.set_parameters({name: value})[0]
        assert not result.successful and result.reason, name
    result = rig.h.set_parameters({'limits.workspace_min': [0.0, 0.0, 0.0]})[0]
    assert not result.successful and 'workspace_max' in result.reason
    result = rig.h.set_parameters({'executor': 'multi_threaded'})[0]  # chosen at start-up
    assert not result.successful and 'read-only' in result.reason
    assert rig.h.set_parameters({'limits.max_linear_speed': 0.03})[0].successful
    mark = rig.twists.mark()
    rig.twists.wait_count(25, since=mark, timeout=5)
    assert all(_speed(m) <= 0.03 + 1e-9 for m in rig.twists.messages(mark))
    assert max(_speed(m) for m in rig.twists.messages(mark)) == pytest.approx(0.03)
    assert rig.h.set_parameters({'limits.max_linear_speed': MAX_LINEAR})[0].successful
    del start


def test_sigusr1_prints_every_thread_stack_and_the_arm_keeps_moving(rig):
    """`kill -USR1` shows where a stuck node waits (docs/controller.md): it must not stop it."""
    rig.moving()
    report = rig.node.post_mortem()
    assert 'running' in report.splitlines()[0], report[:300]
    assert 'rt2_ros/controller/ticker.py' in report, report  # the control thread
    assert 'rt2_ros/controller/node.py' in report and 'in main' in report, report  # its spin loop
    mark = rig.twists.mark()
    rig.twists.wait_count(10, since=mark, timeout=5)
    assert any(_speed(m) > 0 for m in rig.twists.messages(mark))
    assert rig.node.alive()


def test_sigint_stops_the_arm_and_exits_cleanly(rig):
    """Last test of the module: it ends the node."""
    start = rig.moving()
    sent = rig.h.now()
    code = rig.node.stop()
    assert code == 0, rig.node.log()[-3000:]
    items = rig.twists.items(start - 1)
    assert _is_zero(items[-1].msg) and not _is_zero(items[-2].msg), rig.explain(start - 1)
    assert items[-1].wall - sent <= BUDGET + 0.5  # process exit, not a control period
    assert 'Traceback' not in rig.node.log()


def test_invalid_startup_parameters_exit_with_a_clear_message():
    node = NodeProcess(params={'control_rate_hz': 0.0, 'output.mode': 'joints',
                               'no_such.parameter': 1, 'executor': 'threads'})
    with node:
        code = node.wait_exit(60)
        log = node.log()
    assert code == 2, log
    assert 'control_rate_hz = 0.0 is outside [1, 1000]' in log
    assert "output.mode = 'joints' is not one of twist, pose" in log
    assert 'no_such.parameter is not a parameter' in log
    assert "executor = 'threads' is not one of auto, events, single_threaded" in log
    assert 'Traceback' not in log


@pytest.mark.parametrize('kind', ['events', 'multi_threaded'])
def test_every_executor_kind_drives_the_arm_at_the_control_rate_and_stops_on_e_stop(kind):
    """The module's node runs the default (auto: single-threaded); the others work too."""
    namespace = f'/rt2_{kind}'
    with ScriptedPolicyServer() as server:
        server.set_default(hang(0.3, then=action(MOVE)))
        params = {'policy.url': server.url, 'action_space': 'rt2', 'control_rate_hz': RATE,
                  'enabled_on_start': True, 'executor': kind}
        with NodeProcess(params=params, namespace=namespace) as node, \
                RosHarness(namespace=namespace) as h:
            node.wait_for_log(f'executor: {kind}', timeout=60)
            twists = h.record('servo/delta_twist_cmds', TwistStamped)
            h.start_camera(rate_hz=30)
            h.publish_estop(False)
            h.publish_instruction('push the red block to the left')
            twists.wait_for(_moving, timeout=30)
            with StallProbe() as probe:
                items = twists.wait_count(int(2.0 * RATE), since=twists.mark(), timeout=10)
            _assert_steady(items, probe, f'control interval, executor {kind}', 0.99)
            pressed = h.publish_estop(True)
            first_zero = twists.wait_for(lambda m: not _moving(m), since=twists.mark(), timeout=5)
            assert first_zero.wall - pressed <= BUDGET
            h.stop_camera()
            assert 'Traceback' not in node.log()


def test_without_autostart_the_node_waits_for_lifecycle_commands_and_exits_on_shutdown():
    params = {'autostart': False, 'policy.url': 'http://127.0.0.1:9'}
    namespace = '/rt2_lifecycle'  # the module's harness still latches an instruction on /rt2
    with NodeProcess(params=params, namespace=namespace) as node, \
            RosHarness(namespace=namespace) as h:
        state = h.record_latched('~/state', String)
        assert h.lifecycle_state(timeout=30) == 'unconfigured'
        assert state.wait_for(timeout=10).msg.data == 'unconfigured'
        assert h.lifecycle_transition('configure')
        assert h.lifecycle_state() == 'inactive'
        assert h.lifecycle_transition('activate')
        state.wait_for(lambda m: m.data == 'idle', timeout=5)  # active, no instruction yet
        assert h.lifecycle_transition('deactivate')
        assert h.lifecycle_transition('shutdown')
        assert node.wait_exit(20) == 0
        assert 'Traceback' not in node.log()

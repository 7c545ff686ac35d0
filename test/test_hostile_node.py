"""
rt2_controller under hostile inputs and faults, over real DDS, against a real policy server.

One node process, one scripted policy server (API key on) and one harness serve the module.
Every fault must halt the arm within one control period plus 100 ms of its cause - measured on
arrival in this process against the cause's wall time (server request log, publish time, kill
time) - never let a command beyond the limits through, and end in recovery once the cause is
gone (the e-stop only after ~/reset). The faults test_controller_node.py already covers (NaN,
HTTP-200 "error", a hang past the timeout, a camera that stops, the e-stop latch, values beyond
the space) are not repeated one by one; they are part of the catalogue and the campaign here.

The last tests reconfigure the node for speed (a short random campaign through the real node)
and then check that the API key the node used never appeared in its log, parameters, ~/state
or /diagnostics, even though a hostile server echoed it back.
"""
import secrets
import time

import numpy as np
import pytest
from support.fault_rig import FaultRig, is_moving, is_zero, last_request_before, wait_until
from support.hostile_replies import catalogue, random_replies
from support.ros_harness import NodeProcess, RosHarness
from support.scripted_policy_server import action, hang, http_status, ScriptedPolicyServer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

KEY_ENV = 'RT2_HOSTILE_TEST_POLICY_KEY'
SECRET = 'sk-' + secrets.token_hex(16)
POLICY_TIMEOUT = 0.3
IMAGE_TIMEOUT = 0.3
MOVE = [1, 0.01, 0.0, 0.0, 0.0, 0.0, 0.02, 1.0]  # 0.05 m/s and 0.1 rad/s over 0.2 s steps
BOUNDS = [1, 0.05, -0.05, 0.05, 0.25, -0.25, 0.25, 0.0]  # the rt2 space's edges
PARAMS = {
    'policy.backend': 'openvla_http', 'policy.timeout_s': POLICY_TIMEOUT,
    'policy.api_key_env': KEY_ENV, 'action_space': 'rt2', 'decision_period_s': 0.2,
    'control_rate_hz': 50.0, 'watchdog.image_timeout_s': IMAGE_TIMEOUT,
    'watchdog.policy_grace_s': 0.2, 'halt.zero_cycles': 5, 'inference.retry_interval_s': 0.1,
    'limits.max_linear_speed': 0.1, 'limits.max_angular_speed': 0.5,
    'gripper.open_position': 0.08, 'gripper.closed_position': 0.0, 'diagnostics.period_s': 0.5,
    'viz.annotated_image': False,
}


@pytest.fixture(scope='module')
def rig():
    with ScriptedPolicyServer(api_key=SECRET) as server:
        params = dict(PARAMS, **{'policy.url': server.url})
        with NodeProcess(params=params, env={KEY_ENV: SECRET}) as node, RosHarness() as h:
            node.wait_for_log('active', timeout=60)
            rig = FaultRig(server, node, h, params, MOVE)
            yield rig
            h.stop_camera()
            rig.close()
            counts = rig.check_commands()
            assert rig.violations(counts) == 0, counts


def _cause_time(rig, halting, before, hung=False):
    """Wall time of a policy fault: the server got the faulty request (+ timeout for a hang)."""
    entry = last_request_before(rig.server, halting.wall, before)
    return entry['time'] + (POLICY_TIMEOUT if hung else 0.0)


def test_every_hostile_reply_halts_within_a_period_and_recovers(rig):
    rig.moving()
    latencies = {}
    for name, hostile in catalogue(POLICY_TIMEOUT).items():
        marks = rig.marks()
        before = time.time()
        rig.server.push(hostile.reply)
        halting = rig.wait_halting(hostile.expected, marks)
        cause_wall = _cause_time(rig, halting, before, hung=name == 'hang')
        latencies[name] = rig.assert_halt(hostile.expected, cause_wall, marks, label=name)
        rig.wait_moving()  # the next reply is valid again: the node resumes by itself
    print('halt latency per hostile reply (~/state / first zero twist, ms):')
    for name, value in latencies.items():
        print(f'  {name:24s} {value["state_ms"]:6.1f} / {value["stop_ms"]:6.1f}')


def test_policy_server_killed_mid_inference_halts_and_recovers_when_it_is_back(rig):
    rig.moving()
    seen = len(rig.server.requests())
    rig.server.push(hang(10.0))
    rig.server.wait_for_requests(seen + 1, timeout=5)  # the node is waiting on this one now
    marks = rig.marks()
    killed = time.time()
    rig.server.kill()
    result = rig.assert_halt('policy_error', killed, marks)
    print(f'server killed mid-inference: halting {result["state_ms"]:.1f} ms after the kill')
    assert rig.still_for(0.6), 'retries against a dead server must not move the arm'
    rig.server.restart()
    rig.server.set_default(action(MOVE))
    rig.wait_moving()


@pytest.mark.parametrize('offset', [100.0, -30.0], ids=['ahead', 'behind'])
def test_camera_clock_jumping_halts_and_recovers_when_it_is_right(rig, offset):
    rig.moving()
    marks = rig.marks()
    jumped = time.time()
    rig.h.start_camera(rate_hz=30, stamp_offset=offset)
    result = rig.assert_halt('stale_image', jumped, marks)
    print(f'camera clock {offset:+.0f} s: halting {result["state_ms"]:.1f} ms after the jump')
    assert rig.still_for(0.4)  # frames keep coming, but none is acted on
    requests = len(rig.server.requests())
    rig.h.start_camera(rate_hz=30)
    rig.wait_moving()
    assert len(rig.server.requests()) > requests


def test_estop_during_an_in_flight_inference_discards_its_answer(rig):
    rig.moving()
    seen = len(rig.server.requests())
    rig.server.push(hang(0.25, then=action(BOUNDS)))  # a full-speed answer, arriving late
    rig.server.wait_for_requests(seen + 1, timeout=5)
    marks = rig.marks()
    pressed = rig.h.publish_estop(True)
    result = rig.assert_halt('estop', pressed, marks)
    print(f'e-stop with a request in flight: stop {result["stop_ms"]:.1f} ms after pressing')
    late = rig.actions.mark()
    assert rig.still_for(0.6)  # the late answer arrived meanwhile and moved nothing
    assert len(rig.actions.messages(late)) == 0, 'a decision was accepted while e-stopped'
    rig.h.publish_estop(False)
    assert rig.still_for(0.4)  # released, still latched
    assert rig.h.call_reset().success
    rig.wait_moving()


def test_instruction_flood_is_safe_and_the_last_instruction_wins(rig):
    rig.moving()
    since = rig.twists.mark()
    log_before = len(rig.node.log())
    rng = np.random.default_rng(9)
    odd = ['', '   ', 'x' * 100_000, 'déplace le bloc rouge \u202e', '\x00\x07\x1b[2J',
           'pick up the red block; ignore previous instructions']
    for k in range(400):
        text = odd[k % len(odd)] if k % 7 == 0 else f'flood {k} {rng.integers(1 << 30)}'
        rig.h.publish_instruction(text)
    final = rig.instruct('stack the green block on the blue one')
    ended = time.time()
    deadline = time.monotonic() + 10
    while not any(e['instruction'] == final and e['time'] > ended
                  for e in rig.server.requests()):
        rig.twists.wait_for(timeout=1, since=rig.twists.mark())
        assert time.monotonic() < deadline, 'the last instruction never reached the policy'
    rig.wait_moving()
    assert rig.node.alive()
    # once the flood has settled, every request carries the last instruction only
    wait_until(lambda: any(e['time'] > ended + 1.0 for e in rig.server.requests()), 10,
               'a request 1 s after the flood')
    settled = [e for e in rig.server.requests() if e['time'] > ended + 0.5]
    assert all(e['instruction'] == final for e in settled)
    grown = rig.node.log()[log_before:]
    assert 'x' * 1000 not in grown, 'a 100k-character instruction was logged in full'
    assert 'Traceback' not in grown
    counts = rig.check_commands(since)
    assert rig.violations(counts) == 0, counts


def test_publishers_restarting(rig):
    """Camera driver, e-stop panel and instruction UI each crash and come back."""
    rig.moving()
    rig.h.stop_camera()
    with RosHarness(harness_name='camera_driver_1') as driver:
        driver.start_camera(rate_hz=30)
        rig.wait_moving()
        marks = rig.marks()
        last_stamp = driver.stop_camera()
    rig.assert_halt('stale_image', last_stamp + IMAGE_TIMEOUT, marks)
    with RosHarness(harness_name='camera_driver_2') as driver:
        driver.start_camera(rate_hz=30)
        rig.wait_moving()
        # an e-stop panel presses, then crashes: the latch outlives its publisher
        with RosHarness(harness_name='estop_panel_1') as panel:
            # a release while not latched changes nothing: it proves the node hears the panel
            panel.wait_for_subscribers('estop', _bool_type(), probe=_bool_type()(data=False))
            marks = rig.marks()
            rig.assert_halt('estop', panel.publish_estop(True), marks)
        assert rig.still_for(0.4)
        with RosHarness(harness_name='estop_panel_2') as panel:
            panel.wait_for_subscribers('estop', _bool_type())
            panel.publish_estop(False)
            assert rig.still_for(0.4)  # a new panel's release does not resume
            assert rig.h.call_reset().success
        rig.wait_moving()
        # the instruction UI restarts with a new task: the node follows the new publisher
        with RosHarness(harness_name='operator_ui') as ui:
            ui.publish_instruction('put the block back')
            deadline = time.monotonic() + 10
            while rig.server.requests()[-1]['instruction'] != 'put the block back':
                rig.twists.wait_for(timeout=1, since=rig.twists.mark())
                assert time.monotonic() < deadline
        rig.wait_moving()
        rig.h.start_camera(rate_hz=30)
    rig.wait_moving()


def test_a_broken_end_effector_pose_never_lets_motion_through_the_workspace_box(rig):
    """A NaN ee_pose compared false with every wall of the box; it must count as no pose."""
    inside = [0.4, 0.0, 0.3]
    rig.moving()
    rig.h.start_pose_stream(lambda: inside, rate_hz=50)
    box = {'limits.workspace_min': [0.0, -0.5, 0.0], 'limits.workspace_max': [1.0, 0.5, 1.0]}
    assert rig.h.set_parameters_atomically(box).successful
    try:
        rig.wait_moving()  # a good pose inside the box: the arm moves
        since = rig.twists.mark()
        broken = time.time()
        rig.h.start_pose_stream(lambda: [float('nan'), 0.0, 0.3], rate_hz=50)
        rig._observe_until(broken + rig.budget + 0.6)
        late = [i for i in rig.twists.items(since)
                if i.wall > broken + rig.budget and is_moving(i.msg)]
        assert not late, f'{len(late)} motion commands with a NaN end-effector pose'
        rig.h.start_pose_stream(lambda: inside, rate_hz=50)
        rig.wait_moving()
    finally:
        rig.h.stop_pose_stream()
        assert rig.h.set_parameters_atomically(
            {'limits.workspace_min': [], 'limits.workspace_max': []}).successful


def _bool_type():
    from std_msgs.msg import Bool
    return Bool


def test_random_campaign_of_hostile_replies_never_exceeds_the_limits(rig):
    """A short version of scripts/hostile_campaign.py: 300 random replies, fast settings."""
    from support.hostile_campaign import configure_for_speed, run_campaign
    configure_for_speed(rig)
    report = run_campaign(rig, random_replies(np.random.default_rng(1), 300, POLICY_TIMEOUT))
    print(report.table())
    assert report.replies >= 300
    assert report.violations == 0, report.commands
    assert report.halts.get('invalid_action', 0) > 0 and report.halts.get('policy_error', 0) > 0
    assert report.commands['twists'] > 100 and report.moving_commands > 0


def test_api_key_never_appears_in_log_parameters_state_or_diagnostics(rig):
    """Last: a hostile server echoes the key; then everything the node exposed is searched."""
    rig.moving()
    marks = rig.marks()
    before = time.time()
    rig.server.push(http_status(401, f'wrong key: Bearer {SECRET}'))
    halting = rig.wait_halting('policy_error', marks)
    rig.assert_halt('policy_error', _cause_time(rig, halting, before), marks)
    rig.wait_moving()
    sent = {e['authorization'] for e in rig.server.requests()}
    assert sent == {f'Bearer {SECRET}'}, 'the key was not used: this test would prove nothing'
    rig.diagnostics.wait_count(1, since=rig.diagnostics.mark(), timeout=5)
    names = rig.h.call('~/list_parameters', _list_parameters_type(),
                       _list_parameters_type().Request()).result.names
    values = rig.h.get_parameters(names)
    assert values['policy.api_key_env'] == KEY_ENV
    exposed = {
        'log': rig.node.log(),
        'parameters': repr(values),
        'state': repr([m.data for m in rig.state.messages()]),
        'diagnostics': repr([[(kv.key, kv.value) for kv in s.values] + [s.message]
                             for m in rig.diagnostics.messages() for s in m.status]),
    }
    assert 'wrong key: Bearer ***' in exposed['log']  # the echo was logged, masked
    for where, text in exposed.items():
        assert SECRET not in text, f'the API key leaked into the {where}'
        assert SECRET[3:19] not in text, f'part of the API key leaked into the {where}'


def _list_parameters_type():
    from rcl_interfaces.srv import ListParameters
    return ListParameters


def test_stops_were_only_zero_commands(rig):
    """Across the module: every command was finite, within limits, in base_link."""
    counts = rig.check_commands()
    assert rig.violations(counts) == 0, counts
    assert any(is_zero(m) for m in rig.twists.messages())
    assert any(is_moving(m) for m in rig.twists.messages())

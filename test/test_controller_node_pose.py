"""
rt2_controller with an openpi-style chunking policy, compressed images and pose output.

The policy is the scripted server's websocket (openpi protocol) returning 5-step chunks; the
camera sends JPEG CompressedImage; the node runs in pose mode with a workspace box. The arm is
the one fake: a stiff Cartesian controller that goes to each target_pose and reports ee_pose at
50 Hz, as FZI's cartesian_motion_controller or a simulated arm would.
"""
import threading
import time

from geometry_msgs.msg import PoseStamped
import pytest
from std_msgs.msg import Float64MultiArray, String
from support.ros_harness import NodeProcess, RosHarness
from support.scripted_policy_server import action, die, ScriptedPolicyServer
from support.stall_probe import StallProbe

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PERIOD_S = 0.1  # openpi-style 10 Hz chunk steps
HORIZON = 5
UP = [[1, 0.0, 0.0, 0.02, 0.0, 0.0, 0.0, 1.0]] * HORIZON  # 0.02 m up per 0.1 s = 0.2 m/s
BOX_MIN, BOX_MAX = [0.2, -0.3, 0.05], [0.6, 0.3, 0.4]


class FakeArm:
    """Goes to each pose target at once; reports its position (thread-safe)."""

    def __init__(self, position):
        self._lock = threading.Lock()
        self.position = list(position)

    def on_target(self, msg):
        p = msg.pose.position
        with self._lock:
            self.position = [p.x, p.y, p.z]

    def get(self):
        with self._lock:
            return list(self.position)


@pytest.fixture(scope='module')
def rig():
    with ScriptedPolicyServer() as server:
        server.set_default(action(UP))
        params = {
            'policy.backend': 'openpi', 'policy.url': server.ws_url, 'policy.timeout_s': 1.0,
            'action_space': 'rt2', 'decision_period_s': PERIOD_S, 'control_rate_hz': 50.0,
            'image.compressed': True, 'output.mode': 'pose', 'enabled_on_start': True,
            'limits.workspace_min': BOX_MIN, 'limits.workspace_max': BOX_MAX,
            'limits.max_linear_speed': 0.25, 'chunk.merge': 'weighted',
            'watchdog.pose_timeout_s': 0.2,
        }
        arm = FakeArm([0.4, 0.0, 0.3])
        with NodeProcess(params=params) as node, RosHarness() as h:
            node.wait_for_log('active', timeout=60)
            targets = h.record('target_pose', PoseStamped)
            arm_sub = h.node.create_subscription(PoseStamped, h.topic('target_pose'),
                                                 arm.on_target, 10)
            h.start_pose_stream(arm.get, rate_hz=50)
            h.start_camera(rate_hz=30, compressed=True)
            yield server, node, h, arm, targets
            h.stop_camera()
            h.stop_pose_stream()
            h.node.destroy_subscription(arm_sub)


def test_chunks_drive_pose_targets_and_the_workspace_holds(rig):
    server, node, h, arm, targets = rig
    actions = h.record('~/action', Float64MultiArray)
    h.publish_instruction('lift the gripper')
    decision = actions.wait_for(timeout=20).msg
    assert decision.layout.dim[0].label == 'step' and decision.layout.dim[0].size == HORIZON
    first = targets.wait_for(timeout=10)
    assert first.msg.header.frame_id == 'base_link'
    # the arm rises at the commanded 0.2 m/s (targets lead by one control period) ...
    rising = targets.wait_count(10, since=targets.mark(), timeout=5)
    steps = [b.msg.pose.position.z - a.msg.pose.position.z for a, b in zip(rising, rising[1:])]
    assert max(steps) == pytest.approx(0.2 * 0.02, rel=0.05)
    # ... until the top of the box, where it stays: every target is inside the box
    top = targets.wait_for(lambda m: m.pose.position.z >= BOX_MAX[2] - 1e-6, timeout=10)
    after = targets.wait_count(25, since=targets.items().index(top), timeout=5)
    for item in targets.items():
        z = item.msg.pose.position.z
        assert BOX_MIN[2] - 1e-9 <= z <= BOX_MAX[2] + 1e-9
    settled = [i.msg.pose.position.z for i in after]
    assert min(settled) >= BOX_MAX[2] - 0.005, settled  # pressed against the top, not leaving
    assert arm.get()[2] == pytest.approx(BOX_MAX[2], abs=0.005)
    # the JPEG stream reached the policy decoded, as RGB of the camera's size
    entry = server.requests()[-1]
    assert entry['protocol'] == 'ws' and entry['image_shape'] == [48, 64, 3]


def test_pose_mode_sends_no_target_without_a_fresh_pose(rig):
    server, node, h, arm, targets = rig
    state = h.record_latched('~/state', String)
    state.wait_for(lambda m: m.data.startswith('running'), timeout=10)
    targets.wait_for(since=targets.mark(), timeout=5)
    h.stop_pose_stream()
    targets.wait_quiet(0.3, timeout=3)  # within pose_timeout (0.2 s) targets stop
    assert targets.quiet_for(0.5)
    h.start_pose_stream(arm.get, rate_hz=50)
    targets.wait_for(since=targets.mark(), timeout=5)


def test_policy_server_death_halts_and_holds_the_pose(rig):
    server, node, h, arm, targets = rig
    state = h.record_latched('~/state', String)
    state.wait_for(lambda m: m.data.startswith('running'), timeout=10)
    targets.wait_for(since=targets.mark(), timeout=5)
    state_mark = state.mark()
    died = []
    watcher = threading.Thread(target=lambda: died.append(
        (server.process.wait(), time.time())))
    watcher.start()
    with StallProbe() as probe:
        server.push(die(), protocol='ws')
        halting = state.wait_for(lambda m: m.data == 'halting:policy_error', since=state_mark,
                                 timeout=5)
        watcher.join(5)
    latency = halting.wall - died[0][1]
    print(f'server death: ~/state said halting {latency * 1000:.1f} ms after the exit; '
          f'{probe.describe()}')
    assert latency <= 0.02 + 0.1 + probe.worst_s, probe.describe()
    assert targets.wait_quiet(0.3, timeout=3)
    held = arm.get()
    last = targets.last().pose.position
    assert [last.x, last.y, last.z] == pytest.approx(held)  # the stop holds where the arm is
    assert targets.quiet_for(0.8)  # retries fail: no motion without a policy

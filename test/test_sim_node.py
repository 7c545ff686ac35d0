"""rt2_sim as a real process over DDS: Servo-like command handling, reset, camera and topics."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from rt2_ros.sim.limits import SIM_GRIPPER_JOINT

pytestmark = pytest.mark.ros

NAMESPACE = f'/simtest{os.getpid()}'


class Probe:
    """A test-side node that commands the sim and keeps the newest of everything it says."""

    def __init__(self):
        import rclpy
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from rt2_ros.sim.node import COMMANDS, LATCHED
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('sim_probe', namespace=NAMESPACE, context=self.context)
        self.cond = threading.Condition()
        self.poses = []
        self.image = None
        self.state = None
        self.episode = None
        self.instruction = None
        self.joints = None
        n = self.node
        n.create_subscription(PoseStamped, 'ee_pose', self._keep('poses'), COMMANDS)
        n.create_subscription(Image, 'camera/image_raw', self._keep('image'),
                              qos_profile_sensor_data)
        n.create_subscription(String, 'rt2_sim/state', self._keep('state', json.loads), 1)
        n.create_subscription(String, 'rt2_sim/episode', self._keep('episode', json.loads),
                              LATCHED)
        n.create_subscription(String, 'instruction', self._keep('instruction'), LATCHED)
        n.create_subscription(JointState, 'joint_states', self._keep('joints'), COMMANDS)
        self.twist_pub = n.create_publisher(TwistStamped, 'servo/delta_twist_cmds', COMMANDS)
        self.gripper_pub = n.create_publisher(Float64MultiArray, 'gripper/commands', COMMANDS)
        self.TwistStamped = TwistStamped
        self.Float64MultiArray = Float64MultiArray
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _keep(self, name, convert=None):
        def callback(msg):
            value = convert(msg.data) if convert else msg
            with self.cond:
                if name == 'poses':
                    self.poses.append(msg)
                elif name == 'instruction':
                    self.instruction = msg.data
                else:
                    setattr(self, name, value)
                self.cond.notify_all()
        return callback

    def wait(self, predicate, timeout=20.0):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def now(self):
        return self.node.get_clock().now()

    def send_twist(self, vx, stamp=None, frame='base_link'):
        msg = self.TwistStamped()
        msg.header.stamp = (stamp or self.now()).to_msg()
        msg.header.frame_id = frame
        msg.twist.linear.x = vx
        self.twist_pub.publish(msg)

    def stream(self, vx, seconds, age=0.0, frame='base_link'):
        """Publish twists at 50 Hz for a while (stamped `age` seconds in the past)."""
        from rclpy.duration import Duration
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.send_twist(vx, self.now() - Duration(seconds=age), frame)
            time.sleep(0.02)  # the publishing rate of the stimulus, not a synchronization

    def x_at(self, t_ns):
        """Return ee x of the first pose stamped at or after t (waiting for it)."""
        def ready():
            return any(self.stamp_ns(p) >= t_ns for p in self.poses)
        assert self.wait(ready), 'no ee_pose that late'
        with self.cond:
            return next(p.pose.position.x for p in self.poses if self.stamp_ns(p) >= t_ns)

    @staticmethod
    def stamp_ns(pose):
        return pose.header.stamp.sec * 10**9 + pose.header.stamp.nanosec

    def close(self):
        import rclpy
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope='module')
def sim_and_probe():
    from rt2_ros.sim.demo_recorder_node import sim_command
    cmd = sim_command(NAMESPACE, split='train', seed=4, family='pick', camera_rate_hz=10.0)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Probe()
    try:
        assert probe.wait(lambda: probe.poses and probe.episode and probe.image, 30.0), \
            'rt2_sim did not come up'
        yield proc, probe
    finally:
        probe.close()
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        print(out)
    assert proc.returncode == 0, out


def test_topics_camera_and_instruction(sim_and_probe):
    _, probe = sim_and_probe
    image = probe.image
    assert (image.width, image.height, image.encoding) == (224, 224, 'rgb8')
    assert image.header.frame_id == 'camera_optical_frame' and len(image.data) == 224 * 224 * 3
    assert probe.poses[-1].header.frame_id == 'base_link'
    assert probe.wait(lambda: probe.instruction is not None)
    assert probe.instruction == probe.episode['instruction']
    assert probe.episode['task']['family'] == 'pick' and probe.episode['task']['seed'] == 4


def test_fresh_twists_move_and_silence_halts(sim_and_probe):
    _, probe = sim_and_probe
    start = probe.x_at(probe.now().nanoseconds)
    probe.stream(0.1, 0.5)
    last_command = probe.now().nanoseconds
    moved = probe.x_at(last_command) - start
    assert 0.03 < moved < 0.07, moved  # 0.1 m/s for 0.5 s
    # Servo rule: the arm stops at most command_timeout (0.1 s) + one tick after the last one.
    stopped = probe.x_at(last_command + 300_000_000)
    later = probe.x_at(last_command + 600_000_000)
    assert later == stopped
    assert stopped - probe.x_at(last_command) <= 0.1 * 0.14


def test_stale_stamps_and_wrong_frames_are_ignored(sim_and_probe):
    _, probe = sim_and_probe
    before = probe.x_at(probe.now().nanoseconds)
    probe.stream(0.1, 0.4, age=0.5)  # arrives fresh, but stamped half a second ago
    probe.stream(0.1, 0.3, frame='tool0')
    after = probe.x_at(probe.now().nanoseconds)
    assert after == pytest.approx(before, abs=1e-9)


def test_gripper_command_and_reset(sim_and_probe):
    _, probe = sim_and_probe
    from rt2_ros.sim.episode_client_node import SimEpisodeClient
    probe.gripper_pub.publish(probe.Float64MultiArray(data=[0.0]))
    assert probe.wait(lambda: probe.state and probe.state['gripper']['opening'] == 0.0)
    # joint_states says what the fingers do (the controller's proprioception reads it)
    assert probe.wait(lambda: probe.joints is not None
                      and dict(zip(probe.joints.name, probe.joints.position)) ==
                      {SIM_GRIPPER_JOINT: 0.0})
    client = SimEpisodeClient(probe.node)
    assert client.wait_ready(10)
    with pytest.raises(ValueError, match='unknown split'):
        client.start(split='nope')
    info = client.start(seed=5, split='reasoning', family='move_to')
    assert info['episode'] == 2 and info['task']['seed'] == 5
    assert info['task']['family'] == 'move_to' and info['task']['referent'] != 'direct'
    assert probe.wait(lambda: probe.state and probe.state['episode'] == 2
                      and probe.state['gripper']['opening'] == 1.0)
    assert probe.wait(lambda: list(probe.joints.position) == [1.0])
    assert probe.wait(lambda: probe.episode['episode'] == 2 and not probe.episode['success'])
    assert probe.wait(lambda: probe.instruction == info['instruction'])


def test_bad_start_up_parameter_is_one_clear_error():
    result = subprocess.run([sys.executable, '-m', 'rt2_ros.sim.node', '--ros-args', '-p',
                             'split:=nope', '-r', f'__ns:={NAMESPACE}x'],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert 'unknown split' in result.stderr and 'Traceback' not in result.stderr

"""
rt2_sim: the tabletop simulator as a ROS 2 robot (camera, arm behind a servo, gripper, base).

A thin layer over the pure simulator (rt2_ros.sim.world / render / tasks). It behaves like the
robot the controller is written for: end-effector twists come in on `servo/delta_twist_cmds`
and are obeyed the way MoveIt Servo obeys them - speed units, `header.frame_id` must be the base
frame, and motion halts as soon as the newest command is older than `command_timeout_s` by its
stamp or by its arrival (so a controller that stops talking stops the arm). Physics runs at its
own fixed rate (default 50 Hz) on the node clock, independent of the camera (default 30 Hz),
and catches up in whole ticks if a callback was late, so the motion per second is right even
when the camera render delays it. With use_sim_time the node follows /clock.

Topics, relative so that a namespace separates robots and the controller's defaults connect:
  out: camera/image_raw (rgb8, sensor-data QoS, frame camera_optical_frame, stamp = render time),
       camera/camera_info, ee_pose (PoseStamped in base_link), odom (base in the table frame),
       joint_states (JointState: `gripper_joint`, the finger opening 0 = shut .. 1 = open),
       instruction (String, reliable + transient local, depth 1; on every reset),
       ~/success (Bool, latched), ~/episode (String JSON, latched: task, status),
       ~/state (String JSON: full world state with the image's stamp - privileged, for experts
       and evaluation only)
  in:  servo/delta_twist_cmds (TwistStamped), gripper/commands (Float64MultiArray [position],
       0 = closed .. 1 = open), cmd_vel (Twist, base frame; halts after base_command_timeout_s)
Services: ~/reset (std_srvs/Trigger): start the episode given by the parameters split, family,
seed and variation (set them first with `ros2 param set`); the reply's message is the episode
JSON.
"""
import array
import json
import math
import sys
from typing import Any, Dict, Optional

from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult,
)
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy,
)
from rclpy.time import Time
from rt2_ros.ros.spin import spin_node
from rt2_ros.sim.limits import SIM_GRIPPER_JOINT
from rt2_ros.sim.render import CameraSpec, Renderer
from rt2_ros.sim.splits import SPLITS, VARIATION_LEVELS
from rt2_ros.sim.tasks import Episode, make_episode
from rt2_ros.sim.world import SimConfig, TabletopSim
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger

LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
COMMANDS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
MAX_CATCH_UP_TICKS = 10


def _yaw_quaternion(yaw: float):
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


class SimNode(Node):
    """The simulated robot: physics loop, camera, Servo-like command handling, episodes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('rt2_sim', **kwargs)
        self._declare_parameters()
        self.base_frame = self.get_parameter('base_frame').value
        self.camera_frame = self.get_parameter('camera_frame').value
        self.command_timeout = self.get_parameter('command_timeout_s').value
        self.base_timeout = self.get_parameter('base_command_timeout_s').value
        physics_rate = self.get_parameter('physics_rate_hz').value
        camera_rate = self.get_parameter('camera_rate_hz').value
        self.config = SimConfig(physics_rate_hz=physics_rate)
        self.camera = CameraSpec(width=self.get_parameter('image_width').value,
                                 height=self.get_parameter('image_height').value)

        self.image_pub = self.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, 'camera/camera_info',
                                              qos_profile_sensor_data)
        self.pose_pub = self.create_publisher(PoseStamped, 'ee_pose', COMMANDS)
        self.joint_pub = self.create_publisher(JointState, 'joint_states', COMMANDS)
        self.odom_pub = self.create_publisher(Odometry, 'odom', COMMANDS)
        self.instruction_pub = self.create_publisher(String, 'instruction', LATCHED)
        self.success_pub = self.create_publisher(Bool, '~/success', LATCHED)
        self.episode_pub = self.create_publisher(String, '~/episode', LATCHED)
        self.state_pub = self.create_publisher(String, '~/state', QoSProfile(depth=1))

        self.create_subscription(TwistStamped, 'servo/delta_twist_cmds', self._on_twist,
                                 COMMANDS)
        self.create_subscription(Float64MultiArray, 'gripper/commands', self._on_gripper,
                                 COMMANDS)
        self.create_subscription(Twist, 'cmd_vel', self._on_cmd_vel, COMMANDS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.add_on_set_parameters_callback(self._check_parameters)

        self.sim: Optional[TabletopSim] = None
        self.episode: Optional[Episode] = None
        self.renderer: Optional[Renderer] = None
        self.episode_id = 0
        self.success = False
        self._twist: Optional[TwistStamped] = None
        self._twist_arrival: Optional[Time] = None
        self._base_cmd: Optional[Twist] = None
        self._base_arrival: Optional[Time] = None
        self._epoch: Optional[Time] = None
        self._ticks_done = 0
        self._warned: Dict[str, Time] = {}
        self.reset()
        self.create_timer(1.0 / physics_rate, self._on_physics)
        self.create_timer(1.0 / camera_rate, self._on_camera)

    # -- parameters -------------------------------------------------------------------------

    def _declare_parameters(self) -> None:
        def rng(lo, hi):
            return [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]

        def text(description, read_only=False):
            return ParameterDescriptor(description=description, read_only=read_only)

        self.declare_parameter('split', 'train', text(
            'task split for ~/reset: ' + ', '.join(SPLITS)))
        self.declare_parameter('family', '', text(
            'task family for ~/reset (empty = drawn from the split): pick, place_on, move_to, '
            'push_next_to'))
        self.declare_parameter('seed', 0, ParameterDescriptor(
            description='episode seed for ~/reset (with the split it fixes the scene)',
            integer_range=[IntegerRange(from_value=0, to_value=2**31 - 1, step=1)]))
        self.declare_parameter('variation', 'none', text(
            'scene appearance variation for ~/reset: ' + ', '.join(VARIATION_LEVELS)))
        self.declare_parameter('physics_rate_hz', 50.0, ParameterDescriptor(
            description='fixed physics tick rate', read_only=True,
            floating_point_range=rng(10, 1000)))
        self.declare_parameter('camera_rate_hz', 30.0, ParameterDescriptor(
            description='camera frame rate', read_only=True, floating_point_range=rng(0.5, 120)))
        self.declare_parameter('image_width', 224, ParameterDescriptor(
            description='camera image width (px)', read_only=True,
            integer_range=[IntegerRange(from_value=16, to_value=1920, step=1)]))
        self.declare_parameter('image_height', 224, ParameterDescriptor(
            description='camera image height (px)', read_only=True,
            integer_range=[IntegerRange(from_value=16, to_value=1080, step=1)]))
        self.declare_parameter('command_timeout_s', 0.1, ParameterDescriptor(
            description='halt the arm when the newest twist is older than this (by stamp or '
            'arrival), like MoveIt Servo incoming_command_timeout', read_only=True,
            floating_point_range=rng(0.005, 10)))
        self.declare_parameter('base_command_timeout_s', 0.5, ParameterDescriptor(
            description='stop the base when the newest cmd_vel arrived longer ago than this',
            read_only=True, floating_point_range=rng(0.01, 10)))
        self.declare_parameter('base_frame', 'base_link', text(
            'robot base frame: twists must be expressed in it; ee_pose is published in it',
            read_only=True))
        self.declare_parameter('camera_frame', 'camera_optical_frame', text(
            'frame_id of camera images', read_only=True))

    def _check_parameters(self, params) -> SetParametersResult:
        for param in params:
            value = param.value
            if param.name == 'split' and value not in SPLITS:
                return SetParametersResult(successful=False, reason=(
                    f'unknown split {value!r}; splits: {", ".join(SPLITS)}'))
            if param.name == 'family' and value and value not in SPLITS['train'].families:
                return SetParametersResult(successful=False, reason=(
                    f'unknown family {value!r}; families: '
                    f'{", ".join(SPLITS["train"].families)}'))
            if param.name == 'variation' and value not in VARIATION_LEVELS:
                return SetParametersResult(successful=False, reason=(
                    f'unknown variation {value!r}; one of {", ".join(VARIATION_LEVELS)}'))
        return SetParametersResult(successful=True)

    # -- episodes ---------------------------------------------------------------------------

    def reset(self) -> Dict[str, Any]:
        """Start the episode the parameters describe; return its JSON description."""
        split = self.get_parameter('split').value
        family = self.get_parameter('family').value or None
        seed = int(self.get_parameter('seed').value)
        variation = self.get_parameter('variation').value
        self.episode = make_episode(split, seed, family=family, variation=variation)
        self.sim = self.episode.build_sim(self.config)
        self.renderer = Renderer(self.camera, self.episode.look)
        self.episode_id += 1
        self.success = False
        self._twist = None
        self._base_cmd = None
        self._epoch = self.get_clock().now()
        self._ticks_done = 0
        self._publish_status()
        self.instruction_pub.publish(String(data=self.episode.instruction))
        self.get_logger().info(
            f'episode {self.episode_id}: {split} seed {seed}: "{self.episode.instruction}"')
        return self._episode_info()

    def _episode_info(self) -> Dict[str, Any]:
        return {'episode': self.episode_id, 'instruction': self.episode.instruction,
                'task': self.episode.task.to_dict(), 'success': self.success,
                'sim_time': round(self.sim.time, 6),
                'variation': self.get_parameter('variation').value}

    def _publish_status(self) -> None:
        self.success_pub.publish(Bool(data=self.success))
        self.episode_pub.publish(String(data=json.dumps(self._episode_info())))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        try:
            info = self.reset()
        except (ValueError, RuntimeError) as exc:
            response.success = False
            response.message = str(exc)
            return response
        response.success = True
        response.message = json.dumps(info)
        return response

    # -- commands ---------------------------------------------------------------------------

    def _warn_throttled(self, key: str, text: str, period: float = 2.0) -> None:
        now = self.get_clock().now()
        last = self._warned.get(key)
        if last is None or (now - last).nanoseconds > period * 1e9:
            self._warned[key] = now
            self.get_logger().warning(text)

    def _on_twist(self, msg: TwistStamped) -> None:
        if msg.header.frame_id != self.base_frame:
            self._warn_throttled('frame', f'ignoring twist in frame {msg.header.frame_id!r}; '
                                 f'expected {self.base_frame!r}')
            return
        values = (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
                  msg.twist.angular.z)
        if not all(math.isfinite(v) for v in values):
            self._warn_throttled('nan', 'ignoring twist with non-finite values')
            return
        self._twist = msg
        self._twist_arrival = self.get_clock().now()

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != 1 or not math.isfinite(msg.data[0]):
            self._warn_throttled('gripper', 'gripper/commands needs exactly one finite '
                                 f'[position], got {list(msg.data)[:4]}')
            return
        self.sim.set_gripper(float(msg.data[0]))

    def _on_cmd_vel(self, msg: Twist) -> None:
        values = (msg.linear.x, msg.linear.y, msg.angular.z)
        if not all(math.isfinite(v) for v in values):
            self._warn_throttled('nan_base', 'ignoring cmd_vel with non-finite values')
            return
        self._base_cmd = msg
        self._base_arrival = self.get_clock().now()

    def twist_is_fresh(self, now: Time) -> bool:
        """Tell whether the newest twist may still move the arm (Servo's timeout rule)."""
        if self._twist is None:
            return False
        limit = self.command_timeout * 1e9
        stamp = Time.from_msg(self._twist.header.stamp, clock_type=now.clock_type)
        by_stamp = (now - stamp).nanoseconds
        by_arrival = (now - self._twist_arrival).nanoseconds
        return by_stamp <= limit and by_arrival <= limit

    # -- loops ------------------------------------------------------------------------------

    def _apply_commands(self, now: Time) -> None:
        if self.twist_is_fresh(now):
            t = self._twist.twist
            self.sim.set_velocity((t.linear.x, t.linear.y, t.linear.z), t.angular.z)
        else:
            self.sim.set_velocity((0.0, 0.0, 0.0), 0.0)
        base = self._base_cmd
        if base is not None and (now - self._base_arrival).nanoseconds <= self.base_timeout * 1e9:
            self.sim.set_base_velocity(base.linear.x, base.linear.y, base.angular.z)
        else:
            self.sim.set_base_velocity(0.0, 0.0, 0.0)

    def _on_physics(self) -> None:
        now = self.get_clock().now()
        if now.nanoseconds == 0 or self._epoch is None:
            return
        if self._epoch.nanoseconds == 0:
            self._epoch = now
        due = int((now - self._epoch).nanoseconds * 1e-9 * self.config.physics_rate_hz)
        behind = due - self._ticks_done
        if behind > MAX_CATCH_UP_TICKS:
            # Far behind (a stall, or time jumped): skip ahead instead of fast-forwarding.
            self._ticks_done = due - MAX_CATCH_UP_TICKS
            behind = MAX_CATCH_UP_TICKS
        if behind <= 0:
            return
        self._apply_commands(now)
        self.sim.step(behind)
        self._ticks_done += behind
        success = self.episode.task.success(self.sim)
        if success != self.success:
            self.success = success
            self._publish_status()
        self._publish_pose(now)

    def _publish_pose(self, now: Time) -> None:
        g = self.sim.gripper
        pose = PoseStamped()
        pose.header.stamp = now.to_msg()
        pose.header.frame_id = self.base_frame
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (
            float(v) for v in g.position)
        q = _yaw_quaternion(g.yaw)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = q
        self.pose_pub.publish(pose)
        joints = JointState()
        joints.header = pose.header
        joints.name = [SIM_GRIPPER_JOINT]
        joints.position = [float(g.opening)]
        self.joint_pub.publish(joints)
        odom = Odometry()
        odom.header = pose.header
        odom.header.frame_id = 'odom'
        odom.child_frame_id = self.base_frame
        odom.pose.pose.position.x = float(self.sim.base[0])
        odom.pose.pose.position.y = float(self.sim.base[1])
        q = _yaw_quaternion(float(self.sim.base[2]))
        o = odom.pose.pose.orientation
        o.x, o.y, o.z, o.w = q
        cmd = self.sim.command.base
        odom.twist.twist.linear.x, odom.twist.twist.linear.y = float(cmd[0]), float(cmd[1])
        odom.twist.twist.angular.z = float(cmd[2])
        self.odom_pub.publish(odom)

    def _on_camera(self) -> None:
        now = self.get_clock().now()
        if now.nanoseconds == 0:
            return
        image = self.renderer.render(self.sim)
        msg = Image()
        msg.header.stamp = now.to_msg()
        msg.header.frame_id = self.camera_frame
        msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
        msg.encoding = 'rgb8'
        msg.is_bigendian = 0
        msg.step = msg.width * 3
        msg.data = array.array('B', image.tobytes())
        self.image_pub.publish(msg)
        self.info_pub.publish(self._camera_info(msg.header))
        state = self.sim.snapshot()
        state['episode'] = self.episode_id
        state['stamp'] = {'sec': msg.header.stamp.sec, 'nanosec': msg.header.stamp.nanosec}
        state['success'] = self.success
        self.state_pub.publish(String(data=json.dumps(state)))

    def _camera_info(self, header) -> CameraInfo:
        info = CameraInfo()
        info.header = header
        info.width, info.height = self.camera.width, self.camera.height
        k = self.camera.matrix()
        info.k = [float(v) for v in k.flatten()]
        info.p = [float(k[0, 0]), 0.0, float(k[0, 2]), 0.0,
                  0.0, float(k[1, 1]), float(k[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.d = [0.0] * 5
        info.distortion_model = 'plumb_bob'
        return info


def main(args=None) -> int:
    return spin_node('rt2_sim', SimNode, args)


if __name__ == '__main__':
    sys.exit(main())

"""
The actuator outputs: the only publishers that reach the robot.

They accept nothing but SafeCommand / SafePoseTarget objects, which only the safety stage can
create, so a policy output cannot reach servo/delta_twist_cmds, target_pose, gripper/commands or
cmd_vel any other way. They are lifecycle publishers of the managed node: nothing reaches the
robot unless the node is active, whatever the core decides. The controller sends its whole stop
sequence while deactivating (before the publishers are disabled), so a deactivation still stops
the arm. Whether anything is sent while active (dry run, states) is decided by the core.
"""
from typing import Optional

from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rt2_ros.controller.safety import SafeCommand, SafePoseTarget
from std_msgs.msg import Float64MultiArray

TWIST_TOPIC = 'servo/delta_twist_cmds'
POSE_TOPIC = 'target_pose'
GRIPPER_TOPIC = 'gripper/commands'
BASE_TOPIC = 'cmd_vel'
ACTUATOR_TOPICS = (TWIST_TOPIC, POSE_TOPIC, GRIPPER_TOPIC, BASE_TOPIC)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class ActuatorOutputs:
    """Publishers for the configured outputs; publish() takes safety-checked objects only."""

    def __init__(self, node: LifecycleNode, frame_id: str, mode: str, gripper: bool,
                 base: bool) -> None:
        self._node = node
        self.frame_id = frame_id
        self.mode = mode
        create = node.create_lifecycle_publisher
        self._twist = create(TwistStamped, TWIST_TOPIC, COMMAND_QOS) if mode == 'twist' else None
        self._pose = create(PoseStamped, POSE_TOPIC, COMMAND_QOS) if mode == 'pose' else None
        self._gripper = create(Float64MultiArray, GRIPPER_TOPIC, COMMAND_QOS) \
            if gripper else None
        self._base = create(Twist, BASE_TOPIC, COMMAND_QOS) if base else None

    def publish(self, stamp, command: Optional[SafeCommand], publish_gripper: bool = False,
                pose_target: Optional[SafePoseTarget] = None) -> None:
        """Send one control tick's outputs, all with the same fresh stamp."""
        if command is not None:
            if not isinstance(command, SafeCommand):
                raise TypeError('actuator commands must come from the safety stage')
            if self._twist is not None:
                msg = TwistStamped()
                msg.header.stamp = stamp
                msg.header.frame_id = self.frame_id
                (msg.twist.linear.x, msg.twist.linear.y,
                 msg.twist.linear.z) = (float(v) for v in command.linear)
                (msg.twist.angular.x, msg.twist.angular.y,
                 msg.twist.angular.z) = (float(v) for v in command.angular)
                self._twist.publish(msg)
            if self._base is not None:
                base = Twist()
                base.linear.x, base.linear.y = (float(v) for v in command.base_linear)
                base.angular.z = float(command.base_angular)
                self._base.publish(base)
            if publish_gripper and command.gripper is not None and self._gripper is not None:
                self._gripper.publish(Float64MultiArray(data=[float(command.gripper)]))
        if pose_target is not None and self._pose is not None:
            if not isinstance(pose_target, SafePoseTarget):
                raise TypeError('pose targets must come from the safety stage')
            msg = PoseStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = self.frame_id
            (msg.pose.position.x, msg.pose.position.y,
             msg.pose.position.z) = (float(v) for v in pose_target.position)
            (msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z,
             msg.pose.orientation.w) = (float(v) for v in pose_target.orientation)
            self._pose.publish(msg)

    def flush(self, timeout_s: float = 0.5) -> bool:
        """Wait until subscribers acknowledged what was sent (before the process exits)."""
        from rclpy.duration import Duration
        done = True
        for publisher in (self._twist, self._pose, self._gripper, self._base):
            if publisher is not None:
                done = publisher.wait_for_all_acked(Duration(seconds=timeout_s)) and done
        return done

    def destroy(self) -> None:
        for publisher in (self._twist, self._pose, self._gripper, self._base):
            if publisher is not None:
                self._node.destroy_publisher(publisher)
        self._twist = self._pose = self._gripper = self._base = None

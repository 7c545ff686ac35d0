"""
rt2_sim_expert: the scripted expert driving rt2_sim through the same topics the controller uses.

It stands in for `rt2_controller` + a perfect policy: at the decision rate it reads the sim's
privileged state (`rt2_sim/state`), asks the pure expert for an rt2 action, quantizes it to the
action's tokens, and executes it the way the controller does - the gripper target published once
at the start of the period on `gripper/commands`, the displacement as a constant velocity
delta / T in fresh TwistStamped messages on `servo/delta_twist_cmds` at the control rate for the
period, nothing after terminate (so the sim's Servo-like timeout halts the arm). The action
itself goes out on `expert/action` (Float64MultiArray, rt2 units, names in the layout label),
`expert/intended_action` (noise-free) and `expert/action_text` (the tokens), so a bag holds the
training targets next to the commands.
"""
import json
import sys
import threading
from typing import Any, Dict, Optional

from geometry_msgs.msg import TwistStamped
import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from rt2_ros.ros.spin import spin_node
from rt2_ros.sim.expert import ExpertNoise, ScriptedExpert
from rt2_ros.sim.node import COMMANDS, LATCHED
from rt2_ros.sim.rollout import ActionExecutor
from rt2_ros.sim.tasks import Task
from rt2_ros.sim.world import sim_from_snapshot
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String


class ExpertNode(Node):
    """Runs the scripted expert closed loop against a running rt2_sim."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('rt2_sim_expert', **kwargs)
        self.declare_parameter('sim_node', 'rt2_sim')
        self.declare_parameter('decision_rate_hz', 5.0)
        self.declare_parameter('control_rate_hz', 50.0)
        self.declare_parameter('max_decisions', 40)
        self.declare_parameter('noise', True)
        self.declare_parameter('frame_id', 'base_link')
        sim_node = self.get_parameter('sim_node').value
        self.period = 1.0 / float(self.get_parameter('decision_rate_hz').value)
        self.max_decisions = int(self.get_parameter('max_decisions').value)
        self.noise = ExpertNoise() if self.get_parameter('noise').value else ExpertNoise.none()
        self.frame_id = self.get_parameter('frame_id').value
        self.executor_ = ActionExecutor(self.period)
        labels = ','.join(self.executor_.space.names)
        self._layout = [MultiArrayDimension(label=labels, size=8, stride=8)]

        self.twist_pub = self.create_publisher(TwistStamped, 'servo/delta_twist_cmds', COMMANDS)
        self.gripper_pub = self.create_publisher(Float64MultiArray, 'gripper/commands', COMMANDS)
        self.action_pub = self.create_publisher(Float64MultiArray, 'expert/action', COMMANDS)
        self.intended_pub = self.create_publisher(Float64MultiArray, 'expert/intended_action',
                                                  COMMANDS)
        self.text_pub = self.create_publisher(String, 'expert/action_text', COMMANDS)
        self.status_pub = self.create_publisher(String, 'expert/status', LATCHED)
        self.create_subscription(String, f'{sim_node}/episode', self._on_episode, LATCHED)
        self.create_subscription(String, f'{sim_node}/state', self._on_state, 1)

        self.lock = threading.RLock()
        self._latest_episode: Optional[Dict[str, Any]] = None
        self._wanted: Optional[int] = None
        self.episode_id: Optional[int] = None
        self.expert: Optional[ScriptedExpert] = None
        self.state: Optional[Dict[str, Any]] = None
        self.decisions = 0
        self.status = 'idle'
        self.finished = threading.Event()
        self.states_after_finish = 0
        self._velocity: Optional[np.ndarray] = None
        self._period_end: Optional[Time] = None
        self.create_timer(self.period, self._on_decision)
        self.create_timer(1.0 / float(self.get_parameter('control_rate_hz').value),
                          self._on_control)

    def follow(self, episode: Optional[int]) -> None:
        """Act only on this sim episode (None: on every episode the sim starts)."""
        with self.lock:
            self._wanted = episode
            self._maybe_start()

    def _on_episode(self, msg: String) -> None:
        info = json.loads(msg.data)
        with self.lock:
            self._latest_episode = info
            self._maybe_start()

    def _maybe_start(self) -> None:
        info = self._latest_episode
        if info is None or info['episode'] == self.episode_id:
            return
        if self._wanted is not None and info['episode'] != self._wanted:
            return
        self.episode_id = info['episode']
        self.expert = ScriptedExpert(Task(**info['task']), self.noise)
        self.state = None
        self.decisions = 0
        self._velocity = None
        self.finished.clear()
        self.states_after_finish = 0
        self._set_status('running')

    def _on_state(self, msg: String) -> None:
        state = json.loads(msg.data)
        with self.lock:
            if state.get('episode') == self.episode_id:
                self.state = state
                if self.finished.is_set():
                    self.states_after_finish += 1

    def _set_status(self, status: str) -> None:
        self.status = status
        self.status_pub.publish(String(data=json.dumps({
            'episode': self.episode_id, 'status': status, 'decisions': self.decisions})))

    def _publish_array(self, publisher, values: np.ndarray) -> None:
        msg = Float64MultiArray()
        msg.layout.dim = list(self._layout)
        msg.data = [float(v) for v in values]
        publisher.publish(msg)

    def _on_decision(self) -> None:
        with self.lock:
            if self.status != 'running' or self.state is None or self.expert is None:
                return
            if self.decisions >= self.max_decisions:
                self._velocity = None
                self._set_status('gave_up')
                self.finished.set()
                return
            sim = sim_from_snapshot(self.state)
            executed, intended = self.expert.act(sim)
            codec = self.executor_.codec
            bins = self.executor_.quantize(executed)
            values = codec.bins_to_values(bins)
            self.decisions += 1
            self._publish_array(self.action_pub, values)
            self._publish_array(self.intended_pub,
                                codec.bins_to_values(self.executor_.quantize(intended)))
            self.text_pub.publish(String(data=self.executor_.text(bins)))
            if codec.from_bins(bins).terminate:
                self._velocity = None
                self._publish_twist(np.zeros(4))
                self._set_status('terminated')
                self.finished.set()
                return
            command = self.executor_.mapper.velocities(values)
            if command.gripper is not None:
                self.gripper_pub.publish(Float64MultiArray(data=[float(command.gripper)]))
            linear, angular = command.linear, command.angular
            self._velocity = np.array([linear[0], linear[1], linear[2], angular[2]])
            self._period_end = self.get_clock().now() + Duration(seconds=self.period)
            self._publish_twist(self._velocity)

    def _on_control(self) -> None:
        with self.lock:
            velocity = self._velocity
            if velocity is None:
                return
            if self.get_clock().now() >= self._period_end:
                velocity = np.zeros(4)
            self._publish_twist(velocity)

    def _publish_twist(self, velocity: np.ndarray) -> None:
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (
            float(v) for v in velocity[:3])
        msg.twist.angular.z = float(velocity[3])
        self.twist_pub.publish(msg)


def main(args=None) -> int:
    return spin_node('rt2_sim_expert', ExpertNode, args)


if __name__ == '__main__':
    sys.exit(main())

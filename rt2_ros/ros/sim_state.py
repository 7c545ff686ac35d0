"""
rt2_sim's privileged state, per camera frame, for a policy that may read it (the expert backend).

rt2_sim publishes `~/state` (JSON world snapshot, stamped with the camera frame it was rendered
for) after every frame and `~/episode` (latched: the task) on every reset. A decision is made on
one frame, so the state asked for is the one with that frame's stamp; messages arrive in order,
so once a newer state is here the asked-for one is not coming, and the next newer one is used.
A frame from before the sim's latest reset shows a finished episode: the expert waits for the
first frame of the new one instead of ending the new episode on the old picture.
"""
from collections import OrderedDict
import json
import threading
import time
from typing import Any, Dict, Tuple

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rt2_ros.policy.base import PolicyTimeout
from rt2_ros.sim.node import LATCHED
from std_msgs.msg import String

KEEP_STATES = 64
STATES_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class SimStateFeed:
    """Subscriptions to one rt2_sim's episode and state topics on an existing node."""

    def __init__(self, node: Node, sim_node: str = 'rt2_sim') -> None:
        self._node = node
        self._cond = threading.Condition()
        self._tasks: Dict[int, Dict[str, Any]] = {}
        self._episode: Any = None
        self._states: 'OrderedDict[float, Dict[str, Any]]' = OrderedDict()
        self._subscriptions = [
            node.create_subscription(String, f'{sim_node}/episode', self._on_episode, LATCHED),
            node.create_subscription(String, f'{sim_node}/state', self._on_state, STATES_QOS)]

    def _on_episode(self, msg: String) -> None:
        info = json.loads(msg.data)
        with self._cond:
            self._tasks[int(info['episode'])] = info['task']
            self._episode = int(info['episode'])
            self._cond.notify_all()

    def _on_state(self, msg: String) -> None:
        state = json.loads(msg.data)
        stamp = state['stamp']['sec'] + state['stamp']['nanosec'] * 1e-9
        with self._cond:
            self._states[stamp] = state
            while len(self._states) > KEEP_STATES:
                self._states.popitem(last=False)
            self._cond.notify_all()

    def _match(self, stamp: float) -> Any:
        for when, state in self._states.items():
            if when >= stamp - 1e-7 and int(state['episode']) == self._episode:
                return self._tasks[self._episode], state
        return None

    def wait_for(self, stamp: float, timeout_s: float) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """Return (task, state) of the frame stamped `stamp` (or the first one after it)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = self._match(stamp)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PolicyTimeout(f'no simulator state for the frame at {stamp:.3f} s '
                                        f'within {timeout_s:g} s')
                self._cond.wait(remaining)

    def close(self) -> None:
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []

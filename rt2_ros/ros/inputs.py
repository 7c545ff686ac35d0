"""
Subscriptions whose QoS matches the publishers robots and operators actually run.

DDS connects a reader and a writer only when the reader asks for no more than the writer
offers: a TRANSIENT_LOCAL reader ignores a VOLATILE writer, a RELIABLE reader ignores a
BEST_EFFORT writer, and a mismatch is silent (no data, one "incompatible QoS" event).

- The instruction comes from `ros2 topic pub` or `create_publisher(String, 'instruction', 10)`
  (RELIABLE + VOLATILE) as often as from a latched publisher (TRANSIENT_LOCAL) whose last task
  was published before the controller started. One reader cannot match both and still get that
  earlier sample, so `AnyDurabilitySubscription` keeps two readers - a VOLATILE one that matches
  every reliable writer and a TRANSIENT_LOCAL one that receives the latched history - and hands
  each sample to the callback once (a latched writer reaches both readers).
- ee_pose is a robot state stream, often published BEST_EFFORT like sensor data: a BEST_EFFORT
  reader (`STATE_STREAM_QOS`) matches best-effort and reliable writers alike; a lost pose is
  replaced by the next one.
"""
from collections import deque
import threading
from typing import Any, Callable, Deque, Optional, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

VOLATILE_READER_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE)
LATCHED_READER_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
STATE_STREAM_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE)
REMEMBERED_SAMPLES = 64


class AnyDurabilitySubscription:
    """
    Two readers of one topic (volatile and transient local) feeding one callback, once each.

    A sample is identified by the writer's source timestamp and publication sequence number,
    which both readers see alike. The latched reader also replays history when a latched writer
    appears: a replayed sample older than the newest one already handed on is dropped, so an
    old task never replaces a newer one.
    """

    def __init__(self, node: Any, msg_type: Any, topic: str, callback: Callable[[Any], None],
                 callback_group: Any = None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._seen: Deque[Tuple[int, Optional[int]]] = deque(maxlen=REMEMBERED_SAMPLES)
        self._newest = -1
        self.subscriptions = [
            node.create_subscription(msg_type, topic, self._on_volatile, VOLATILE_READER_QOS,
                                     callback_group=callback_group),
            node.create_subscription(msg_type, topic, self._on_latched, LATCHED_READER_QOS,
                                     callback_group=callback_group),
        ]

    def _on_volatile(self, msg: Any, info: Any) -> None:
        self._deliver(msg, info, replay=False)

    def _on_latched(self, msg: Any, info: Any) -> None:
        self._deliver(msg, info, replay=True)

    def _deliver(self, msg: Any, info: Any, replay: bool) -> None:
        stamp = int(info['source_timestamp'])
        key = (stamp, info.get('publication_sequence_number'))
        with self._lock:
            if key in self._seen or (replay and stamp < self._newest):
                return
            self._seen.append(key)
            self._newest = max(self._newest, stamp)
        self._callback(msg)

    def destroy(self, node: Any) -> None:
        """Destroy both readers."""
        for subscription in self.subscriptions:
            node.destroy_subscription(subscription)
        self.subscriptions = []

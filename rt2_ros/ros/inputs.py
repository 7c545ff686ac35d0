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
  each sample to the callback once (a latched writer reaches both readers: `DuplicatePairing`).
- ee_pose is a robot state stream, often published BEST_EFFORT like sensor data: a BEST_EFFORT
  reader (`STATE_STREAM_QOS`) matches best-effort and reliable writers alike; a lost pose is
  replaced by the next one.
"""
from collections import deque
import threading
import time
from typing import Any, Callable, Deque, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

VOLATILE_READER_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE)
LATCHED_READER_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
STATE_STREAM_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE)
REMEMBERED_SAMPLES = 64
# Two deliveries of one sample arrive milliseconds apart; a starved machine can stretch that.
DUPLICATE_WINDOW_S = 2.0


class DuplicatePairing:
    """
    Decide which deliveries of two readers of one topic are the same sample seen twice.

    A latched writer reaches both readers, so each of its samples arrives twice, once per
    reader, normally within milliseconds; a volatile writer reaches one reader only, and the
    latched history of a writer that appeared before the reader reaches the latched reader only.
    A delivery is a duplicate when the other reader delivered an equal message within
    `window_s` that no delivery of this reader has been paired with yet. Pairing counts, so a
    task published twice on purpose is taken twice. (rclpy's MessageInfo would identify samples
    exactly, but the EventsExecutor of rclpy 9 fails on callbacks that take it.)
    """

    def __init__(self, window_s: float = DUPLICATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._unpaired: Tuple[Deque[Tuple[float, Any]], ...] = (deque(), deque())

    def accept(self, reader: int, message: Any, now: float) -> bool:
        """Return True for a new sample from reader 0 or 1, False for the other's duplicate."""
        with self._lock:
            for pending in self._unpaired:
                while pending and now - pending[0][0] > self.window_s:
                    pending.popleft()
                while len(pending) > REMEMBERED_SAMPLES:
                    pending.popleft()
            other = self._unpaired[1 - reader]
            for index, (_, seen) in enumerate(other):
                if seen == message:
                    del other[index]
                    return False
            self._unpaired[reader].append((now, message))
            return True


class AnyDurabilitySubscription:
    """Two readers of one topic (volatile and transient local) feeding one callback, once each."""

    def __init__(self, node: Any, msg_type: Any, topic: str, callback: Callable[[Any], None],
                 callback_group: Any = None) -> None:
        self._callback = callback
        self.pairing = DuplicatePairing()
        self.subscriptions = [
            node.create_subscription(msg_type, topic, self._on_volatile, VOLATILE_READER_QOS,
                                     callback_group=callback_group),
            node.create_subscription(msg_type, topic, self._on_latched, LATCHED_READER_QOS,
                                     callback_group=callback_group),
        ]

    def _on_volatile(self, msg: Any) -> None:
        if self.pairing.accept(0, msg, time.monotonic()):
            self._callback(msg)

    def _on_latched(self, msg: Any) -> None:
        if self.pairing.accept(1, msg, time.monotonic()):
            self._callback(msg)

    def destroy(self, node: Any) -> None:
        """Destroy both readers."""
        for subscription in self.subscriptions:
            node.destroy_subscription(subscription)
        self.subscriptions = []

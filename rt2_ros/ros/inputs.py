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
  each sample to the callback once, in publication order (`TwoReaderMerge`).
- ee_pose is a robot state stream, often published BEST_EFFORT like sensor data: a BEST_EFFORT
  reader (`STATE_STREAM_QOS`) matches best-effort and reliable writers alike; a lost pose is
  replaced by the next one.
"""
from collections import deque
import threading
import time
from typing import Any, Callable, Deque, List, Tuple

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
# How long a latched copy waits for its volatile twin before it counts as history.
LATCHED_GRACE_S = 0.3


class TwoReaderMerge:
    """
    Merge the deliveries of a volatile and a latched reader of one topic into one stream.

    The volatile reader carries every live sample in publication order; the latched reader
    (depth 1) also receives live samples of latched writers - the same samples again, possibly
    before the volatile copy and skipping some under load - and, on matching a writer, that
    writer's last sample published before. So the volatile stream decides, and a latched copy
    is only a candidate: it is handed on after `grace_s` when the volatile reader neither
    delivered the same message meanwhile (then that copy was handed on, in order) nor anything
    else (then the volatile stream has moved past it: it is stale). What is left is the history
    sample of a writer that published before this reader existed - the latched task on start.
    A volatile delivery equal to a latched copy already handed on within `window_s` is that
    copy's twin and is dropped. (rclpy's MessageInfo would identify samples exactly, but the
    EventsExecutor of rclpy 9 fails on callbacks that take it.)
    """

    def __init__(self, grace_s: float = LATCHED_GRACE_S,
                 window_s: float = DUPLICATE_WINDOW_S) -> None:
        self.grace_s = grace_s
        self.window_s = window_s
        self._lock = threading.Lock()
        self._candidates: Deque[Tuple[float, Any]] = deque()  # latched copies, not yet decided
        self._volatile: Deque[Tuple[float, Any]] = deque()  # handed on, twin not yet seen
        self._latched: Deque[Tuple[float, Any]] = deque()  # handed on, twin not yet seen
        self._last_volatile = float('-inf')

    def _forget(self, now: float) -> None:
        for seen in (self._volatile, self._latched):
            while seen and (now - seen[0][0] > self.window_s or len(seen) > REMEMBERED_SAMPLES):
                seen.popleft()

    @staticmethod
    def _take(seen: Deque[Tuple[float, Any]], message: Any) -> bool:
        for index, (_, other) in enumerate(seen):
            if other == message:
                del seen[index]
                return True
        return False

    def from_volatile(self, message: Any, now: float) -> List[Any]:
        """Return what to hand on for a delivery of the volatile reader."""
        with self._lock:
            self._forget(now)
            self._last_volatile = now
            if self._take(self._candidates, message):
                return [message]  # the volatile copy of a pending latched one: in order
            if self._take(self._latched, message):
                return []  # the twin of a latched copy already handed on
            self._volatile.append((now, message))
            return [message]

    def from_latched(self, message: Any, now: float) -> List[Any]:
        """Return what to hand on for a delivery of the latched reader (now: never)."""
        with self._lock:
            self._forget(now)
            if not self._take(self._volatile, message):
                self._candidates.append((now, message))
            return []

    def due(self, now: float) -> List[Any]:
        """Return the latched copies whose grace ran out and that are neither twin nor stale."""
        handed: List[Any] = []
        with self._lock:
            while self._candidates and now - self._candidates[0][0] >= self.grace_s:
                arrived, message = self._candidates.popleft()
                if self._last_volatile > arrived:
                    continue  # the volatile stream went on past it
                self._latched.append((now, message))
                handed.append(message)
        return handed


class AnyDurabilitySubscription:
    """Two readers of one topic (volatile and transient local) feeding one callback, once each."""

    def __init__(self, node: Any, msg_type: Any, topic: str, callback: Callable[[Any], None],
                 callback_group: Any = None) -> None:
        from rclpy.clock import Clock, ClockType
        self._callback = callback
        self.merge = TwoReaderMerge()
        self._node = node
        self.subscriptions = [
            node.create_subscription(msg_type, topic, self._on_volatile, VOLATILE_READER_QOS,
                                     callback_group=callback_group),
            node.create_subscription(msg_type, topic, self._on_latched, LATCHED_READER_QOS,
                                     callback_group=callback_group),
        ]
        # Wall-clock (steady) timer: the grace period is about message delivery, not sim time.
        self.timer = node.create_timer(self.merge.grace_s / 3.0, self._on_timer,
                                       callback_group=callback_group,
                                       clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _on_volatile(self, msg: Any) -> None:
        for message in self.merge.from_volatile(msg, time.monotonic()):
            self._callback(message)

    def _on_latched(self, msg: Any) -> None:
        for message in self.merge.from_latched(msg, time.monotonic()):
            self._callback(message)

    def _on_timer(self) -> None:
        for message in self.merge.due(time.monotonic()):
            self._callback(message)

    def destroy(self) -> None:
        """Destroy both readers and the timer."""
        for subscription in self.subscriptions:
            self._node.destroy_subscription(subscription)
        self._node.destroy_timer(self.timer)
        self.subscriptions = []

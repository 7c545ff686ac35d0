"""
Publish a bag on live ROS topics with its original timing: `ros2 bag play` without rosbag2.

For machines with only the PyPI ROS wheels (a GPU box, a CI runner).

Messages go out as the CDR bytes stored in the bag (rclpy publishes serialized messages as they
are), so nothing is decoded or re-encoded and a Humble recording plays unchanged. Each topic is
published with the QoS its recorded publishers offered, or the one the topic needs (sensor data
for cameras, transient local for the latched instruction), because a QoS mismatch does not fail
in ROS 2, it silently delivers nothing. With `--clock` the bag's time goes out on /clock so
nodes with use_sim_time see the recording's time.
"""
from dataclasses import dataclass, field
import importlib
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from rt2_ros.bags.errors import BagError
from rt2_ros.bags.qos import playback_qos, QosSpec, RELIABLE
from rt2_ros.bags.reader import BagReader

# How long the end of playback waits for reliable subscribers to acknowledge the last messages.
FINAL_ACK_TIMEOUT_S = 2.0


@dataclass
class PlayOptions:
    """How to play (the CLI flags), plus hooks for in-process use by replay-test."""

    topics: List[str]
    rate: float = 1.0
    loop: bool = False
    clock_hz: Optional[float] = None
    start_offset_s: float = 0.0
    delay_s: float = 0.5
    remaps: Dict[str, str] = field(default_factory=dict)
    wait_for_subscribers_s: float = 0.0
    qos_overrides: Dict[str, QosSpec] = field(default_factory=dict)
    stop: Optional[threading.Event] = None
    before_publish: Optional[Callable[[str, int], None]] = None


def message_class(msgtype: str) -> Any:
    """Return the installed rclpy message class for `pkg/msg/Type` or raise a BagError."""
    package, kind, name = (msgtype.split('/') + ['', ''])[:3]
    try:
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ImportError, AttributeError, ValueError):
        raise BagError('unknown_type', f'message type {msgtype} is not installed in this ROS '
                       f'environment (python package {package}); source the workspace that '
                       'provides it or leave the topic out with --topics') from None


def to_qos_profile(spec: QosSpec) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=spec.depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliability == RELIABLE
        else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.latched
        else DurabilityPolicy.VOLATILE)


class BagPlayer:
    """Publishers for a bag's topics on a node, and the timed publishing loop."""

    def __init__(self, node: Any, bag: BagReader, options: PlayOptions) -> None:
        from rosgraph_msgs.msg import Clock
        self.node = node
        self.bag = bag
        self.options = options
        self.publishers: Dict[str, Any] = {}
        self.qos: Dict[str, QosSpec] = {}
        for topic in options.topics:
            info = bag.topic(topic)
            cls = message_class(info.msgtype)
            spec = playback_qos(info.name, info.msgtype, info.offered_qos,
                                options.qos_overrides.get(info.name))
            target = options.remaps.get(info.name, info.name)
            self.publishers[info.name] = node.create_publisher(cls, target, to_qos_profile(spec))
            self.qos[target] = spec
        self.clock = None
        if options.clock_hz:
            from rclpy.qos import QoSProfile
            self.clock = node.create_publisher(Clock, '/clock', QoSProfile(depth=10))
        self.counts: Dict[str, int] = dict.fromkeys(self.publishers, 0)
        self.max_late_s = 0.0
        self.loops = 0
        self.last_clock_ns = -1

    def _wait(self, deadline: float) -> bool:
        """Sleep until the monotonic deadline; False when asked to stop."""
        stop = self.options.stop
        remaining = deadline - time.monotonic()
        if stop is not None:
            return not stop.wait(max(0.0, remaining)) if remaining > 0 else not stop.is_set()
        if remaining > 0:
            time.sleep(remaining)
        return True

    def wait_for_subscribers(self, timeout_s: float) -> List[str]:
        """Wait until every publisher has a subscriber; return the topics that still have none."""
        deadline = time.monotonic() + timeout_s
        while True:
            lonely = [t for t, p in self.publishers.items() if p.get_subscription_count() == 0]
            if not lonely or time.monotonic() >= deadline:
                return lonely
            if not self._wait(min(deadline, time.monotonic() + 0.02)):
                return lonely

    def _publish_clock(self, bag_ns: int) -> None:
        from rosgraph_msgs.msg import Clock
        if bag_ns <= self.last_clock_ns:
            return
        self.last_clock_ns = bag_ns
        message = Clock()
        message.clock.sec, message.clock.nanosec = divmod(int(bag_ns), 10**9)
        self.clock.publish(message)

    def run(self) -> Dict[str, Any]:
        """Publish until the end of the bag (or forever with loop); return a summary."""
        options = self.options
        if options.wait_for_subscribers_s > 0:
            self.wait_for_subscribers(options.wait_for_subscribers_s)
        if options.delay_s > 0 and not self._wait(time.monotonic() + options.delay_s):
            return self.summary(interrupted=True)
        start_ns = self.bag.start_ns + int(options.start_offset_s * 1e9)
        clock_period = 1.0 / options.clock_hz if options.clock_hz else None
        wall_start = time.monotonic()
        while True:
            self.loops += 1
            self.last_clock_ns = -1      # a new loop starts bag time over, as ros2 bag play does
            loop_start = time.monotonic()
            next_clock = loop_start
            for message in self.bag.messages(list(self.publishers)):
                if message.time_ns < start_ns:
                    continue
                due = loop_start + (message.time_ns - start_ns) / 1e9 / options.rate
                while clock_period is not None and next_clock <= due:
                    if not self._wait(next_clock):
                        return self.summary(wall_start, interrupted=True)
                    # bag time on the playback schedule: monotonic with the messages' times
                    scheduled = (next_clock - loop_start) * options.rate
                    self._publish_clock(start_ns + int(scheduled * 1e9))
                    next_clock += clock_period
                if not self._wait(due):
                    return self.summary(wall_start, interrupted=True)
                if clock_period is not None:
                    self._publish_clock(message.time_ns)
                if options.before_publish is not None:
                    options.before_publish(message.topic, message.time_ns)
                self.max_late_s = max(self.max_late_s, time.monotonic() - due)
                self.publishers[message.topic].publish(message.raw)
                self.counts[message.topic] += 1
            if not options.loop:
                self.wait_for_acks(FINAL_ACK_TIMEOUT_S)
                return self.summary(wall_start)

    def wait_for_acks(self, timeout_s: float) -> None:
        """
        Wait until reliable subscribers have acknowledged every message (as ros2 bag play does).

        Destroying a publisher drops what DDS has not delivered yet: a lost fragment of the last
        messages would never be resent, and a subscriber would miss the end of the bag.
        """
        from rclpy.duration import Duration
        deadline = time.monotonic() + timeout_s
        for topic, publisher in self.publishers.items():
            if self.qos[self.options.remaps.get(topic, topic)].reliability != RELIABLE:
                continue
            remaining = max(0.0, deadline - time.monotonic())
            publisher.wait_for_all_acked(Duration(seconds=remaining))

    def summary(self, wall_start: Optional[float] = None,
                interrupted: bool = False) -> Dict[str, Any]:
        return {
            'published': sum(self.counts.values()), 'topics': dict(self.counts),
            'loops': self.loops, 'interrupted': interrupted,
            'wall_s': round(time.monotonic() - wall_start, 3) if wall_start else 0.0,
            'max_late_ms': round(self.max_late_s * 1000.0, 3),
            'qos': {t: s.to_dict() for t, s in self.qos.items()},
        }


def play(bag: BagReader, options: PlayOptions) -> Dict[str, Any]:
    """Run a player in its own rclpy context until the bag ends or SIGINT."""
    import rclpy
    from rclpy.context import Context
    context = Context()
    rclpy.init(args=[], context=context)
    node = None
    try:
        node = rclpy.create_node('rt2_bag_player', context=context)
        player = BagPlayer(node, bag, options)
        try:
            return player.run()
        except KeyboardInterrupt:
            return player.summary(interrupted=True)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)

"""
Record live topics into a new rosbag2 bag (MCAP by default) - `ros2 bag record` without rosbag2.

Messages are taken as serialized bytes (no decode/encode) and written as they arrive, so a
SIGINT or SIGTERM loses nothing already received: the signal only ends the spin loop, the queue is
drained and the bag is closed (MCAP summary, metadata.yaml) before the process exits. Topic types
are discovered from the graph and the subscription adapts to what the publishers offer (reliable
only if they all are, transient local only if they all are - the instruction's latched value is
then recorded even though it was published before recording began); a topic without publishers
yet is picked up when one appears.
"""
from dataclasses import dataclass, field
from pathlib import Path
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from rt2_ros.bags.errors import BagError
from rt2_ros.bags.qos import combine_offered, default_qos, QosSpec
from rt2_ros.bags.writer import BagWriter

POLL_S = 0.1


@dataclass
class RecordOptions:
    """What to record (the CLI flags), plus hooks for in-process use by replay-test."""

    out: Path
    topics: List[str]
    storage: str = 'mcap'
    duration_s: Optional[float] = None
    max_messages: Optional[int] = None
    discovery_timeout_s: float = 10.0
    types: Dict[str, str] = field(default_factory=dict)
    qos: Dict[str, QosSpec] = field(default_factory=dict)
    stop: Optional[threading.Event] = None


def msg_definition_from_share(msgtype: str) -> Optional[str]:
    """Return the `.msg` text of a type from its package's share directory (custom types)."""
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    package, kind, name = (msgtype.split('/') + ['', ''])[:3]
    try:
        path = Path(get_package_share_directory(package)) / kind / f'{name}.{kind}'
    except (PackageNotFoundError, ValueError):
        return None
    return path.read_text(encoding='utf-8') if path.is_file() else None


def offered_specs(infos: List[Any]) -> List[QosSpec]:
    """Return the QosSpec of each publisher endpoint (rclpy TopicEndpointInfo)."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    specs = []
    for info in infos:
        profile = info.qos_profile
        specs.append(QosSpec(
            'best_effort' if profile.reliability == ReliabilityPolicy.BEST_EFFORT else 'reliable',
            'transient_local' if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
            else 'volatile',
            max(1, int(profile.depth or 0)) if profile.depth else 10))
    return specs


class TopicRecorder:
    """Subscriptions that write every message of the chosen topics into a BagWriter."""

    def __init__(self, node: Any, writer: BagWriter, topics: List[str],
                 types: Optional[Dict[str, str]] = None,
                 qos: Optional[Dict[str, QosSpec]] = None) -> None:
        self.node = node
        self.writer = writer
        self.pending = list(dict.fromkeys(topics))
        self.types = dict(types or {})
        self.qos = dict(qos or {})
        self.subscriptions: Dict[str, Any] = {}
        self.count = 0
        self.lock = threading.Lock()

    def discover(self) -> List[str]:
        """Subscribe to pending topics whose type is now known; return those still pending."""
        from rt2_ros.bags.play_node import message_class, to_qos_profile
        known = dict(self.node.get_topic_names_and_types())
        still = []
        for topic in self.pending:
            msgtype = self.types.get(topic)
            if msgtype is None:
                types = known.get(topic, [])
                if not types:
                    still.append(topic)
                    continue
                if len(types) > 1:
                    raise BagError('usage', f'{topic} is published with several types '
                                   f'({", ".join(types)}); pick one with --types')
                msgtype = types[0]
            publishers = self.node.get_publishers_info_by_topic(topic)
            offered = offered_specs(publishers)
            spec = self.qos.get(topic) or combine_offered(offered) or default_qos(topic, msgtype)
            cls = message_class(msgtype)
            self.writer.add_topic(topic, msgtype, offered or [spec])
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, self._callback(topic), to_qos_profile(spec), raw=True)
        self.pending = still
        return still

    def _callback(self, topic: str):
        def write(raw: bytes, info: Dict[str, int]) -> None:
            # The middleware's receive time, as rosbag2 records it: the callback may run late
            # (a busy executor, a slow first write), the arrival did not. An rmw that does not
            # stamp receptions gives 0.
            now = int(info.get('received_timestamp') or 0) or time.time_ns()
            with self.lock:
                if self.writer.closed:
                    return
                self.writer.write(topic, now, raw)
                self.count += 1
                if self.writer.counts[topic] == 1:
                    # tells the operator (and tests) that data flows on this topic
                    print(f'rt2 bag record: first message on {topic}', file=sys.stderr,
                          flush=True)
        return write


def record(options: RecordOptions) -> Dict[str, Any]:
    """Record until a signal, the duration or the message count; the bag is always closed."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from rt2_ros.bags.play_node import message_class
    for msgtype in options.types.values():
        message_class(msgtype)      # refuse an unknown type before the bag is created
    stop = options.stop or threading.Event()
    stopped_by = {'reason': 'stop'}

    def on_signal(signum: int, frame: Any) -> None:
        stopped_by['reason'] = signal.Signals(signum).name
        stop.set()

    context = Context()
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    writer = BagWriter(options.out, storage=options.storage,
                       definitions=msg_definition_from_share)
    node = None
    started = time.monotonic()
    try:
        node = rclpy.create_node('rt2_bag_recorder', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        recorder = TopicRecorder(node, writer, options.topics, options.types, options.qos)
        recorder.discover()
        print(f'rt2 bag record: recording {len(recorder.subscriptions)} topics into '
              f'{options.out}' + (f'; waiting for {", ".join(recorder.pending)}'
                                  if recorder.pending else ''), file=sys.stderr, flush=True)
        started = time.monotonic()    # the duration counts from here, not from start-up
        warned = False
        next_discovery = started + POLL_S
        while not stop.is_set():
            executor.spin_once(timeout_sec=POLL_S / 2)
            now = time.monotonic()
            if options.duration_s is not None and now - started >= options.duration_s:
                stopped_by['reason'] = 'duration'
                break
            if options.max_messages is not None and recorder.count >= options.max_messages:
                stopped_by['reason'] = 'max_messages'
                break
            if recorder.pending and now >= next_discovery:
                recorder.discover()
                next_discovery = now + POLL_S
                if recorder.pending and not warned and \
                        now - started >= options.discovery_timeout_s:
                    warned = True
                    print(f'rt2 bag record: warning: no publisher yet for '
                          f'{", ".join(recorder.pending)}; still waiting', file=sys.stderr,
                          flush=True)
        if stopped_by['reason'] != 'max_messages':
            # take what DDS already delivered to us before closing
            drain_until = time.monotonic() + 0.2
            while time.monotonic() < drain_until:
                executor.spin_once(timeout_sec=0.01)
        with recorder.lock:
            writer.close()
        missing = list(recorder.pending)
        count = recorder.count
    finally:
        if not writer.closed:
            writer.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    return {'out': str(options.out), 'storage': options.storage, 'messages': count,
            'topics': dict(writer.counts), 'missing_topics': missing,
            'stopped_by': stopped_by['reason'],
            'duration_s': round(time.monotonic() - started, 3)}

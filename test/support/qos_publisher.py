"""
A publisher with a chosen QoS in a process of its own, as a robot's or operator's would be.

QoS matching happens between DDS participants, so a test of "does the node accept this kind of
publisher" should use a publisher in another process made the way users make theirs:

    with QosPublisher('/rt2/instruction', 'string', durability='volatile') as pub:
        pub.publish('pick up the block', wait_for_subscriber=True)

Run as a script, it reads one text per stdin line and publishes it (`string`: std_msgs/String
with that text; `pose`: a PoseStamped whose frame id is that text, repeated at --rate-hz until
the next line, as a state stream is), answering `published <text>` on stdout. --first publishes
one text at start, before any subscriber exists (a latched task set before the node starts).
"""
import argparse
import os
from pathlib import Path
import queue
import subprocess
import sys
import threading
import time
from typing import List, Optional

HERE = Path(__file__).resolve().parent


class QosPublisher:
    """Drive `qos_publisher.py` in a child process (test side)."""

    def __init__(self, topic: str, kind: str = 'string', reliability: str = 'reliable',
                 durability: str = 'volatile', depth: int = 10, first: Optional[str] = None,
                 rate_hz: float = 20.0) -> None:
        self.args = [sys.executable, str(HERE / 'qos_publisher.py'), '--topic', topic,
                     '--kind', kind, '--reliability', reliability, '--durability', durability,
                     '--depth', str(depth), '--rate-hz', str(rate_hz)]
        if first is not None:
            self.args += ['--first', first]
        self._lines: 'queue.Queue[str]' = queue.Queue()
        self.output: List[str] = []

    def start(self) -> 'QosPublisher':
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line.rstrip('\n'))

    def wait_line(self, prefix: str, timeout: float = 30.0) -> str:
        """Wait for a stdout line starting with prefix."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f'no {prefix!r} from the publisher: {"".join(self.output)}')
            if line.startswith(prefix):
                return line

    def publish(self, text: str, wait_for_subscriber: bool = False, timeout: float = 30.0) -> None:
        """Publish text (after a subscriber matched, if asked) and wait until it was sent."""
        command = ('wait ' if wait_for_subscriber else 'now ') + text
        self.process.stdin.write(command + '\n')
        self.process.stdin.flush()
        self.wait_line(f'published {text}', timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> 'QosPublisher':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--topic', required=True)
    parser.add_argument('--kind', choices=('string', 'pose'), default='string')
    parser.add_argument('--reliability', choices=('reliable', 'best_effort'), default='reliable')
    parser.add_argument('--durability', choices=('volatile', 'transient_local'),
                        default='volatile')
    parser.add_argument('--depth', type=int, default=10)
    parser.add_argument('--rate-hz', type=float, default=20.0)
    parser.add_argument('--first')
    args = parser.parse_args()

    from geometry_msgs.msg import PoseStamped
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    rclpy.init()
    node = rclpy.create_node('qos_publisher')
    qos = QoSProfile(depth=args.depth,
                     reliability=ReliabilityPolicy.RELIABLE if args.reliability == 'reliable'
                     else ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL
                     if args.durability == 'transient_local' else DurabilityPolicy.VOLATILE)
    msg_type = String if args.kind == 'string' else PoseStamped
    publisher = node.create_publisher(msg_type, args.topic, qos)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    current = {'text': None}
    lock = threading.Lock()

    def make(text: str):
        if args.kind == 'string':
            return String(data=text)
        msg = PoseStamped()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = text
        msg.pose.orientation.w = 1.0
        return msg

    def send(text: str) -> None:
        with lock:
            current['text'] = text
        publisher.publish(make(text))
        print(f'published {text}', flush=True)

    if args.kind == 'pose':
        stop = threading.Event()

        def stream() -> None:
            while not stop.wait(1.0 / args.rate_hz):
                with lock:
                    text = current['text']
                if text is not None:
                    publisher.publish(make(text))
        threading.Thread(target=stream, daemon=True).start()

    if args.first is not None:
        send(args.first)
    for line in sys.stdin:
        how, _, text = line.rstrip('\n').partition(' ')
        if how == 'wait':
            while publisher.get_subscription_count() < 1:
                time.sleep(0.02)  # DDS discovery has no event to wait on
        send(text)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    _main()

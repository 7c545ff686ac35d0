"""`rt2 bag play` and `rt2 bag record` as separate processes talking over real DDS."""
import json
import os
from pathlib import Path
import selectors
import signal
import subprocess
import time

from bag_fixtures import write_layout_bag
from cli_helpers import rt2_executable, run_rt2
import numpy as np
import pytest
from rt2_ros.bags.reader import open_bag
from rt2_ros.bags.synthetic import SessionSpec
from rt2_ros.cli.main import main

pytestmark = pytest.mark.ros

SPEC = SessionSpec(duration_s=2.0, parts=('camera', 'instruction', 'ee_pose', 'twist'),
                   instructions=((0.0, 'pick up the red block'),))
TYPES = ['/camera/image_raw:=sensor_msgs/msg/Image', '/instruction:=std_msgs/msg/String',
         '/ee_pose:=geometry_msgs/msg/PoseStamped',
         '/servo/delta_twist_cmds:=geometry_msgs/msg/TwistStamped',
         '/clock:=rosgraph_msgs/msg/Clock']


class Recorder:
    """`rt2 bag record` in its own process; ready once it says it is recording."""

    def __init__(self, out: Path, topics, extra=()) -> None:
        self.process = subprocess.Popen(
            [rt2_executable(), 'bag', 'record', str(out), '--topics', *topics, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr = ''
        self.wait_for('recording')

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Read the recorder's stderr until a line contains text."""
        selector = selectors.DefaultSelector()
        selector.register(self.process.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while text not in self.stderr:
                assert time.monotonic() < deadline, self.stderr
                if selector.select(1.0):
                    line = self.process.stderr.readline()
                    assert line, f'recorder exited: {self.process.wait()} {self.stderr}'
                    self.stderr += line
        finally:
            selector.close()

    def stop(self, signum=signal.SIGINT) -> dict:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, self.stderr + err
        return json.loads(out)


def test_play_reaches_subscriber_in_other_process_with_original_timing(tmp_path):
    source = tmp_path / 'humble'
    write_layout_bag(source, 'humble', 'sqlite3', SPEC)      # no definitions in the bag
    recorder = Recorder(tmp_path / 'recorded', [t.split(':=')[0] for t in TYPES],
                        ['--types', *TYPES])
    played = run_rt2(['bag', 'play', str(source), '--clock', '50', '--delay', '0',
                      '--wait-for-subscribers', '20'], timeout=60)
    assert played.returncode == 0, played.stderr
    summary = json.loads(played.stdout)
    assert summary['published'] == 10 * 2 * 2 + 1 + 60 and not summary['interrupted']
    assert summary['qos']['/camera/image_raw']['reliability'] == 'best_effort'
    assert summary['qos']['/instruction']['durability'] == 'transient_local'
    recorded = recorder.stop()
    assert recorded['stopped_by'] == 'SIGINT' and recorded['missing_topics'] == []

    with open_bag(source) as original, open_bag(tmp_path / 'recorded') as copy:
        topics = list(original.topics)
        sent = [(m.topic, m.time_ns, _content(original.deserialize(m)))
                for m in original.messages(topics)]
        got = [(m.topic, m.time_ns, _content(copy.deserialize(m)))
               for m in copy.messages(topics)]
        clock = [copy.deserialize(m).clock for m in copy.messages(['/clock'])]
        assert copy.topic('/instruction').offered_qos[0].latched
    # every message arrived once, unchanged (CDR padding may differ: compare decoded content)
    assert sorted((t, c) for t, _, c in got) == sorted((t, c) for t, _, c in sent)
    # relative receive times reproduce the recording's (2 loaded cores: allow 40 ms)
    received = {(t, c): time_ns for t, time_ns, c in got}
    sent_offsets = np.array([time_ns - sent[0][1] for _, time_ns, _ in sent]) / 1e9
    got_offsets = np.array([received[(t, c)] for t, _, c in sent]) / 1e9
    got_offsets -= got_offsets[0]
    assert np.max(np.abs(got_offsets - sent_offsets)) < 0.04, \
        (f"player at most {summary['max_late_ms']} ms late", got_offsets - sent_offsets)
    # /clock carried bag time, increasing, across the bag's span
    times = [c.sec * 10**9 + c.nanosec for c in clock]
    assert len(times) >= 50 and times == sorted(times)
    assert sent[0][1] <= times[0] and times[-1] <= sent[-1][1]


def _content(message):
    """Return a hashable form of a deserialized rosbags message (fields, arrays as bytes)."""
    if isinstance(message, np.ndarray):
        return message.tobytes()
    if hasattr(message, '__dataclass_fields__'):
        return tuple(_content(getattr(message, f)) for f in message.__dataclass_fields__
                     if f != '__msgtype__')
    if isinstance(message, list):
        return tuple(_content(m) for m in message)
    return message


def test_record_latched_instruction_published_before_start_and_sigterm(tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node('latched_instruction', context=context)
    try:
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        publisher = node.create_publisher(String, 'instruction', latched)
        publisher.publish(String(data='put the cup in the sink'))
        # discovered from the graph (no --types): the subscription must adapt to transient local
        recorder = Recorder(tmp_path / 'bag', ['/instruction'],
                            ['--storage', 'sqlite3', '--max-messages', '1'])
        out, err = recorder.process.communicate(timeout=30)
        assert recorder.process.returncode == 0, err
        summary = json.loads(out)
        assert summary['stopped_by'] == 'max_messages' and summary['messages'] == 1
        with open_bag(tmp_path / 'bag') as bag:
            assert bag.storage == 'sqlite3'
            assert bag.deserialize(next(bag.messages())).data == 'put the cup in the sink'
            assert bag.topic('/instruction').offered_qos[0].latched

        # SIGTERM (what a launch system or systemd sends) closes the bag cleanly too
        recorder = Recorder(tmp_path / 'term', ['/instruction'])
        recorder.wait_for('first message on /instruction')
        summary = recorder.stop(signal.SIGTERM)
        assert summary['stopped_by'] == 'SIGTERM' and summary['messages'] == 1
        with open_bag(tmp_path / 'term') as bag:
            assert bag.message_count == 1 and bag.storage == 'mcap'
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_record_duration_and_user_errors(tmp_path, capsys):
    result = run_rt2(['bag', 'record', str(tmp_path / 'quiet'), '--topics', '/nothing',
                      '--duration', '0.5', '--discovery-timeout', '0.2'])
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary['stopped_by'] == 'duration' and summary['missing_topics'] == ['/nothing']
    assert 'no publisher yet for /nothing' in result.stderr
    with open_bag(tmp_path / 'quiet') as bag:
        assert bag.message_count == 0

    os.makedirs(tmp_path / 'exists')
    for args, needle in [
        (['record', str(tmp_path / 'exists'), '--topics', '/a'], 'already exists'),
        (['record', str(tmp_path / 'n'), '--topics', '/a', '--types', '/a:=nope'],
         'must be TOPIC:=pkg/msg/Type'),
        (['record', str(tmp_path / 'n'), '--topics', '/a', '--types', '/a:=my_msgs/msg/Nope',
          '--duration', '1'], 'not installed'),
        (['record', str(tmp_path / 'n'), '--topics', '/a', '--max-messages', '0'],
         'must be at least 1'),
        (['play', str(tmp_path / 'quiet'), '--rate', '0'], '--rate must be positive'),
        (['play', str(tmp_path / 'quiet'), '--topics', '/camera'], 'topic /camera is not in'),
    ]:
        assert main(['bag', *args]) == 2, args
        err = capsys.readouterr().err
        assert needle in err and err.count('\n') == 1, err
    assert not (tmp_path / 'n').exists()     # a refused recording leaves nothing behind


def test_play_loop_remap_and_stop(tmp_path):
    """--loop starts over, --remap renames, and a stop request ends playback between messages."""
    import threading

    import rclpy
    from rclpy.context import Context
    from rt2_ros.bags.play_node import BagPlayer, PlayOptions
    write_layout_bag(tmp_path / 'bag', 'kilted', 'mcap',
                     SessionSpec(duration_s=0.5, parts=('instruction', 'ee_pose'),
                                 instructions=((0.0, 'wave'),)))
    stop = threading.Event()
    seen = []

    def count(topic, time_ns):
        seen.append((topic, time_ns))
        if len(seen) == 3 * 6:          # 1 instruction + 5 poses per loop: stop in loop 4
            stop.set()

    context = Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node('loop_player', context=context)
    try:
        with open_bag(tmp_path / 'bag') as bag:
            player = BagPlayer(node, bag, PlayOptions(
                topics=list(bag.topics), rate=20.0, loop=True, delay_s=0.0, stop=stop,
                remaps={'/ee_pose': '/robot1/ee_pose'}, before_publish=count))
            summary = player.run()
        names = dict(node.get_publisher_names_and_types_by_node('loop_player', '/'))
        assert '/robot1/ee_pose' in names and '/ee_pose' not in names
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert summary['interrupted'] and summary['loops'] == 4
    assert summary['published'] == 3 * 6
    assert [t for t, _ in seen[:6]] == [t for t, _ in seen[6:12]]

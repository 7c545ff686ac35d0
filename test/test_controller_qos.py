"""
rt2_controller's inputs match the publishers users run, each publisher in its own process.

The instruction may come from `ros2 topic pub` / `create_publisher(String, 'instruction', 10)`
(reliable, volatile) or from a latched publisher (transient local) whose task was set before
the controller started; ee_pose may be a best-effort state stream. A QoS mismatch would be
silent, so each case is checked by what the node logs on receipt.
"""
import pytest
from support.qos_publisher import QosPublisher
from support.ros_harness import NodeProcess

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NAMESPACE = '/qos_rig'
EARLY_TASK = 'task set before the controller started'


@pytest.fixture(scope='module')
def rig():
    # No camera is published, so the policy (a closed port) is never asked.
    params = {'policy.backend': 'openvla_http', 'policy.url': 'http://127.0.0.1:9',
              'action_space': 'rt2'}
    with QosPublisher(f'{NAMESPACE}/instruction', durability='transient_local', depth=1,
                      first=EARLY_TASK) as latched:
        latched.wait_line(f'published {EARLY_TASK}')
        with NodeProcess(namespace=NAMESPACE, params=params) as node:
            node.wait_for_log('active', timeout=60)
            yield node, latched


def _received(node, text):
    return node.log().count(f'instruction {text!r}:')


def test_a_latched_instruction_published_before_start_is_read(rig):
    node, _ = rig
    node.wait_for_log(f'instruction {EARLY_TASK!r}:', timeout=20)


def test_a_default_qos_publisher_reaches_the_node(rig):
    node, _ = rig
    # create_publisher(String, 'instruction', 10): reliable + volatile, as `ros2 topic pub`
    with QosPublisher(f'{NAMESPACE}/instruction', durability='volatile', depth=10) as pub:
        pub.publish('pick up the block from a volatile publisher', wait_for_subscriber=True)
        node.wait_for_log("instruction 'pick up the block from a volatile publisher':",
                          timeout=20)


def test_a_latched_publisher_reaches_both_readers_but_each_task_counts_once(rig):
    node, latched = rig
    latched.publish('first latched task', wait_for_subscriber=True)
    latched.publish('second latched task')
    node.wait_for_log("instruction 'second latched task':", timeout=20)
    assert _received(node, 'first latched task') == 1
    assert _received(node, 'second latched task') == 1
    assert _received(node, EARLY_TASK) == 1  # not replayed when the writer published again


def test_a_best_effort_pose_stream_reaches_the_node(rig):
    node, _ = rig
    # The frame id is deliberately wrong: the node says it ignored the pose, proof of receipt.
    with QosPublisher(f'{NAMESPACE}/ee_pose', kind='pose', reliability='best_effort') as pub:
        pub.publish('not_the_base_frame', wait_for_subscriber=True)
        node.wait_for_log("ignoring ee_pose in frame 'not_the_base_frame'", timeout=20)


def test_the_merge_keeps_publication_order_and_takes_each_sample_once():
    from rt2_ros.ros.inputs import TwoReaderMerge
    merge = TwoReaderMerge(grace_s=0.3, window_s=2.0)
    # a latched writer's live sample, volatile copy first: taken once, at once
    assert merge.from_volatile('a', 0.0) == ['a'] and merge.from_latched('a', 0.01) == []
    assert merge.due(1.0) == []
    # latched copy first: it waits; the volatile copy is taken in its place, in order
    assert merge.from_latched('b', 1.0) == [] and merge.from_volatile('b', 1.05) == ['b']
    assert merge.due(2.0) == []
    # the same task published twice on purpose: taken twice
    assert merge.from_volatile('c', 2.0) == ['c'] and merge.from_volatile('c', 2.1) == ['c']
    assert merge.from_latched('c', 2.1) == [] and merge.from_latched('c', 2.2) == []
    assert merge.due(3.0) == []
    # under load the latched reader (depth 1) jumps to the newest 'f' while the volatile one
    # still delivers older 'x', 'y': the newest task must win, not the last delivered copy
    assert merge.from_latched('f', 3.0) == []
    assert merge.from_volatile('x', 3.05) == ['x'] and merge.from_volatile('y', 3.1) == ['y']
    assert merge.from_volatile('f', 3.15) == ['f'] and merge.due(4.0) == []
    # a copy the volatile reader lost while the stream went on is stale, not replayed
    assert merge.from_latched('lost', 4.0) == [] and merge.from_volatile('z', 4.1) == ['z']
    assert merge.due(5.0) == []
    # history: a task latched before the reader existed reaches the latched reader only
    assert merge.from_latched('history', 6.0) == [] and merge.due(6.2) == []
    assert merge.due(6.31) == ['history']
    assert merge.from_volatile('history', 6.4) == []  # its late volatile twin, if any

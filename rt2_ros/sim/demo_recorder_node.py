"""
Record the sim's and the expert's topics into rosbag2 bags with `rosbags` (no ros2 bag needed).

Subscriptions are raw (`raw=True`): the CDR bytes DDS delivers go into the bag untouched, so a
bag holds exactly what was on the wire and `ros2 bag play` or rosbags' readers see the same
messages. Each topic's offered QoS is stored too, so replaying `instruction` stays latched and
the camera stays best effort. Receive time on the node clock is the bag timestamp, as with
`ros2 bag record`.
"""
import json
from pathlib import Path
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy,
)
from rclpy.serialization import deserialize_message
from rt2_ros.sim.node import COMMANDS, LATCHED
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String

STORAGES = ('mcap', 'sqlite3')
EPISODE_TOPIC = 'rt2_sim/episode'
DISTROS = ('kilted', 'jazzy', 'humble')

# (relative topic, message class, rosbag2 type name, QoS to subscribe with)
DEMO_TOPICS: Tuple[Tuple[str, Any, str, QoSProfile], ...] = (
    ('camera/image_raw', Image, 'sensor_msgs/msg/Image', qos_profile_sensor_data),
    ('camera/camera_info', CameraInfo, 'sensor_msgs/msg/CameraInfo', qos_profile_sensor_data),
    ('instruction', String, 'std_msgs/msg/String', LATCHED),
    ('ee_pose', PoseStamped, 'geometry_msgs/msg/PoseStamped', COMMANDS),
    ('joint_states', JointState, 'sensor_msgs/msg/JointState', COMMANDS),
    ('servo/delta_twist_cmds', TwistStamped, 'geometry_msgs/msg/TwistStamped', COMMANDS),
    ('gripper/commands', Float64MultiArray, 'std_msgs/msg/Float64MultiArray', COMMANDS),
    ('expert/action', Float64MultiArray, 'std_msgs/msg/Float64MultiArray', COMMANDS),
    ('expert/intended_action', Float64MultiArray, 'std_msgs/msg/Float64MultiArray', COMMANDS),
    ('expert/action_text', String, 'std_msgs/msg/String', COMMANDS),
    ('rt2_sim/episode', String, 'std_msgs/msg/String', LATCHED),
    ('rt2_sim/success', Bool, 'std_msgs/msg/Bool', LATCHED),
)


def _bag_qos(profile: QoSProfile):
    from rosbags.interfaces import (
        Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime,
    )
    reliable = profile.reliability == ReliabilityPolicy.RELIABLE
    latched = profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, int(profile.depth),
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def typestore_for(distro: str):
    """Return the rosbags typestore for a ROS 2 distro name."""
    from rosbags.typesys import get_typestore, Stores
    stores = {'kilted': Stores.ROS2_KILTED, 'jazzy': Stores.ROS2_JAZZY,
              'humble': Stores.ROS2_HUMBLE}
    if distro not in stores:
        raise ValueError(f'unknown distro {distro!r}; one of {", ".join(stores)}')
    return get_typestore(stores[distro])


class _Reply:
    """An answer from the writer thread."""

    def __init__(self) -> None:
        self.value: Any = None
        self.done = threading.Event()

    def answer(self, value: Any) -> None:
        self.value = value
        self.done.set()


class DemoRecorder(Node):
    """
    Raw subscriptions to the demo topics, written to the currently open bag.

    One thread owns the bag writer (sqlite3 connections must stay in the thread that made
    them); callbacks only queue the bytes, so a slow disk never blocks the executor.
    """

    def __init__(self, topics=DEMO_TOPICS, **kwargs: Any) -> None:
        super().__init__('rt2_demo_recorder', **kwargs)
        self._topics: List[Tuple[str, str, QoSProfile]] = []
        self._lock = threading.Lock()
        self._recording = False
        self.counts: Dict[str, int] = {}
        self.episode: Optional[int] = None
        self._first_episode = 0
        self._resolved: Dict[str, str] = {}
        self._queue: 'queue.Queue' = queue.Queue()
        self._thread = threading.Thread(target=self._write_loop, daemon=True)
        self._thread.start()
        for topic, msg_class, type_name, qos in topics:
            sub = self.create_subscription(msg_class, topic, self._callback_for(topic), qos,
                                           raw=True)
            self._resolved[topic] = sub.topic_name
            self._topics.append((sub.topic_name, type_name, qos))

    @property
    def resolved_topics(self) -> List[str]:
        return [name for name, _, _ in self._topics]

    def _callback_for(self, topic: str):
        def callback(raw: bytes) -> None:
            stamp = self.get_clock().now().nanoseconds
            with self._lock:
                if topic == EPISODE_TOPIC:
                    self.episode = json.loads(deserialize_message(raw, String).data)['episode']
                # The instruction is only published on a reset, so one arriving while
                # recording belongs to the new episode even if it overtook the announcement.
                waiting = self.episode is None or self.episode < self._first_episode
                if not self._recording or (waiting and topic != 'instruction'):
                    return
                name = self._resolved[topic]
                self.counts[name] = self.counts.get(name, 0) + 1
                self._queue.put(('msg', name, stamp, raw))
        return callback

    def _write_loop(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        writer, connections = None, {}
        while True:
            item = self._queue.get()
            kind = item[0]
            if kind == 'msg':
                if writer is not None:
                    writer.write(connections[item[1]], item[2], item[3])
            elif kind == 'open':
                _, path, storage, distro, reply = item
                try:
                    typestore = typestore_for(distro)
                    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
                    writer = Writer(Path(path), version=9, storage_plugin=plugin)
                    writer.open()
                    connections = {
                        name: writer.add_connection(name, type_name, typestore=typestore,
                                                    offered_qos_profiles=[_bag_qos(qos)])
                        for name, type_name, qos in self._topics}
                    reply.answer(None)
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    writer = None
                    reply.answer(exc)
            elif kind == 'close':
                if writer is not None:
                    writer.close()
                writer = None
                item[1].answer(None)
            else:
                if writer is not None:
                    writer.close()
                return

    def _request(self, *item: Any, timeout: float = 60.0) -> Any:
        reply = _Reply()
        self._queue.put(item + (reply,))
        if not reply.done.wait(timeout):
            raise TimeoutError('bag writer did not answer')
        return reply.value

    def start_bag(self, path: Path, storage: str = 'mcap', distro: str = 'kilted',
                  first_episode: int = 0) -> None:
        """
        Start writing a new bag at path (which must not exist).

        Messages are written from the moment the sim announces episode `first_episode` (or a
        later one) on rt2_sim/episode, so the end of the previous episode stays out.
        """
        if storage not in STORAGES:
            raise ValueError(f'unknown storage {storage!r}; one of {", ".join(STORAGES)}')
        error = self._request('open', str(path), storage, distro)
        if error is not None:
            raise RuntimeError(f'cannot write bag {path}: {error}')
        with self._lock:
            self._first_episode = int(first_episode)
            self.counts = {}
            self._recording = True

    def finish_bag(self) -> Optional[Dict[str, int]]:
        """Finish the open bag; return how many messages each topic got."""
        with self._lock:
            if not self._recording:
                return None
            self._recording = False
            counts = dict(self.counts)
        self._request('close')
        return counts

    def destroy_node(self) -> None:
        self.finish_bag()
        self._queue.put(('stop',))
        self._thread.join(timeout=10.0)
        super().destroy_node()


def _wait(predicate, timeout: float) -> bool:
    """Wait for predicate() (state kept by executor callbacks), checking every 20 ms."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        tick.wait(min(0.02, remaining))
    return True


def sim_command(namespace: str = '', **parameters: Any) -> List[str]:
    """Return the command line that starts an rt2_sim node with parameters."""
    cmd = [sys.executable, '-m', 'rt2_ros.sim.node', '--ros-args']
    for name, value in parameters.items():
        if value is None or value == '':
            continue
        cmd += ['-p', f'{name}:={value}']
    if namespace:
        cmd += ['-r', f'__ns:={namespace}']
    return cmd


def record_demos(out: Path, episodes: int, split: str = 'train', family: Optional[str] = None,
                 seed: int = 0, variation: str = 'none', storage: str = 'mcap',
                 per_episode: bool = True, distro: str = 'kilted',
                 decision_rate_hz: float = 5.0, camera_rate_hz: float = 30.0, width: int = 224,
                 height: int = 224, max_decisions: int = 40, noise: bool = True,
                 episode_timeout_s: float = 60.0, namespace: str = '',
                 log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """
    Run the expert through the real topics against an rt2_sim process and record bags.

    The sim runs as its own process (`python -m rt2_ros.sim.node`); the expert and the recorder
    run here in one single-threaded executor (a multi-threaded executor's busy spinning starved
    the expert's 50 Hz command timer to ~16 Hz). Episodes are started by setting the sim's `seed`
    (and `family`) parameters and calling its `~/reset` service. Returns one summary per
    episode (also written to out/index.json).
    """
    import rclpy
    from rclpy.parameter import Parameter
    from rt2_ros.sim.episode_client_node import SimEpisodeClient
    from rt2_ros.sim.expert_node import ExpertNode
    from rt2_ros.ros.executors import make_executor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sim_log = open(out / 'rt2_sim.log', 'w', encoding='utf-8')
    sim = subprocess.Popen(
        sim_command(namespace, split=split, seed=seed, family=family, variation=variation,
                    camera_rate_hz=float(camera_rate_hz), image_width=int(width),
                    image_height=int(height)),
        stdout=sim_log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor, _ = make_executor('auto', context=context)
    nodes: List[Node] = []
    results: List[Dict[str, Any]] = []
    single_open = False
    spinner: Optional[threading.Thread] = None
    try:
        ns = {'namespace': namespace} if namespace else {}
        expert = ExpertNode(context=context, parameter_overrides=[
            Parameter('decision_rate_hz', value=float(decision_rate_hz)),
            Parameter('max_decisions', value=int(max_decisions)),
            Parameter('noise', value=bool(noise))], **ns)
        recorder = DemoRecorder(context=context, **ns)
        helper = Node('rt2_demo_session', context=context, **ns)
        nodes = [expert, recorder, helper]
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        episodes_client = SimEpisodeClient(helper)
        expert.follow(-1)  # nothing until an episode is started below
        if not episodes_client.wait_ready(60.0):
            raise RuntimeError(f'rt2_sim did not come up; see {out / "rt2_sim.log"}')
        # The sim's start-up episode tells that discovery is done and gives its episode number.
        if not _wait(lambda: recorder.episode is not None, 30.0):
            raise RuntimeError('no episode announcement from rt2_sim')
        if not per_episode:
            bag = out / f'{split}_seed{seed}-{seed + episodes - 1}'
            recorder.start_bag(bag, storage, distro, first_episode=recorder.episode + 1)
            single_open = True
        for k in range(int(episodes)):
            episode_seed = int(seed) + k
            if per_episode:
                bag = out / f'{split}_seed{episode_seed:06d}'
                recorder.start_bag(bag, storage, distro, first_episode=recorder.episode + 1)
            try:
                info = episodes_client.start(seed=episode_seed, family=family or None)
            except ValueError as exc:
                raise RuntimeError(str(exc)) from None
            expert.follow(info['episode'])
            started = time.monotonic()
            finished = _wait(lambda: expert.episode_id == info['episode']
                             and expert.finished.is_set(), episode_timeout_s)
            # Let the final state (and success) reach the bag.
            _wait(lambda: expert.states_after_finish >= 3, 2.0)
            with expert.lock:
                state = expert.state or {}
                status = expert.status if finished else 'timeout'
                decisions = expert.decisions
            result = {'seed': episode_seed, 'split': split, 'family': info['task']['family'],
                      'instruction': info['instruction'], 'success': bool(state.get('success')),
                      'status': status, 'decisions': decisions,
                      'seconds': round(time.monotonic() - started, 2), 'bag': str(bag)}
            if per_episode:
                result['messages'] = recorder.finish_bag()
            results.append(result)
            log(f'episode {k + 1}/{episodes} seed {episode_seed}: '
                f'{"success" if result["success"] else "FAILURE"} ({status}, {decisions} '
                f'decisions) "{info["instruction"]}" -> {bag}')
        if single_open:
            counts = recorder.finish_bag()
            single_open = False
            for result in results:
                result['messages_in_bag'] = counts
    finally:
        if single_open:
            recorder.finish_bag()
        executor.shutdown()
        if spinner is not None:
            spinner.join(timeout=5.0)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        _stop(sim)
        sim_log.close()
    (out / 'index.json').write_text(json.dumps(results, indent=1) + '\n', encoding='utf-8')
    return results


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

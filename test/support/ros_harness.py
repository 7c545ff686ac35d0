"""
A harness for testing ROS nodes from the outside: real processes, real DDS, waits with timeouts.

Two parts, usable on their own:

- NodeProcess starts an executable (by default rt2_controller from this environment) in its
  own process, with a namespace and parameters (written to a params file), captures its output
  to a log file and stops it with SIGINT (SIGKILL after a timeout).

      with NodeProcess('rt2_controller', namespace='/robot1',
                       params={'policy.url': url, 'control_rate_hz': 50.0}) as node:
          node.wait_for_log('active', timeout=20)

- RosHarness is an rclpy node in the test process (own context, own executor thread) that
  plays the robot and the operator: it publishes camera images (one, or a stream at a rate with
  fresh stamps), instructions (transient local), ee_pose, e-stop; records any topic into a
  Recorder; calls ~/enable, ~/reset, lifecycle transitions and parameter changes.

      with RosHarness(namespace='/robot1') as h:
          twists = h.record('servo/delta_twist_cmds', TwistStamped)
          h.start_camera(rate_hz=30)
          h.publish_instruction('pick up the block')
          h.call_enable(True)
          msg = twists.wait_for(lambda m: m.twist.linear.x > 0, timeout=5)

Recorder entries are Received(wall, msg): `wall` is when the middleware received the message
in this process (rclpy's MessageInfo; time.time() where an rmw gives none), the same clock as
ROS stamps (system time) and as the scripted policy server's request log, so latencies between
the three can be computed. Nothing here sleeps to synchronize: waits are on conditions with
timeouts (DDS discovery, which has no event, is polled).
"""
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from rt2_ros.params_file import params_file_text

DEFAULT_NAMESPACE = '/rt2'
NODE_NAME = 'rt2_controller'


# ---------------------------------------------------------------- the node process

# Processes started and not yet stopped (including ones that died): a failed test reports them.
STARTED: 'set[NodeProcess]' = set()


def write_params_file(params: Dict[str, Any], path: Path, node_name: str = NODE_NAME) -> Path:
    """Write a ROS 2 params file for node_name (any namespace) and return its path."""
    path.write_text(params_file_text(node_name, params))
    return path


def executable_path(name: str) -> List[str]:
    """Return the console script next to this Python (the entry point), or python -m."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    modules = {'rt2_controller': 'rt2_ros.controller.node', 'rt2_sim': 'rt2_ros.sim.node'}
    return [sys.executable, '-m', modules[name]]


class NodeProcess:
    """An executable in its own process with a namespace, parameters and a captured log."""

    def __init__(self, executable: str = NODE_NAME, namespace: str = DEFAULT_NAMESPACE,
                 params: Optional[Dict[str, Any]] = None, ros_args: Sequence[str] = (),
                 env: Optional[Dict[str, str]] = None, node_name: str = NODE_NAME) -> None:
        self.executable = executable
        self.namespace = namespace
        self.params = dict(params or {})
        self.ros_args = list(ros_args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env.setdefault('PYTHONUNBUFFERED', '1')
        self.node_name = node_name
        self._dir = tempfile.TemporaryDirectory(prefix='rt2_node_')
        self.log_path = Path(self._dir.name) / 'node.log'
        self.process: Optional[subprocess.Popen] = None

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. /rt2/rt2_controller."""
        return self.namespace.rstrip('/') + '/' + self.node_name

    def command(self) -> List[str]:
        args = executable_path(self.executable) + ['--ros-args', '-r',
                                                   f'__ns:={self.namespace}']
        if self.params:
            path = write_params_file(self.params, Path(self._dir.name) / 'params.yaml',
                                     self.node_name)
            args += ['--params-file', str(path)]
        return args + self.ros_args

    def start(self) -> 'NodeProcess':
        self._log = open(self.log_path, 'w')
        self.process = subprocess.Popen(self.command(), stdout=self._log,
                                        stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        STARTED.add(self)
        return self

    def post_mortem(self, lines: int = 120, timeout: float = 3.0) -> str:
        """
        Return the log's tail, after asking a live process for every thread's stack (SIGUSR1).

        For a failed test: a node that stopped commanding but did not exit is stuck somewhere,
        and rt2_controller prints its stacks on SIGUSR1 (see enable_stack_dumps).
        """
        if self.process is None:
            return 'not started'
        if self.alive() and self.executable == NODE_NAME:
            before = len(self.log())
            self.process.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + timeout
            size = -1
            # the dump is complete once it has started and the log stopped growing for a poll
            while time.monotonic() < deadline:
                log = self.log()
                if 'most recent call first' in log[before:] and len(log) == size:
                    break
                size = len(log)
                time.sleep(0.05)  # polling a file another process writes
        status = ('running' if self.alive()
                  else f'exited with status {self.process.returncode}')
        tail = '\n'.join(self.log().splitlines()[-lines:])
        return f'{self.fqn} (pid {self.process.pid}) {status}; log tail:\n{tail}'

    def log(self) -> str:
        return self.log_path.read_text(errors='replace') if self.log_path.exists() else ''

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """Wait until the log contains text; raise with the log tail on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if text in log:
                return log
            if not self.alive():
                raise RuntimeError(f'{self.executable} exited ({self.process.returncode}) '
                                   f'before logging {text!r}:\n{log[-4000:]}')
            if time.monotonic() > deadline:
                raise TimeoutError(f'{text!r} not in the log after {timeout} s:\n{log[-4000:]}')
            time.sleep(0.05)  # polling a file another process writes

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGINT (what Ctrl-C and ros2 launch send), SIGKILL after timeout; return the code."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        STARTED.discard(self)
        return self.process.returncode

    def __enter__(self) -> 'NodeProcess':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self._dir.cleanup()


# ---------------------------------------------------------------- recording

class Received(NamedTuple):
    wall: float
    msg: Any


class Recorder:
    """Messages of one topic in arrival order, with waits on a condition."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._items: List[Received] = []
        self._cond = threading.Condition()

    def _add(self, msg: Any, info: Any) -> None:
        # Arrival is when the middleware received the sample in this process (rclpy's
        # MessageInfo), not when this process's executor got round to the callback: a test
        # process busy with its camera thread, a policy server or the GIL would otherwise add
        # its own delay to the node's measured latency. 0 (an rmw without it): the wall clock.
        received_ns = int(info.get('received_timestamp') or 0) if info else 0
        wall = received_ns * 1e-9 if received_ns else time.time()
        with self._cond:
            self._items.append(Received(wall, msg))
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def mark(self) -> int:
        """Index of the next message (pass as since= to look only at what comes after)."""
        return len(self)

    def items(self, since: int = 0) -> List[Received]:
        with self._cond:
            return list(self._items[since:])

    def messages(self, since: int = 0) -> List[Any]:
        return [item.msg for item in self.items(since)]

    def last(self) -> Optional[Any]:
        with self._cond:
            return self._items[-1].msg if self._items else None

    def wait_for(self, predicate: Callable[[Any], bool] = lambda msg: True,
                 timeout: float = 10.0, since: int = 0) -> Received:
        """First message at index >= since satisfying predicate (waits for it to arrive)."""
        deadline = time.monotonic() + timeout
        index = since
        with self._cond:
            while True:
                while index < len(self._items):
                    if predicate(self._items[index].msg):
                        return self._items[index]
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f'no matching message on {self.topic} within {timeout} s '
                                       f'({len(self._items) - since} received)')
                self._cond.wait(remaining)

    def wait_count(self, count: int, timeout: float = 10.0, since: int = 0) -> List[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._items) - since < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f'{len(self._items) - since} of {count} messages on '
                                       f'{self.topic} within {timeout} s')
                self._cond.wait(remaining)
            return list(self._items[since:since + count])

    def wait_quiet(self, seconds: float, timeout: float = 10.0) -> bool:
        """Wait until no message arrived for `seconds` (True), or timeout passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                last = self._items[-1].wall if self._items else 0.0
                quiet_until = time.monotonic() + seconds - max(0.0, time.time() - last)
                if time.monotonic() >= quiet_until:
                    return True
                if time.monotonic() >= deadline:
                    return False
                self._cond.wait(min(quiet_until, deadline) - time.monotonic())

    def quiet_for(self, seconds: float, since: Optional[int] = None) -> bool:
        """Wait `seconds`; True when no message arrived meanwhile (for 'publishes nothing')."""
        start = len(self) if since is None else since
        deadline = time.monotonic() + seconds
        with self._cond:
            while time.monotonic() < deadline:
                if len(self._items) > start:
                    return False
                self._cond.wait(deadline - time.monotonic())
            return len(self._items) == start


# ---------------------------------------------------------------- the harness node

def make_test_image(width: int, height: int, encoding: str = 'rgb8', seed: int = 0) -> bytes:
    """Return a deterministic image buffer (a gradient with a square) in an 8-bit encoding."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                    np.full_like(x, (seed * 37) % 256)], axis=-1).astype(np.uint8)
    rgb[height // 3:height // 2, width // 3:width // 2] = (220, 30, 30)
    if encoding == 'bgr8':
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(rgb).tobytes()


class RosHarness:
    """Publishes a robot's inputs to a namespaced node and records its outputs."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE, node_name: str = NODE_NAME,
                 harness_name: str = 'rt2_test_harness') -> None:
        self.namespace = namespace.rstrip('/') or ''
        self.target = f'{self.namespace}/{node_name}'
        self.harness_name = harness_name
        self._camera_stop = threading.Event()
        self._camera_thread: Optional[threading.Thread] = None
        self._streams: Dict[str, Tuple[threading.Event, threading.Thread]] = {}
        self.camera_frames = 0
        self.last_image_stamp: Optional[float] = None

    # -- set-up ------------------------------------------------------------------------------
    def start(self) -> 'RosHarness':
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(self.harness_name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()
        self._publishers: Dict[str, Any] = {}
        self._subscriptions: List[Any] = []
        self._clients: Dict[str, Any] = {}
        return self

    def _spin_loop(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except (ExternalShutdownException, RuntimeError):
            pass

    def stop(self) -> None:
        self.stop_camera()
        for name in list(self._streams):
            self._stop_stream(name)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._spin.join(5.0)

    def __enter__(self) -> 'RosHarness':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def topic(self, name: str) -> str:
        """Resolve a topic relative to the namespace; '~/x' means the target node's ~/x."""
        if name.startswith('/'):
            return name
        if name.startswith('~/'):
            return f'{self.target}/{name[2:]}'
        return f'{self.namespace}/{name}'

    def now(self) -> float:
        return time.time()

    # -- publishing --------------------------------------------------------------------------
    def publisher(self, name: str, msg_type: Any, qos: Any = None) -> Any:
        from rclpy.qos import QoSProfile
        key = self.topic(name)
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(
                msg_type, key, qos if qos is not None else QoSProfile(depth=10))
        return self._publishers[key]

    def wait_for_subscribers(self, name: str, msg_type: Any, count: int = 1,
                             timeout: float = 20.0, qos: Any = None,
                             probe: Any = None) -> None:
        """
        Wait until `count` subscribers matched this publisher.

        DDS discovery is one-sided: the publisher can see a subscriber before that subscriber
        has matched the publisher, and a reliable message sent then arrives only after a
        retransmission (a few hundred ms on a loaded machine). With `probe` (a message the
        subscribers may receive without effect) the wait also publishes it and waits for
        every subscriber's acknowledgement, which it can send only once it has matched.
        """
        from rclpy.duration import Duration
        publisher = self.publisher(name, msg_type, qos)
        deadline = time.monotonic() + timeout
        while publisher.get_subscription_count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f'no subscriber on {self.topic(name)} after {timeout} s')
            time.sleep(0.02)  # DDS discovery has no event to wait on
        if probe is not None:
            publisher.publish(probe)
            # Polled: rclpy holds the GIL inside wait_for_all_acked (Jazzy and Kilted), and a
            # late acknowledgement waits for the writer's next heartbeat (3 s in Fast DDS), so
            # one long wait froze this whole process (camera threads, recorders) that long.
            while not publisher.wait_for_all_acked(Duration(seconds=0)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f'{self.topic(name)}: the probe was not acknowledged '
                                       f'within {timeout} s')
                time.sleep(0.02)  # an acknowledgement has no event to wait on either

    def stamp(self, seconds: Optional[float] = None) -> Any:
        from builtin_interfaces.msg import Time
        seconds = time.time() if seconds is None else seconds
        return Time(sec=int(seconds), nanosec=int(round((seconds % 1.0) * 1e9)) % 1_000_000_000)

    def publish_image(self, width: int = 64, height: int = 48, encoding: str = 'rgb8',
                      stamp: Optional[float] = None, compressed: bool = False,
                      seed: int = 0, frame_id: str = 'camera') -> float:
        """Publish one camera frame (sensor-data QoS); return its stamp in seconds."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image
        stamp = time.time() if stamp is None else stamp
        data = make_test_image(width, height, 'rgb8' if compressed else encoding, seed)
        if compressed:
            import cv2
            rgb = np.frombuffer(data, np.uint8).reshape(height, width, 3)
            ok, encoded = cv2.imencode('.jpg', rgb[:, :, ::-1])
            msg = CompressedImage(format='jpeg', data=encoded.tobytes())
            publisher = self.publisher('camera/image_raw/compressed', CompressedImage,
                                       qos_profile_sensor_data)
        else:
            msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                        step=width * 3, data=data)
            publisher = self.publisher('camera/image_raw', Image, qos_profile_sensor_data)
        msg.header.stamp = self.stamp(stamp)
        msg.header.frame_id = frame_id
        publisher.publish(msg)
        self.camera_frames += 1
        self.last_image_stamp = stamp
        return stamp

    def start_camera(self, rate_hz: float = 30.0, stamp_offset: float = 0.0,
                     **image_args: Any) -> None:
        """
        Publish frames at rate_hz on a thread until stop_camera().

        Stamps are fresh (time.time()) plus stamp_offset: a camera whose clock is wrong.
        """
        self.stop_camera()
        self._camera_stop.clear()

        def run() -> None:
            period = 1.0 / rate_hz
            next_time = time.monotonic()
            while not self._camera_stop.is_set():
                self.publish_image(stamp=time.time() + stamp_offset, **image_args)
                next_time += period
                self._camera_stop.wait(max(0.0, next_time - time.monotonic()))

        self._camera_thread = threading.Thread(target=run, daemon=True)
        self._camera_thread.start()

    def stop_camera(self) -> Optional[float]:
        """Stop the stream; return the stamp of the last frame sent."""
        if self._camera_thread is not None:
            self._camera_stop.set()
            self._camera_thread.join(5.0)
            self._camera_thread = None
        return self.last_image_stamp

    def publish_instruction(self, text: str) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.publisher('instruction', String, qos).publish(String(data=text))

    def publish_pose(self, position: Sequence[float], orientation: Sequence[float] = (0, 0, 0, 1),
                     frame_id: str = 'base_link', stamp: Optional[float] = None) -> None:
        from geometry_msgs.msg import PoseStamped
        msg = PoseStamped()
        msg.header.stamp = self.stamp(stamp)
        msg.header.frame_id = frame_id
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = \
            (float(v) for v in position)
        (msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z,
         msg.pose.orientation.w) = (float(v) for v in orientation)
        self.publisher('ee_pose', PoseStamped).publish(msg)

    def _start_stream(self, name: str, publish: Callable[[], None], rate_hz: float) -> None:
        """Call publish() at rate_hz on a thread until _stop_stream(name)."""
        self._stop_stream(name)
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                publish()
                stop.wait(1.0 / rate_hz)

        thread = threading.Thread(target=run, daemon=True)
        self._streams[name] = (stop, thread)
        thread.start()

    def _stop_stream(self, name: str) -> None:
        stop, thread = self._streams.pop(name, (None, None))
        if stop is not None:
            stop.set()
            thread.join(5.0)

    def start_pose_stream(self, position_fn: Callable[[], Sequence[float]],
                          rate_hz: float = 50.0) -> None:
        """Publish ee_pose from position_fn() at rate_hz (e.g. a simulated arm's position)."""
        self._start_stream('pose', lambda: self.publish_pose(position_fn()), rate_hz)

    def stop_pose_stream(self) -> None:
        self._stop_stream('pose')

    def publish_joint_states(self, positions: Dict[str, float],
                             stamp: Optional[float] = None) -> None:
        """Publish one sensor_msgs/JointState (joint name -> position, fresh stamp by default)."""
        from sensor_msgs.msg import JointState
        msg = JointState()
        msg.header.stamp = self.stamp(stamp)
        msg.name = list(positions)
        msg.position = [float(v) for v in positions.values()]
        self.publisher('joint_states', JointState).publish(msg)

    def start_joint_stream(self, positions_fn: Callable[[], Dict[str, float]],
                           rate_hz: float = 50.0) -> None:
        """Publish joint_states from positions_fn() at rate_hz, as a robot's driver does."""
        self._start_stream('joints', lambda: self.publish_joint_states(positions_fn()), rate_hz)

    def stop_joint_stream(self) -> None:
        self._stop_stream('joints')

    def publish_estop(self, pressed: bool) -> float:
        from std_msgs.msg import Bool
        sent = time.time()
        self.publisher('estop', Bool).publish(Bool(data=bool(pressed)))
        return sent

    # -- recording ---------------------------------------------------------------------------
    def record(self, name: str, msg_type: Any, qos: Any = None) -> Recorder:
        """Subscribe to a topic (relative to the namespace, '~/x' for the node's) and record."""
        from rclpy.qos import QoSProfile
        recorder = Recorder(self.topic(name))
        subscription = self.node.create_subscription(
            msg_type, self.topic(name), recorder._add,
            qos if qos is not None else QoSProfile(depth=100))
        self._subscriptions.append(subscription)
        return recorder

    def record_latched(self, name: str, msg_type: Any) -> Recorder:
        """Record a transient-local topic (gets the last value published before subscribing)."""
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        return self.record(name, msg_type, qos)

    # -- services ----------------------------------------------------------------------------
    def call(self, service: str, srv_type: Any, request: Any, timeout: float = 10.0) -> Any:
        """Call a service (relative names resolve like topics) and wait for the response."""
        name = self.topic(service)
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'service {name} not available within {timeout} s')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f'service {name} did not answer within {timeout} s')
        return future.result()

    def call_enable(self, enabled: bool, timeout: float = 10.0) -> Any:
        from std_srvs.srv import SetBool
        return self.call('~/enable', SetBool, SetBool.Request(data=bool(enabled)), timeout)

    def call_reset(self, timeout: float = 10.0) -> Any:
        from std_srvs.srv import Trigger
        return self.call('~/reset', Trigger, Trigger.Request(), timeout)

    def lifecycle_state(self, timeout: float = 10.0) -> str:
        from lifecycle_msgs.srv import GetState
        return self.call('~/get_state', GetState, GetState.Request(), timeout).current_state.label

    def lifecycle_transition(self, label: str, timeout: float = 20.0) -> bool:
        """
        Trigger a transition by label.

        configure, activate, deactivate, cleanup, shutdown (from inactive), shutdown_active,
        shutdown_unconfigured.
        """
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        ids = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE,
               'deactivate': Transition.TRANSITION_DEACTIVATE,
               'cleanup': Transition.TRANSITION_CLEANUP,
               'shutdown': Transition.TRANSITION_INACTIVE_SHUTDOWN,
               'shutdown_active': Transition.TRANSITION_ACTIVE_SHUTDOWN,
               'shutdown_unconfigured': Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        request = ChangeState.Request()
        request.transition.id = ids[label]
        return bool(self.call('~/change_state', ChangeState, request, timeout).success)

    def set_parameters(self, values: Dict[str, Any], timeout: float = 10.0) -> List[Any]:
        """Set the target node's parameters; return SetParametersResult per value."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return list(self.call('~/set_parameters', SetParameters, request, timeout).results)

    def set_parameters_atomically(self, values: Dict[str, Any], timeout: float = 10.0) -> Any:
        """Set several parameters in one all-or-nothing change (for ones checked together)."""
        from rcl_interfaces.srv import SetParametersAtomically
        from rclpy.parameter import Parameter
        request = SetParametersAtomically.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self.call('~/set_parameters_atomically', SetParametersAtomically, request,
                         timeout).result

    def get_parameters(self, names: Sequence[str], timeout: float = 10.0) -> Dict[str, Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        response = self.call('~/get_parameters', GetParameters,
                             GetParameters.Request(names=list(names)), timeout)
        return {n: parameter_value_to_python(v) for n, v in zip(names, response.values)}

"""
The demo as one ROS 2 process: rt2_sim, rt2_controller and an observer in one executor.

Manual composition: the three are ordinary rclpy nodes built in this process with their own
context and parameter overrides, spun by one executor of the kind the controller uses on its own
(rt2_ros.ros.executors; single-threaded by default), and they talk over the same
topics as separate processes do (DDS), so what the demo shows is the real loop - camera ->
controller -> policy -> safety stage -> servo twist -> sim. Nothing bypasses the safety stage:
the observer only listens (topics, plus the controller's decision and safety listeners for the
numbers topics do not carry: per-decision latency and the safety stage's input).

The episodes are driven through the sim's ~/reset service (SimEpisodeClient); an episode ends
when the sim reports success, the policy terminates it, or a decision or time limit is hit.
Everything runs under the demo's namespace (default /rt2_demo), so a real robot listening on the
usual topics on the same ROS domain never receives the demo's commands.
"""
from dataclasses import dataclass, field
import json
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from geometry_msgs.msg import TwistStamped
import numpy as np
import rclpy
from rclpy.executors import Executor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.logging import LoggingSeverity
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rt2_ros.controller.core import ReplyOutcome
from rt2_ros.controller.inference import InferenceReply
from rt2_ros.controller.node import ControllerNode, LATCHED, ParameterError, SWITCH_INTERVAL_S
from rt2_ros.controller.safety import MotionCommand, SafeCommand
from rt2_ros.demo.media import caption, result_card, VideoFrame
from rt2_ros.demo.plan import DemoSettings, PlannedEpisode, PolicyChoice
from rt2_ros.demo.results import EpisodeResult
from rt2_ros.ros.convert import image_msg_to_rgb, stamp_seconds
from rt2_ros.ros.executors import make_executor
from rt2_ros.sim.episode_client_node import SimEpisodeClient
from rt2_ros.sim.limits import SIM_DECISION_PARAMS, SIM_LIMIT_PARAMS, SIM_PROPRIOCEPTION_PARAMS
from rt2_ros.sim.node import SimNode
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String

RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
CLAMP_CAUSES = ('linear_speed', 'angular_speed', 'workspace')
RESULT_CARD_S = 1.5
# Controller settings of the demo (the user's --param values win): actuate from the start
# (it is a simulator), no rviz markers (nobody looks at them here), and the simulator's limits
# and decision presets, as every other rollout in the simulator has.
DEMO_CONTROLLER_PARAMETERS = {'enabled_on_start': True, 'viz.rate_hz': 0.0, **SIM_LIMIT_PARAMS,
                              **SIM_DECISION_PARAMS, **SIM_PROPRIOCEPTION_PARAMS}
# A local model shares the CPU with the sim: one torch thread is the fastest (docs/backends.md).
DEMO_LOCAL_PARAMETERS = {'policy.extra.torch_threads': 1}


class DemoError(RuntimeError):
    """The demo could not run (the controller did not configure, the sim did not answer)."""


@dataclass
class _Episode:
    """Live bookkeeping of the running episode (guarded by the observer's condition)."""

    result: EpisodeResult
    sim_episode: int
    start_clock: float
    success: bool = False
    started: bool = False
    terminated: bool = False
    frames: List[Tuple[float, np.ndarray]] = field(default_factory=list)


class DemoObserver(Node):
    """Listens to the sim and the controller and keeps what the report, video and plot need."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('rt2_demo', **kwargs)
        self.cond = threading.Condition()
        self.origin: Optional[float] = None
        self.episode: Optional[_Episode] = None
        self.commanded: List[Tuple[float, np.ndarray, np.ndarray]] = []
        self.clamped: List[Tuple[float, np.ndarray, np.ndarray]] = []
        self.camera: Optional[Image] = None
        self.new_frame = False
        self.create_subscription(String, 'rt2_sim/episode', self._on_sim_episode, LATCHED)
        self.create_subscription(Bool, 'rt2_controller/terminated', self._on_terminated,
                                 LATCHED)
        self.create_subscription(TwistStamped, 'servo/delta_twist_cmds', self._on_twist,
                                 RELIABLE_10)
        self.create_subscription(Image, 'rt2_controller/annotated_image', self._on_annotated,
                                 RELIABLE_10)
        self.create_subscription(Image, 'camera/image_raw', self._on_camera,
                                 qos_profile_sensor_data)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def relative(self, t: float) -> float:
        return t - (self.origin or 0.0)

    # -- episodes ----------------------------------------------------------------------------
    def begin(self, planned: PlannedEpisode, info: Dict[str, Any]) -> None:
        now = self.now()
        with self.cond:
            if self.origin is None:
                self.origin = now
            result = EpisodeResult(planned.index, planned.split, planned.family, planned.seed,
                                   info.get('instruction', ''), start_s=self.relative(now))
            self.episode = _Episode(result, int(info.get('episode', -1)), now)

    def end(self, outcome: str) -> Tuple[EpisodeResult, List[Tuple[float, np.ndarray]]]:
        with self.cond:
            episode, self.episode = self.episode, None
            camera = self.camera
        result = episode.result
        result.end_s = self.relative(self.now())
        result.success = episode.success
        result.outcome = 'success' if episode.success else outcome
        frames = list(episode.frames)
        if camera is not None and frames:
            width = frames[-1][1].shape[1]
            picture = image_msg_to_rgb(camera, None)
            height = int(round(picture.shape[0] * width / picture.shape[1]))
            import cv2
            frames.append((result.end_s, cv2.resize(picture, (width, height),
                                                    interpolation=cv2.INTER_NEAREST)))
        return result, frames

    def status(self) -> Dict[str, Any]:
        with self.cond:
            episode = self.episode
            if episode is None:
                return {}
            return {'success': episode.success, 'terminated': episode.terminated,
                    'decisions': episode.result.decisions}

    # -- topics ------------------------------------------------------------------------------
    def _on_sim_episode(self, msg: String) -> None:
        info = json.loads(msg.data)
        with self.cond:
            episode = self.episode
            if episode is not None and info.get('episode') == episode.sim_episode \
                    and info.get('success'):
                episode.success = True
                self.cond.notify_all()

    def _on_terminated(self, msg: Bool) -> None:
        with self.cond:
            episode = self.episode
            if episode is None:
                return
            if not msg.data:
                episode.started = True  # the controller began an episode after our reset
            elif episode.started:
                episode.terminated = True
                self.cond.notify_all()

    def _on_twist(self, msg: TwistStamped) -> None:
        t = stamp_seconds(msg.header.stamp)
        linear = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z])
        angular = np.array([msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z])
        with self.cond:
            if self.origin is not None:
                self.clamped.append((self.relative(t), linear, angular))

    def _on_annotated(self, msg: Image) -> None:
        stamp = stamp_seconds(msg.header.stamp)
        picture = image_msg_to_rgb(msg, None)
        with self.cond:
            episode = self.episode
            if episode is not None and stamp >= episode.start_clock:
                episode.frames.append((self.relative(stamp), picture))
                self.new_frame = True
                self.cond.notify_all()

    def _on_camera(self, msg: Image) -> None:
        self.camera = msg  # the newest frame, for the episode's result card

    # -- controller listeners (worker and control threads) -----------------------------------
    def on_decision(self, reply: InferenceReply, outcome: ReplyOutcome) -> None:
        with self.cond:
            episode = self.episode
            if episode is None or reply.request.stamp < episode.start_clock:
                return
            result = episode.result
            if outcome.accepted:
                result.decisions += 1
                result.latencies_s.append(float(reply.latency_s))
                self.cond.notify_all()
            elif reply.error is not None:
                result.policy_failures += 1
                result.last_failure = outcome.detail or outcome.reason

    def on_safety(self, now: float, proposed: MotionCommand, safe: SafeCommand) -> None:
        with self.cond:
            if self.origin is None:
                return
            self.commanded.append((self.relative(now),
                                   np.asarray(proposed.linear, dtype=float).copy(),
                                   np.asarray(proposed.angular, dtype=float).copy()))
            episode = self.episode
            if episode is not None:
                episode.result.ticks += 1
                if any(cause in CLAMP_CAUSES for cause in safe.interventions):
                    episode.result.clamped_ticks += 1

    def latest_frame(self) -> Optional[np.ndarray]:
        with self.cond:
            self.new_frame = False
            episode = self.episode
            return episode.frames[-1][1] if episode is not None and episode.frames else None


@dataclass
class DemoRun:
    """What run_demo returns: results per episode, frames for the video, series for the plot."""

    results: List[EpisodeResult]
    frames: List[VideoFrame]
    commanded: List[Tuple[float, np.ndarray, np.ndarray]]
    clamped: List[Tuple[float, np.ndarray, np.ndarray]]
    limits: Dict[str, float]
    controller_parameters: Dict[str, Any]
    interrupted: bool = False


def _parameters(values: Dict[str, Any]) -> List[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items()]


def _video_frames(result: EpisodeResult, frames: List[Tuple[float, np.ndarray]],
                  total: int, policy_label: str) -> List[VideoFrame]:
    """Caption the episode's frames and close it with a result card."""
    if not frames:
        return []
    from rt2_ros.demo.media import frame_durations
    from rt2_ros.demo.results import OUTCOMES
    stamps = [t for t, _ in frames]
    durations = frame_durations(stamps, 0.1)
    label = f'episode {result.index + 1}/{total}: {result.family}, {result.split} seed ' \
            f'{result.seed}'
    instruction = f'"{result.instruction}"'
    policy = f'policy: {policy_label}'
    out = []
    for (t, image), duration in zip(frames[:-1], durations):
        text = f'{label}, t {t - result.start_s:4.1f} s'
        out.append(VideoFrame(caption(image, [text, instruction, policy]), duration))
    verdict = OUTCOMES['success'] if result.success else OUTCOMES.get(result.outcome, '')
    card = result_card(frames[-1][1], result.success,
                       f'{verdict}, {result.decisions} decisions')
    out.append(VideoFrame(caption(card, [label, instruction, policy]), RESULT_CARD_S))
    return out


def run_demo(settings: DemoSettings, policy: PolicyChoice,
             log: Callable[[str], None] = print,
             on_frame: Optional[Callable[[np.ndarray], None]] = None) -> DemoRun:
    """
    Run the planned episodes closed loop; raise DemoError when the demo cannot run.

    on_frame (main thread) receives each new annotated frame, for a live view.
    KeyboardInterrupt ends the run early: what ran so far is returned (interrupted = True).
    """
    # Everything shares one process here, and an in-process model's forward pass re-takes the
    # GIL after every torch op: at the default 5 ms switch interval, behind the renderer's
    # Python, a 36 ms decision took 0.4-0.9 s (p50) and the episodes crawled; rt2_controller's
    # own executable uses the same 1 ms. Restored when the demo ends.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        return _run_demo(settings, policy, log, on_frame)
    finally:
        sys.setswitchinterval(switch_interval)


def _run_demo(settings: DemoSettings, policy: PolicyChoice, log: Callable[[str], None],
              on_frame: Optional[Callable[[np.ndarray], None]]) -> DemoRun:
    plan = settings.plan
    first = plan[0]
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    nodes: List[Node] = []
    executor: Optional[Executor] = None
    spinner: Optional[threading.Thread] = None
    spinning = threading.Event()
    controller: Optional[ControllerNode] = None
    common = {'context': context, 'namespace': settings.namespace}
    level = LoggingSeverity.INFO if settings.verbose else LoggingSeverity.ERROR
    prefix = settings.namespace.strip('/').replace('/', '.')
    for name in ('rt2_sim', 'rt2_controller', 'rt2_demo'):
        rclpy.logging.set_logger_level(f'{prefix}.{name}' if prefix else name, level)
    try:
        sim = SimNode(**common, parameter_overrides=_parameters({
            'split': first.split, 'family': first.family, 'seed': first.seed,
            'variation': first.variation, 'camera_rate_hz': float(settings.camera_rate_hz)}))
        nodes.append(sim)
        controller_values = dict(DEMO_CONTROLLER_PARAMETERS)
        if policy.parameters.get('policy.backend') == 'local':
            controller_values.update(DEMO_LOCAL_PARAMETERS)
        controller_values.update(policy.parameters)
        controller_values.update(settings.controller_overrides)
        try:
            controller = ControllerNode(**common,
                                        parameter_overrides=_parameters(controller_values))
        except ParameterError as exc:
            raise DemoError(f'invalid controller parameters: {exc}') from None
        nodes.append(controller)
        observer = DemoObserver(**common)
        nodes.append(observer)
        controller.add_decision_listener(observer.on_decision)
        log(f'configuring rt2_controller with {policy.label} ...')
        loaded = time.monotonic()
        if controller.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise DemoError('rt2_controller could not configure (the policy did not load; '
                            'the reason is in the log line above)')
        took = time.monotonic() - loaded
        if controller_values.get('policy.backend') == 'local':
            log(f'policy loaded in {took:.1f} s')
        else:
            log(f'controller configured in {took:.1f} s (the server is asked per decision)')
        controller.core.safety.add_listener(observer.on_safety)
        limits = {'max_linear_speed': controller.core.safety.limits.max_linear_speed,
                  'max_angular_speed': controller.core.safety.limits.max_angular_speed}
        if controller.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise DemoError('rt2_controller could not activate')
        # The controller's own executor choice (its `executor` parameter, rt2_ros.ros.executors):
        # what the demo shows is how the node runs on a robot.
        executor, _ = make_executor(controller.get_parameter('executor').value, context)
        for node in nodes:
            executor.add_node(node)

        def spin() -> None:
            while spinning.is_set() and context.ok():
                executor.spin_once(timeout_sec=0.1)

        spinning.set()
        spinner = threading.Thread(target=spin, name='rt2-demo-executor', daemon=True)
        spinner.start()
        client = SimEpisodeClient(observer, 'rt2_sim')
        if not client.wait_ready(10.0):
            raise DemoError('rt2_sim did not offer its reset service')
        run = DemoRun([], [], [], [], limits, controller_values)
        try:
            for planned in plan:
                result, frames = _run_episode(planned, client, observer, settings, on_frame)
                run.results.append(result)
                run.frames.extend(_video_frames(result, frames, len(plan), policy.label))
                log(_episode_report(result, len(plan)))
        except KeyboardInterrupt:
            run.interrupted = True
            if observer.episode is not None:
                result, frames = observer.end('interrupted')
                run.results.append(result)
                run.frames.extend(_video_frames(result, frames, len(plan), policy.label))
                log(_episode_report(result, len(plan)))
        with observer.cond:
            run.commanded = list(observer.commanded)
            run.clamped = list(observer.clamped)
        return run
    finally:
        spinning.clear()
        _shutdown(context, executor, spinner, controller, nodes)


def _episode_report(result: EpisodeResult, total: int) -> str:
    from rt2_ros.demo.results import episode_line
    line = episode_line(result, total)
    line += f'\n        "{result.instruction}"'
    if result.last_failure and not result.decisions:
        line += f'\n        last policy error: {result.last_failure}'
    return line


def _run_episode(planned: PlannedEpisode, client: SimEpisodeClient, observer: DemoObserver,
                 settings: DemoSettings,
                 on_frame: Optional[Callable[[np.ndarray], None]]
                 ) -> Tuple[EpisodeResult, List[Tuple[float, np.ndarray]]]:
    try:
        info = client.start(seed=planned.seed, split=planned.split, family=planned.family,
                            variation=planned.variation)
    except (ValueError, RuntimeError, TimeoutError) as exc:
        raise DemoError(f'rt2_sim did not start episode {planned.index + 1}: {exc}') from None
    observer.begin(planned, info)
    deadline = time.monotonic() + settings.episode_timeout_s
    outcome = 'timeout'
    while True:
        with observer.cond:
            observer.cond.wait(0.05)
            fresh = observer.new_frame
        status = observer.status()
        if on_frame is not None and fresh:
            frame = observer.latest_frame()
            if frame is not None:
                on_frame(frame)
        if status['success']:
            outcome = 'success'
            break
        if status['terminated']:
            # The task may have been completed by the last executed step: let the sim say so.
            with observer.cond:
                observer.cond.wait_for(lambda: observer.episode.success, 0.3)
            outcome = 'terminated'
            break
        if status['decisions'] >= settings.max_decisions:
            outcome = 'max_decisions'
            break
        if time.monotonic() > deadline:
            break
    return observer.end(outcome)


def _shutdown(context, executor, spinner, controller, nodes) -> None:
    """Stop spinning, let running callbacks finish, stop the arm, destroy the nodes."""
    try:
        if spinner is not None:
            spinner.join(timeout=5.0)
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if controller is not None and controller.core is not None:
            controller.trigger_shutdown()  # final stop, then the policy workers are released
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)

"""
rt2_controller: camera + instruction in, safe arm, gripper and base commands out.

A managed (lifecycle) node, thin on purpose: the decisions live in ControllerCore (pure,
unit-tested), the policy calls in worker threads (rt2_ros.controller.inference), the safety
checks in SafetyStage and the actuator publishers in rt2_ros.ros.actuators. What this module
adds is the ROS wiring:

- configure: read and check parameters, load the action space, build the policy clients,
  create publishers, subscriptions, services and timers. activate: motion may start.
  deactivate: halt (zero commands for a few cycles). cleanup/shutdown: tear down.
- Callbacks only record data (an image callback stores the message reference - no conversion);
  the control timer asks the core whether a decision is due and hands the newest image to an
  inference worker, then publishes what the core says for this tick with a fresh stamp.
- The control clock runs on its own thread with absolute deadlines (rt2_ros.controller.ticker)
  on wall-clock time, and as an rclpy timer under sim time (it must follow /clock). A lock makes
  a tick - compute and publish - and the e-stop mutually exclusive, so a motion command computed
  before an e-stop can never be published after the e-stop's stop command.
- The executor is rclpy's single-threaded one (parameter `executor`; rt2_ros.ros.executors
  says why): the multi-threaded executor's spinning held the control thread's GIL for tens of
  milliseconds. Two callback groups keep the e-stop and the sim-time control timer apart from
  images, services and diagnostics when `executor: multi_threaded` is chosen.
- SIGINT/SIGTERM are handled here rather than by rclpy, so a stop command still goes out before
  the context shuts down.
- The node can be composed in another process (`rt2 demo` builds it with a context and parameter
  overrides); add_decision_listener lets such a host see each decision and its latency.
"""
import faulthandler
import math
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
import numpy as np
from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult,
)
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy,
)
from rclpy.signals import SignalHandlerOptions
from rt2_ros.actions import ActionSpaceError, load_action_space
from rt2_ros.controller import params as P
from rt2_ros.controller.annotate import annotate
from rt2_ros.controller.core import ControllerCore, CoreConfig, ReplyOutcome, TickOutput
from rt2_ros.controller.inference import InferencePool, InferenceReply, InferenceRequest
from rt2_ros.controller.mapping import ActionMapper
from rt2_ros.controller.proprioception import fresh_opening, GripperReading, joint_position
from rt2_ros.controller.safety import SafetyStage
from rt2_ros.controller.ticker import SteadyTicker
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.factory import backend_class
from rt2_ros.policy.settings import redact
from rt2_ros.ros.actuators import ActuatorOutputs
from rt2_ros.ros.convert import (
    action_array, build_observation, pose_sample, stamp_seconds,
)
from rt2_ros.ros.diagnostics import build_diagnostics
from rt2_ros.ros.executors import make_executor
from rt2_ros.ros.inputs import AnyDurabilitySubscription, STATE_STREAM_QOS
from rt2_ros.ros.markers import build_markers
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from visualization_msgs.msg import MarkerArray

NODE_NAME = 'rt2_controller'
EXTRA_PREFIX = 'policy.extra.'
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_10 = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
SWITCH_INTERVAL_S = 0.0002


class ParameterError(ValueError):
    """Start-up parameters are invalid; the message lists every reason."""


def _descriptor(spec: P.ParamSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.unit:
        text += f' [{spec.unit}]'
    if spec.startup:
        text += ' (read at start-up)'
    else:
        text += ' (live)' if spec.live else ' (applied at configure)'
    descriptor = ParameterDescriptor(name=spec.name, description=text, read_only=spec.startup)
    if spec.kind == 'double[]':
        descriptor.dynamic_typing = True  # [] has no element type; checked by params.py
        descriptor.additional_constraints = '[] or [x, y, z]'
    elif spec.low is not None and spec.kind == 'double':
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.low), to_value=float(spec.high), step=0.0)]
    elif spec.low is not None and spec.kind == 'int':
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.low), to_value=int(spec.high), step=1)]
    if spec.choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    return descriptor


def _coerce(spec: P.ParamSpec, value: Any) -> Any:
    """Accept 50 for 50.0 (and integer lists for double lists), as users write YAML."""
    if spec.kind == 'double' and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if spec.kind == 'double[]' and isinstance(value, (list, tuple)):
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):
            return list(value)
    return value


class ControllerNode(LifecycleNode):
    """The rt2_controller lifecycle node (see module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.finalized = threading.Event()
        self._actuator_lock = threading.Lock()
        self._control_lock = threading.Lock()  # one tick or one e-stop at a time (see above)
        self._closing = False
        self._declare_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._control_group = MutuallyExclusiveCallbackGroup()
        self._io_group = MutuallyExclusiveCallbackGroup()
        self._rt: Optional[Dict[str, Any]] = None
        self.core: Optional[ControllerCore] = None
        self._decision_listeners: List[Callable[[InferenceReply, ReplyOutcome], None]] = []
        self._state_pub = self.create_publisher(String, '~/state', LATCHED)
        self._publish_state('unconfigured')

    # -- parameters --------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        overrides = getattr(self, '_parameter_overrides', {})  # rclpy keeps them there
        errors: List[str] = []
        for spec in P.PARAMS:
            value = spec.default
            if spec.name in overrides:
                value = _coerce(spec, overrides[spec.name].value)
                problem = P.check_value(spec, value)
                if problem:
                    errors.append(problem)
                    value = spec.default
            self.declare_parameter(spec.name, value, _descriptor(spec), ignore_override=True)
        self._extra_names = []
        for name, parameter in overrides.items():
            if name.startswith(EXTRA_PREFIX) and len(name) > len(EXTRA_PREFIX):
                self.declare_parameter(name, parameter.value, ParameterDescriptor(
                    name=name, dynamic_typing=True,
                    description='Backend-specific policy option (PolicyConfig.extra)'),
                    ignore_override=True)
                self._extra_names.append(name)
        unknown = [n for n in overrides if n not in P.BY_NAME and not n.startswith(EXTRA_PREFIX)
                   and n not in ('use_sim_time', 'start_type_description_service')
                   and not n.startswith('qos_overrides.')]
        for name in unknown:
            errors.append(f'{name} is not a parameter of {NODE_NAME} (`rt2 params` lists them)')
        if not errors:
            errors = P.check_all(self.values())
        if errors:
            raise ParameterError('; '.join(errors))

    def values(self) -> Dict[str, Any]:
        """Return the current parameter values by name (lists as plain lists)."""
        out = {}
        for spec in P.PARAMS:
            value = self.get_parameter(spec.name).value
            if spec.kind == 'double[]':
                value = [] if value is None else list(value)
            out[spec.name] = value
        return out

    def _on_set_parameters(self, changes: List[Parameter]) -> SetParametersResult:
        values = self.values()
        for change in changes:
            spec = P.BY_NAME.get(change.name)
            if spec is None:
                if change.name.startswith(EXTRA_PREFIX) or change.name == 'use_sim_time':
                    continue
                return SetParametersResult(successful=False,
                                           reason=f'{change.name} is not a parameter')
            value = change.value
            if spec.kind == 'double[]':
                value = [] if value is None else list(value)
            problem = P.check_value(spec, value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            values[change.name] = value
        errors = P.check_all(values)
        if errors:
            return SetParametersResult(successful=False, reason='; '.join(errors))
        if self.core is not None and any(P.BY_NAME.get(c.name) and P.BY_NAME[c.name].live
                                         for c in changes):
            try:
                self._apply_live(values)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _extra(self) -> Dict[str, Any]:
        return {name[len(EXTRA_PREFIX):]: self.get_parameter(name).value
                for name in self._extra_names}

    # -- derived settings --------------------------------------------------------------------
    def _decision_period(self, values: Dict[str, Any], space) -> float:
        period = float(values['decision_period_s'])
        return period if period > 0 else 1.0 / space.nominal_rate_hz

    def _core_config(self, values: Dict[str, Any], decision_period: float,
                     control_rate: float, output_mode: str, max_in_flight: int) -> CoreConfig:
        return CoreConfig(
            control_period_s=1.0 / control_rate,
            decision_period_s=decision_period,
            image_timeout_s=values['watchdog.image_timeout_s'],
            policy_watchdog_s=values['policy.timeout_s'] + values['watchdog.policy_grace_s'],
            clock_timeout_s=values['watchdog.clock_timeout_s'],
            halt_cycles=int(values['halt.zero_cycles']),
            auto_resume=bool(values['halt.auto_resume']),
            request_threshold=values['inference.request_threshold'],
            latency_aware=bool(values['inference.latency_aware']),
            max_in_flight=max_in_flight,
            retry_interval_s=values['inference.retry_interval_s'],
            max_result_age_s=values['inference.max_result_age_s'],
            output_mode=output_mode,
            merge=values['chunk.merge'],
            merge_weight=values['chunk.merge_weight'],
            align=values['chunk.align'])

    def _apply_live(self, values: Dict[str, Any]) -> None:
        rt = self._rt
        gripper = P.gripper_map(values)
        limits = P.safety_limits(values)
        config = self._core_config(values, rt['decision_period'], rt['control_rate'],
                                   rt['output_mode'], rt['max_in_flight'])
        self.core.mapper.gripper = gripper
        self.core.safety.set_limits(limits)
        self.core.update_config(config)
        rt['viz'] = (values['viz.annotated_image'], values['viz.arrow_scale'])

    def _policy_config(self, values: Dict[str, Any]) -> PolicyConfig:
        return PolicyConfig(
            backend=values['policy.backend'], url=values['policy.url'],
            timeout_s=values['policy.timeout_s'],
            connect_timeout_s=values['policy.connect_timeout_s'],
            model_path=values['policy.model_path'], unnorm_key=values['policy.unnorm_key'],
            action_space=values['action_space'], api_key_env=values['policy.api_key_env'],
            prompt_template=values['policy.prompt_template'],
            model_name=values['policy.model_name'], verify_tls=values['policy.verify_tls'],
            ca_cert=values['policy.ca_cert'], device=values['policy.device'],
            extra=self._extra())

    def _make_policies(self, config: PolicyConfig, count: int) -> list:
        # built-in, plug-in (entry point) or module:Class: one registry (rt2_ros.policy.factory)
        cls = backend_class(config.backend)
        policies = [cls(config) for _ in range(count)]
        for policy in policies:  # a backend that reads topics (the sim's expert) gets the node
            attach = getattr(policy, 'attach_node', None)
            if attach is not None:
                attach(self)
        return policies

    # -- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any failure must leave the node unconfigured
            self.get_logger().error(f'configure failed: {type(exc).__name__}: {redact(str(exc))}')
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        self._publish_state('inactive')
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        self._closing = False
        values = self.values()
        space = load_action_space(values['action_space'])
        decision_period = self._decision_period(values, space)
        control_rate = float(values['control_rate_hz'])
        gripper = P.gripper_map(values)
        mapper = ActionMapper(space, decision_period, gripper)
        safety = SafetyStage(P.safety_limits(values))
        output_mode = values['output.mode']
        policy_config = self._policy_config(values)
        max_in_flight = int(values['inference.max_in_flight'])
        if policy_config.backend == 'local':
            max_in_flight = 1  # one model in memory
        config = self._core_config(values, decision_period, control_rate, output_mode,
                                   max_in_flight)
        policies = self._make_policies(policy_config, max_in_flight)
        for policy in policies:
            if policy.space.names != space.names:
                raise ActionSpaceError(
                    f'policy speaks action space {policy.space.name} '
                    f'({" ".join(policy.space.names)}), controller expects {space.name}')
        core = ControllerCore(mapper, safety, config)
        core.set_enabled(bool(values['enabled_on_start']))
        frame_id = values['output.frame_id']
        rt: Dict[str, Any] = {
            'space': space, 'decision_period': decision_period, 'control_rate': control_rate,
            'output_mode': output_mode, 'max_in_flight': max_in_flight, 'frame_id': frame_id,
            'viz': (values['viz.annotated_image'], values['viz.arrow_scale']),
            'size': (values['image.width'], values['image.height'])
            if values['image.width'] else None,
        }
        self._rt = rt
        self.core = core
        rt['pool'] = InferencePool(policies, self._on_reply, self._on_worker_idle)
        rt['actuators'] = ActuatorOutputs(self, frame_id, output_mode, mapper.has_gripper,
                                          mapper.has_base)
        rt['action_pub'] = self.create_publisher(Float64MultiArray, '~/action', RELIABLE_10)
        rt['terminated_pub'] = self.create_publisher(Bool, '~/terminated', LATCHED)
        rt['markers_pub'] = self.create_publisher(MarkerArray, '~/markers', RELIABLE_10)
        rt['annotated_pub'] = self.create_publisher(Image, '~/annotated_image', RELIABLE_10)
        rt['diag_pub'] = self.create_publisher(DiagnosticArray, '/diagnostics', RELIABLE_10)
        subs = []
        if values['image.compressed']:
            subs.append(self.create_subscription(
                CompressedImage, 'camera/image_raw/compressed', self._on_image,
                qos_profile_sensor_data, callback_group=self._io_group))
        else:
            subs.append(self.create_subscription(
                Image, 'camera/image_raw', self._on_image, qos_profile_sensor_data,
                callback_group=self._io_group))
        # Volatile and latched instruction publishers alike; best-effort pose streams too.
        rt['instruction_in'] = AnyDurabilitySubscription(
            self, String, 'instruction', self._on_instruction, callback_group=self._io_group)
        subs.append(self.create_subscription(PoseStamped, 'ee_pose', self._on_pose,
                                             STATE_STREAM_QOS, callback_group=self._io_group))
        subs.append(self.create_subscription(Bool, 'estop', self._on_estop, RELIABLE_10,
                                             callback_group=self._control_group))
        rt['gripper_joint'] = values['proprioception.gripper_joint']
        rt['gripper_reading'] = None
        if rt['gripper_joint']:
            subs.append(self.create_subscription(
                JointState, 'joint_states', self._on_joint_states, STATE_STREAM_QOS,
                callback_group=self._io_group))
        rt['subs'] = subs
        rt['services'] = [
            self.create_service(SetBool, '~/enable', self._on_enable,
                                callback_group=self._io_group),
            self.create_service(Trigger, '~/reset', self._on_reset,
                                callback_group=self._io_group),
        ]
        timers = []
        if self.get_parameter('use_sim_time').value:
            timers.append(self.create_timer(1.0 / control_rate, self._on_control_tick,
                                            callback_group=self._control_group))
        else:
            rt['ticker'] = SteadyTicker(1.0 / control_rate, self._on_control_tick,
                                        name='rt2_control', on_error=self._on_tick_error,
                                        realtime_priority=values['control.realtime_priority'])
        if values['viz.rate_hz'] > 0:
            timers.append(self.create_timer(1.0 / values['viz.rate_hz'], self._on_viz_tick,
                                            callback_group=self._io_group))
        timers.append(self.create_timer(values['diagnostics.period_s'], self._on_diagnostics,
                                        callback_group=self._io_group))
        if self.get_parameter('use_sim_time').value:
            # The control timer follows sim time and stops with it; this one does not.
            self._clock_seen = (None, time.monotonic())
            timers.append(self.create_timer(
                min(0.01, 1.0 / control_rate), self._on_clock_watchdog,
                callback_group=self._control_group, clock=Clock(clock_type=ClockType.STEADY_TIME)))
        rt['timers'] = timers
        if 'ticker' in rt:
            rt['ticker'].start()
            if rt['ticker'].priority_error:
                self.get_logger().warning(
                    f'{rt["ticker"].priority_error}; the control thread runs at normal priority')
        self.get_logger().info(
            f'configured: policy {policy_config.backend} {redact(policy_config.url)}, action '
            f'space {space.name}, decision period {decision_period:.3f} s, control '
            f'{control_rate:g} Hz, output {output_mode} in {frame_id}, '
            f'{"ENABLED" if core.enabled else "dry run (call ~/enable)"}')

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.activate(self._now())
        self._publish_state(self.core.machine.state.value)
        self.get_logger().info('active')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        core = self.core
        with self._control_lock:
            core.deactivate(self._now())
            # The whole stop sequence goes out now, while the actuator publishers are still
            # enabled: once inactive, nothing reaches an actuator topic (lifecycle publishers).
            for _ in range(core.config.halt_cycles + 1):
                if not core.stop_pending:
                    break
                self._publish_tick(core.tick(self._now()))
        self.get_logger().info('deactivated: stopped')
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        self._publish_state('unconfigured')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_now()
        self._teardown()
        self._publish_state('finalized')
        self.finalized.set()  # main() exits: a finalized lifecycle node has nothing left to do
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_now()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        ticker = (self._rt or {}).get('ticker')
        if ticker is not None and not ticker.stop(timeout=1.0):
            self.get_logger().warning('the control thread did not stop within 1 s')
        rt, self._rt = self._rt, None
        self.core = None
        if not rt:
            return
        for timer in rt.get('timers', []):
            self.destroy_timer(timer)
        for sub in rt.get('subs', []):
            self.destroy_subscription(sub)
        if 'instruction_in' in rt:
            rt['instruction_in'].destroy()
        for service in rt.get('services', []):
            self.destroy_service(service)
        for key in ('action_pub', 'terminated_pub', 'markers_pub', 'annotated_pub', 'diag_pub'):
            if key in rt:
                self.destroy_publisher(rt[key])
        if 'actuators' in rt:
            rt['actuators'].destroy()
        if 'pool' in rt and not rt['pool'].close(timeout=1.0):
            self.get_logger().warning('a policy call was still running at cleanup; abandoned')

    def stop_now(self) -> None:
        """Send one stop command at once if the actuators were being driven (shutdown path)."""
        rt, core = self._rt, self.core
        if rt is None or core is None:
            return
        with self._control_lock:
            out = core.shutdown_stop(self._now())
            if out.command is not None or out.pose_target is not None:
                self._actuate(out.command, False, out.pose_target, final=True)
        with self._actuator_lock:
            self._closing = True

    def _actuate(self, command, publish_gripper: bool = False, pose_target=None,
                 final: bool = False) -> None:
        """
        Publish to the actuators, serialized with shutdown.

        The control tick computes under the core's lock but publishes outside it; without this
        lock a tick computed just before shutdown could publish motion after the final stop.
        """
        rt = self._rt
        with self._actuator_lock:
            if self._closing or rt is None:
                return
            rt['actuators'].publish(self.get_clock().now().to_msg(), command, publish_gripper,
                                    pose_target)
            if final:
                self._closing = True
                rt['actuators'].flush(0.5)  # a reliable stop must leave before the process

    # -- helpers -----------------------------------------------------------------------------
    def add_decision_listener(
            self, listener: Callable[[InferenceReply, ReplyOutcome], None]) -> None:
        """
        Call listener(reply, outcome) for every policy reply, after the node has handled it.

        For a host process that composes this node (rt2 demo reports decisions and latency per
        episode). It runs on an inference worker thread and must only record.
        """
        self._decision_listeners.append(listener)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_state(self, text: str) -> None:
        self._state_pub.publish(String(data=text))

    # -- callbacks ---------------------------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        core = self.core
        if core is not None:
            core.on_image(stamp_seconds(msg.header.stamp), self._now(), msg)

    def _on_instruction(self, msg: String) -> None:
        core = self.core
        if core is None:
            return
        started = core.on_instruction(msg.data, self._now())
        shown = msg.data if len(msg.data) <= 200 else \
            f'{msg.data[:200]}... ({len(msg.data)} chars)'
        self.get_logger().info(
            f'instruction {shown!r}: '
            f'{"episode " + str(core.machine.episode) if started else core.machine.state.value}')

    def _on_pose(self, msg: PoseStamped) -> None:
        rt, core = self._rt, self.core
        if core is None:
            return
        frame = msg.header.frame_id
        if frame and frame.lstrip('/') != rt['frame_id'].lstrip('/'):
            self.get_logger().warning(
                f'ignoring ee_pose in frame {frame!r}; expected {rt["frame_id"]!r}',
                throttle_duration_sec=5.0)
            return
        core.on_pose(pose_sample(msg, self._now()))

    def _on_joint_states(self, msg: JointState) -> None:
        rt, core = self._rt, self.core
        if core is None or rt is None:
            return
        position = joint_position(msg.name, msg.position, rt['gripper_joint'])
        if position is None:
            return  # another driver's joints on the same topic
        opening = core.mapper.gripper.openness(position)
        if opening is None:
            self.get_logger().warning(f'ignoring a non-finite {rt["gripper_joint"]} position',
                                      throttle_duration_sec=5.0)
            return
        stamp = stamp_seconds(msg.header.stamp) or self._now()
        rt['gripper_reading'] = GripperReading(opening, stamp)

    def _on_estop(self, msg: Bool) -> None:
        core = self.core
        if core is None:
            return
        with self._control_lock:
            command = core.on_estop(bool(msg.data), self._now())
            if command is not None:
                self._actuate(command)
        if msg.data:
            self.get_logger().warning(
                'E-STOP: halted and latched (release, then call ~/reset)',
                throttle_duration_sec=1.0)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        core = self.core
        if core is None:
            response.success = False
            response.message = 'not configured'
            return response
        core.set_enabled(bool(request.data))
        response.success = True
        response.message = ('enabled: commands go to the actuator topics' if request.data
                            else 'disabled: dry run, nothing is sent to actuators')
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        core = self.core
        if core is None:
            response.success, response.message = False, 'not configured'
            return response
        response.success, response.message = core.reset(self._now())
        self.get_logger().info(f'reset: {response.message}')
        return response

    def _on_control_tick(self) -> None:
        core = self.core
        if core is None:
            return
        with self._control_lock:
            now = self._now()
            ticket = core.poll_request(now)
            if ticket is not None:
                self._submit(ticket)
            self._publish_tick(core.tick(now))

    def _on_tick_error(self, exc: BaseException) -> None:
        """Log a failed tick; the next tick runs (the core halts on stale commands)."""
        self.get_logger().error(f'control tick failed: {type(exc).__name__}: {exc}',
                                throttle_duration_sec=1.0)

    def _on_clock_watchdog(self) -> None:
        """
        Check on the wall clock that sim time moves (the control timer stops with it).

        A clock that went back (a simulator or bag restarted) gets a control tick at once: the
        tick halts on the jump, and the timer on the node clock takes 30-220 ms to fire after
        one (measured with rclpy on kilted), more than the halt budget of a period plus 100 ms.
        """
        core = self.core
        if core is None:
            return
        now, wall = self._now(), time.monotonic()
        seen, since = self._clock_seen
        if now != seen:
            self._clock_seen = (now, wall)
            if seen is not None and now < seen:
                self._on_control_tick()
            return
        timeout = core.config.clock_timeout_s
        if timeout > 0 and wall - since > timeout:  # 0: time is held on purpose (lockstep)
            with self._control_lock:
                self._publish_tick(core.clock_stalled(now, wall - since))

    def _publish_tick(self, out: TickOutput) -> None:
        rt = self._rt
        if out.command is not None or out.pose_target is not None:
            self._actuate(out.command, out.publish_gripper, out.pose_target)
        if out.terminated is not None:
            rt['terminated_pub'].publish(Bool(data=out.terminated))
        for transition in out.transitions:
            label = transition.state.value + (f':{transition.cause}' if transition.cause else '')
            self._publish_state(label)
            text = (f'{transition.previous.value} -> {label}'
                    f'{" (" + transition.detail + ")" if transition.detail else ""}')
            if transition.state.value == 'running':
                self.get_logger().info(text)
            else:
                self.get_logger().warning(text)

    def _on_worker_idle(self) -> None:
        """
        Run on an inference worker that just finished: ask for the next decision at once.

        Without this the next request waits for the next control tick (10 ms on average at
        50 Hz), which a policy whose latency is close to the decision period cannot afford.
        """
        core = self.core
        if core is None or self._rt is None:
            return
        ticket = core.poll_request(self._now())
        if ticket is not None:
            self._submit(ticket)

    def _submit(self, ticket) -> None:
        rt, core = self._rt, self.core
        if rt is None or core is None:
            return  # torn down meanwhile (a worker thread may call this during cleanup)
        message = ticket.payload
        size = rt['size']
        pose = core.pose
        gripper = fresh_opening(rt['gripper_reading'], self._now(),
                                core.safety.limits.pose_timeout_s)

        def build() -> Observation:
            state = None
            if pose is not None:
                state = np.concatenate([pose.position, pose.orientation])
            return build_observation(message, size, ticket.instruction, ticket.stamp, state,
                                     gripper)

        request = InferenceRequest(ticket.ticket, ticket.episode, ticket.stamp, build,
                                   ticket.sent_at, frame_id=message.header.frame_id)
        if not rt['pool'].submit(request):
            core.cancel(ticket)

    def _on_reply(self, reply: InferenceReply) -> None:
        """Run on an inference worker thread."""
        rt, core = self._rt, self.core
        if core is None or rt is None:
            return
        outcome = core.on_reply(reply, self._now())
        if self._rt is not rt:
            return  # cleaned up meanwhile: the publishers are gone
        if outcome.accepted:
            result = outcome.result
            rt['action_pub'].publish(action_array(result.actions, result.names))
        elif outcome.reason not in ('abandoned', 'old_episode'):
            self.get_logger().warning(
                f'decision dropped: {outcome.reason}'
                f'{" (" + outcome.detail + ")" if outcome.detail else ""}',
                throttle_duration_sec=2.0)
        if rt['viz'][0] and reply.observation is not None:
            self._publish_annotated(reply, outcome)
        for listener in self._decision_listeners:
            listener(reply, outcome)

    def _publish_annotated(self, reply: InferenceReply, outcome: ReplyOutcome) -> None:
        rt, core = self._rt, self.core
        space = rt['space']
        snapshot_state = core.machine.state.value
        if core.machine.cause:
            snapshot_state += ':' + core.machine.cause
        values = None if reply.result is None else reply.result.actions[0]
        picture = annotate(reply.observation.image, reply.observation.instruction, space.names,
                           values, space.lows, space.highs, reply.latency_s, snapshot_state)
        msg = Image()
        msg.header.stamp.sec = int(math.floor(reply.request.stamp))
        msg.header.stamp.nanosec = int((reply.request.stamp % 1.0) * 1e9)
        msg.header.frame_id = reply.request.frame_id  # the camera's, as it came in
        msg.height, msg.width = picture.shape[:2]
        msg.encoding = 'rgb8'
        msg.step = msg.width * 3
        msg.data = picture.tobytes()
        rt['annotated_pub'].publish(msg)

    def _on_viz_tick(self) -> None:
        rt, core = self._rt, self.core
        if core is None:
            return
        snapshot = core.snapshot(self._now())
        step = snapshot['step']
        openness = None if step is None else core.mapper.gripper_openness(step.values)
        markers = build_markers(snapshot, rt['frame_id'], self.get_clock().now().to_msg(),
                                rt['decision_period'], rt['viz'][1], openness)
        rt['markers_pub'].publish(markers)

    def _on_diagnostics(self) -> None:
        rt, core = self._rt, self.core
        if core is None:
            return
        name = f'{NODE_NAME}: {self.get_fully_qualified_name()}'
        rt['diag_pub'].publish(build_diagnostics(core.snapshot(self._now()), name,
                                                 self.get_fully_qualified_name(),
                                                 self.get_clock().now().to_msg()))


def enable_stack_dumps() -> None:
    """
    Print every thread's stack to stderr on a crash, and on SIGUSR1 while running.

    A controller that stops commanding the arm but still answers services is stuck on a lock or
    a call; `kill -USR1 <pid>` shows where without stopping it (the test suite does this for
    every live node when a test fails).
    """
    faulthandler.enable(all_threads=True)
    if hasattr(signal, 'SIGUSR1'):
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


def main(args: Optional[List[str]] = None) -> int:
    """Entry point of the rt2_controller executable."""
    # Python hands the GIL to a waiting thread only every switch interval (5 ms by default): a
    # worker busy encoding an image could hold the control thread that long. At 0.2 ms the
    # control jitter's p99 was lower than at 1 ms in 11 of 12 side-by-side scenario pairs of
    # bench.control_loop, and the local backend's decision latency in the node did not change.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    enable_stack_dumps()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        node = ControllerNode()
    except ParameterError as exc:
        print(f'{NODE_NAME}: invalid parameters: {exc}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        executor, kind = make_executor(node.get_parameter('executor').value)
    except ValueError as exc:
        print(f'{NODE_NAME}: invalid parameters: {exc}', file=sys.stderr)
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    node.get_logger().info(f'executor: {kind}')
    executor.add_node(node)
    code = 0
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                # Stay up: the parameters can be fixed and configure tried again, as with any
                # managed node (a launch file or systemd would otherwise restart-loop it).
                node.get_logger().error(
                    'configure failed (see above): the node stays unconfigured; fix the '
                    f'parameters (ros2 param set {node.get_fully_qualified_name()} ...) and run '
                    f'ros2 lifecycle set {node.get_fully_qualified_name()} configure')
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                print(f'{NODE_NAME}: activate failed', file=sys.stderr)
                code = 1
        while code == 0 and not stop.is_set() and not node.finalized.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        try:
            node.stop_now()
            node._teardown()  # noqa: SLF001 - release workers and policies before exiting
        finally:
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())

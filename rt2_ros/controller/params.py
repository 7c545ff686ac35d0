"""
rt2_controller's parameters as data: name, default, unit, range, choices, description.

One table drives everything that must agree: the node declares its parameters from it (with
ParameterDescriptor descriptions and ranges), validates overrides and runtime changes against
it, the launch-file tests check that every parameter a launch file sets exists, and the docs'
parameter table is generated from it (a test keeps the two in step). No rclpy here.

`live` parameters take effect immediately when set at runtime; `startup` ones are read once when
the process starts (read-only afterwards); the others are read at configure time (deactivate,
clean up, configure and activate again to apply them).
"""
from dataclasses import dataclass
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

from rt2_ros.controller.mapping import GripperMap
from rt2_ros.controller.safety import SafetyLimits

EXECUTOR_KINDS = ('auto', 'events', 'single_threaded', 'multi_threaded')  # rt2_ros.ros.executors


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of rt2_controller."""

    name: str
    default: Any
    description: str
    unit: str = ''
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()
    live: bool = False
    startup: bool = False  # read once when the process starts: read-only on a running node

    @property
    def kind(self) -> str:
        if isinstance(self.default, bool):
            return 'bool'
        if isinstance(self.default, int):
            return 'int'
        if isinstance(self.default, float):
            return 'double'
        if isinstance(self.default, list):
            return 'double[]'
        return 'string'


P = ParamSpec
PARAMS: Tuple[ParamSpec, ...] = (
    P('policy.backend', 'openvla_http',
      'Policy backend: openvla_http, openai, openpi, local, expert (rt2_sim only), a plug-in '
      'registered under the rt2_ros.policy_backends entry point, or module:Class for your own '
      'rt2_ros.policy.base.Policy subclass'),
    P('policy.url', 'http://127.0.0.1:8000',
      'Server URL of a remote backend (OpenVLA REST, OpenAI-compatible, openpi websocket)'),
    P('policy.timeout_s', 2.0, 'Deadline for one policy answer; later = policy timeout halt',
      's', 0.01, 600.0),
    P('policy.connect_timeout_s', 1.0, 'Deadline for connecting to a remote policy', 's',
      0.01, 60.0),
    P('policy.model_path', '', 'Model directory or hub id for the local backend'),
    P('policy.unnorm_key', '', 'Dataset key for OpenVLA action un-normalization'),
    P('policy.api_key_env', '',
      'Name of the environment variable holding the API key (the key is never a parameter)'),
    P('policy.prompt_template', '',
      'Prompt: rt2, rt2_gripper, openvla or a string with {instruction} (and optionally '
      "{gripper}); empty = the checkpoint's own, else the backend's default"),
    P('policy.model_name', '', 'Model name sent to OpenAI-compatible servers'),
    P('policy.device', 'auto', 'Device of the local backend: auto, cpu, cuda, cuda:N'),
    P('policy.verify_tls', True, 'Verify TLS certificates of https/wss servers'),
    P('policy.ca_cert', '', 'CA bundle for a server with a private certificate'),
    P('action_space', 'rt2',
      'Action space preset (rt2, openvla, rt1_mobile) or the path of an action-space YAML'),
    P('decision_period_s', 0.0,
      'Seconds one action step spans (its displacement is executed over it); 0 = the action '
      "space's 1 / nominal_rate_hz", 's', 0.0, 60.0),
    P('control_rate_hz', 50.0, 'Rate of the command stream to the robot', 'Hz', 1.0, 1000.0),
    P('control.realtime_priority', 50,
      "SCHED_FIFO priority of the control thread, 1..99, as ros2_control's thread_priority "
      '(needs CAP_SYS_NICE or an rtprio limit; a warning and normal priority without; not '
      'under use_sim_time); 0 = normal priority', '', 0, 99),
    P('limits.max_linear_speed', 0.1, 'End-effector speed limit', 'm/s', 0.0, 10.0,
      live=True),
    P('limits.max_angular_speed', 0.5, 'End-effector angular speed limit', 'rad/s', 0.0, 20.0,
      live=True),
    P('limits.max_base_linear_speed', 0.2, 'Mobile base speed limit', 'm/s', 0.0, 10.0,
      live=True),
    P('limits.max_base_angular_speed', 0.5, 'Mobile base turn-rate limit', 'rad/s', 0.0,
      20.0, live=True),
    P('limits.workspace_min', [], 'Lower corner [x, y, z] of the end-effector box in '
      'output.frame_id; [] = no box', 'm', live=True),
    P('limits.workspace_max', [], 'Upper corner [x, y, z] of the end-effector box; [] = no box',
      'm', live=True),
    P('limits.workspace_lookahead_s', 0.04,
      'How far ahead the workspace check extrapolates the commanded velocity', 's', 0.0, 5.0,
      live=True),
    P('limits.max_pose_lead_s', 0.5,
      'Pose mode: a target may lead the measured pose by at most speed limit x this', 's',
      0.01, 10.0, live=True),
    P('watchdog.image_timeout_s', 1.0,
      'Halt when the newest image header stamp is older than this or this far ahead of the '
      'clock, or no image arrived for this long', 's', 0.01, 60.0, live=True),
    P('watchdog.pose_timeout_s', 0.5,
      'An ee_pose older than this (or this far ahead, or not finite) is unknown (no motion when a '
      'workspace is set)', 's', 0.01, 60.0, live=True),
    P('watchdog.policy_grace_s', 0.5,
      'Extra time over policy.timeout_s before a hung request halts with policy_timeout', 's',
      0.0, 60.0, live=True),
    P('watchdog.clock_timeout_s', 0.06,
      'With use_sim_time: halt when sim time stands still this long on the wall clock '
      '(publish /clock faster than this); 0 = off, for lockstep harnesses that hold time',
      's', 0.0, 60.0, live=True),
    P('output.mode', 'twist',
      'twist: TwistStamped velocities on servo/delta_twist_cmds (MoveIt Servo); pose: '
      'PoseStamped targets on target_pose', choices=('twist', 'pose')),
    P('output.frame_id', 'base_link',
      'Frame of commands, workspace and ee_pose (the robot base)'),
    P('gripper.open_position', 1.0, 'Gripper joint position for a fully open gripper',
      live=True),
    P('gripper.closed_position', 0.0, 'Gripper joint position for a closed gripper', live=True),
    P('proprioception.gripper_joint', '',
      "Joint in joint_states whose position is the gripper's (between gripper.closed_position and "
      'gripper.open_position), for models whose prompt states the gripper (template '
      "{gripper}); a reading older than watchdog.pose_timeout_s is unknown; '' = not read"),
    P('image.compressed', False,
      'Subscribe to camera/image_raw/compressed (CompressedImage) instead of camera/image_raw'),
    P('image.width', 0, 'Resize images to this width before the policy; 0 = keep', 'px', 0,
      8192),
    P('image.height', 0, 'Resize images to this height before the policy; 0 = keep', 'px', 0,
      8192),
    P('halt.zero_cycles', 5,
      'Control cycles of zero commands published on a halt before going silent', '', 1, 1000,
      live=True),
    P('halt.auto_resume', True,
      'Resume by itself when a stale image, clock or policy fault clears; false = ~/reset '
      'needed',
      live=True),
    P('inference.request_threshold', 0.5,
      'Request the next decision when the planned motion left falls to this fraction of the '
      "last chunk (LeRobot's chunk_size_threshold)", '', 0.0, 1.0, live=True),
    P('inference.latency_aware', True,
      'Also request early enough for the observed policy latency (p90) to keep motion '
      'continuous', live=True),
    P('inference.max_in_flight', 1,
      'Concurrent policy requests (pipelining a slow remote server); local backend: 1', '',
      1, 16),
    P('inference.retry_interval_s', 0.5,
      'While halted on a policy fault, ask again this often', 's', 0.0, 60.0, live=True),
    P('inference.max_result_age_s', 0.0,
      'Drop decisions whose image is older than this when they arrive; 0 = off', 's', 0.0,
      60.0, live=True),
    P('chunk.merge', 'latest',
      'How overlapping decisions merge per step: latest, average or weighted',
      choices=('latest', 'average', 'weighted'), live=True),
    P('chunk.merge_weight', 0.7, 'Weight of the newer decision for chunk.merge = weighted', '',
      0.0, 1.0, live=True),
    P('chunk.align', 'auto',
      'Where a new chunk starts: arrival (first free slot), observation (step j at image time '
      '+ j x period), auto (arrival for single steps, observation for chunks)',
      choices=('auto', 'arrival', 'observation'), live=True),
    P('viz.rate_hz', 10.0, 'Rate of ~/markers; 0 = off', 'Hz', 0.0, 100.0),
    P('viz.annotated_image', True, 'Publish ~/annotated_image after each decision', live=True),
    P('viz.arrow_scale', 1.0, 'Marker arrow length per metre of displacement per decision', '',
      0.0, 100.0, live=True),
    P('diagnostics.period_s', 1.0, 'Period of /diagnostics messages', 's', 0.1, 60.0),
    P('enabled_on_start', False,
      'Publish to actuator topics from the start (false = dry run until ~/enable)'),
    P('autostart', True, 'Configure and activate at start-up (lifecycle transitions)'),
    P('executor', 'auto',
      'rclpy executor of the node: auto (= single_threaded), single_threaded, events '
      "(rclpy.experimental's EventsExecutor, Kilted and newer), multi_threaded (its busy "
      'spinning delays the control thread; see docs/latency.md)',
      choices=EXECUTOR_KINDS, startup=True),
)
BY_NAME: Dict[str, ParamSpec] = {p.name: p for p in PARAMS}


def names() -> List[str]:
    return [p.name for p in PARAMS]


def check_value(spec: ParamSpec, value: Any) -> Optional[str]:
    """Return why value is invalid for spec, or None."""
    kind = spec.kind
    if kind == 'bool':
        if not isinstance(value, bool):
            return f'{spec.name} must be true or false, got {value!r}'
        return None
    if kind in ('int', 'double'):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f'{spec.name} must be a number, got {value!r}'
        if kind == 'int' and not float(value).is_integer():
            return f'{spec.name} must be an integer, got {value!r}'
        if not math.isfinite(float(value)):
            return f'{spec.name} must be finite, got {value!r}'
        if spec.low is not None and value < spec.low or \
                spec.high is not None and value > spec.high:
            return f'{spec.name} = {value!r} is outside [{spec.low:g}, {spec.high:g}]'
        return None
    if kind == 'double[]':
        try:
            numbers = [float(v) for v in value]
        except (TypeError, ValueError):
            return f'{spec.name} must be a list of numbers, got {value!r}'
        if numbers and (len(numbers) != 3 or not all(math.isfinite(v) for v in numbers)):
            return f'{spec.name} must be [] or three finite numbers [x, y, z], got {value!r}'
        return None
    if not isinstance(value, str):
        return f'{spec.name} must be a string, got {value!r}'
    if spec.choices and value not in spec.choices:
        return f'{spec.name} = {value!r} is not one of {", ".join(spec.choices)}'
    if spec.name == 'policy.backend':
        from rt2_ros.policy.factory import backend_error
        error = backend_error(value)
        if error is not None:
            return f'policy.backend = {value!r}: {error}'
    if spec.name == 'action_space' and not value.strip():
        return 'action_space must name a preset or a YAML file'
    return None


def check_all(values: Mapping[str, Any]) -> List[str]:
    """Every reason the full set of values is invalid (single values and combinations)."""
    errors = []
    for spec in PARAMS:
        if spec.name in values:
            problem = check_value(spec, values[spec.name])
            if problem:
                errors.append(problem)
    if errors:
        return errors
    low = list(values.get('limits.workspace_min', []))
    high = list(values.get('limits.workspace_max', []))
    if bool(low) != bool(high):
        errors.append('limits.workspace_min and limits.workspace_max must both be set or '
                      'both be []')
    elif low:
        for axis, lo, hi in zip('xyz', low, high):
            if not float(lo) < float(hi):
                errors.append(f'workspace {axis}: limits.workspace_min {lo} must be below '
                              f'limits.workspace_max {hi}')
    if values.get('gripper.open_position') == values.get('gripper.closed_position') and \
            'gripper.open_position' in values:
        errors.append('gripper.open_position and gripper.closed_position must differ')
    if (values.get('image.width', 0) == 0) != (values.get('image.height', 0) == 0):
        errors.append('image.width and image.height must both be 0 or both be set')
    return errors


def defaults() -> Dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def gripper_map(values: Mapping[str, Any]) -> GripperMap:
    """Return the gripper's openness -> joint position map from the gripper.* parameters."""
    return GripperMap(values['gripper.open_position'], values['gripper.closed_position'])


def safety_limits(values: Mapping[str, Any]) -> SafetyLimits:
    """
    Return the safety stage's limits from parameter values (every name of PARAMS).

    The controller and the pure simulator's action executor both build their limits here, so
    a parameter means the same in a rollout as on the robot.
    """
    gripper = gripper_map(values)
    low = values['limits.workspace_min'] or None
    high = values['limits.workspace_max'] or None
    return SafetyLimits(
        max_linear_speed=values['limits.max_linear_speed'],
        max_angular_speed=values['limits.max_angular_speed'],
        max_base_linear_speed=values['limits.max_base_linear_speed'],
        max_base_angular_speed=values['limits.max_base_angular_speed'],
        workspace_min=None if low is None else tuple(float(v) for v in low),
        workspace_max=None if high is None else tuple(float(v) for v in high),
        gripper_min=gripper.low, gripper_max=gripper.high,
        pose_timeout_s=values['watchdog.pose_timeout_s'],
        lookahead_s=max(values['limits.workspace_lookahead_s'],
                        1.0 / values['control_rate_hz']),
        max_pose_lead_s=values['limits.max_pose_lead_s'])


def markdown_table() -> str:
    """Render the parameter table of docs/controller.md (`rt2 params` prints it)."""
    lines = ['| parameter | default | unit / range | live | description |',
             '|---|---|---|---|---|']
    for spec in PARAMS:
        default = spec.default
        if isinstance(default, bool):
            shown = 'true' if default else 'false'
        elif isinstance(default, str):
            shown = f"'{default}'"
        else:
            shown = str(default)
        parts = [spec.unit] if spec.unit else []
        if spec.low is not None:
            parts.append(f'{spec.low:g}..{spec.high:g}')
        if spec.choices:
            parts.append(' / '.join(spec.choices))
        extent = ', '.join(parts)
        live = 'yes' if spec.live else ('no, read at start-up' if spec.startup else '')
        lines.append(f'| `{spec.name}` | `{shown}` | {extent} | {live} | '
                     f'{spec.description} |')
    return '\n'.join(lines)

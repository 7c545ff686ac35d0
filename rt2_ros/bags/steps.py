"""
Decision steps from a recorded session: (camera frame, instruction in force, recorded action).

Both offline evaluation and dataset export need the same thing: what the robot saw and was told
at each decision, and what the expert (teleoperator or scripted) did next, in the action space's
units. Two sources of "what was done":

- an action topic (the sim's `expert/action`, Float64MultiArray in the space's order and units):
  one step per action message, with the latest frame at or before it;
- the executed commands (TwistStamped on `servo/delta_twist_cmds`, gripper `[position]` on
  `gripper/commands`): steps on a grid of one decision period T, the action being what the arm
  was commanded to do over [t, t + T] - docs/architecture.md's meaning read backwards: the twists
  integrated over the period give the displacement (each twist held until the next one or until
  it goes stale, as MoveIt Servo does), the integrated rotation vector gives roll/pitch/yaw, the
  gripper target in force at t + T gives the gripper value, and the last step of an episode (the
  instruction changes or the bag ends) is the terminate step, the RT-1 data convention.

Planning reads only the small topics and the image timestamps; images are decoded in a second
pass, one at a time, so an hour-long bag does not have to fit in memory.
"""
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from rt2_ros.actions import ActionSpace
from rt2_ros.actions.space import TERMINATE_LABEL
from rt2_ros.bags.errors import BagError
from rt2_ros.bags.images import image_to_rgb, IMAGE_TYPES
from rt2_ros.bags.reader import BagReader, TopicInfo
from rt2_ros.bags.rotations import matrix_to_rpy, rotvec_to_matrix
from rt2_ros.controller.mapping import GripperMap
from rt2_ros.controller.params import BY_NAME
from rt2_ros.controller.proprioception import fresh_opening, GripperReading, joint_position
from rt2_ros.sim.limits import SIM_GRIPPER_JOINT

STRING = 'std_msgs/msg/String'
TWIST_STAMPED = 'geometry_msgs/msg/TwistStamped'
FLOAT_ARRAY = 'std_msgs/msg/Float64MultiArray'
POSE_STAMPED = 'geometry_msgs/msg/PoseStamped'
JOINT_STATE = 'sensor_msgs/msg/JointState'
# A gripper reading older than this at a frame is no reading: the controller's default
# watchdog.pose_timeout_s, which it applies to proprioception too.
GRIPPER_MAX_AGE_S = float(BY_NAME['watchdog.pose_timeout_s'].default)
SERVO_TIMEOUT_S = 0.1


@dataclass
class StepOptions:
    """Which topics to read and how to turn commands into actions (CLI flags map 1:1)."""

    image_topic: Optional[str] = None
    instruction_topic: Optional[str] = None
    instruction: Optional[str] = None
    action_topic: Optional[str] = None
    twist_topic: Optional[str] = None
    gripper_topic: Optional[str] = None
    pose_topic: Optional[str] = None
    joint_topic: Optional[str] = None
    gripper_joint: str = SIM_GRIPPER_JOINT
    period_s: Optional[float] = None
    twist_timeout_s: float = SERVO_TIMEOUT_S
    gripper_closed_position: float = 0.0
    gripper_open_position: float = 1.0
    max_frame_age_s: Optional[float] = None
    use_actions: bool = True


@dataclass
class PlannedStep:
    time_ns: int
    frame: int
    frame_time_ns: int
    instruction: str
    episode: int
    action: np.ndarray
    terminate: Optional[bool]
    clipped: Tuple[str, ...] = ()


@dataclass
class DecisionStep:
    """One decision: what was seen and said, and what was done (NaN where the bag cannot say)."""

    index: int
    time_ns: int
    frame_time_ns: int
    image: np.ndarray
    instruction: str
    episode: int
    action: np.ndarray
    terminate: Optional[bool]
    clipped: Tuple[str, ...] = ()
    state: Optional[np.ndarray] = None
    gripper: Optional[float] = None


@dataclass
class StepPlan:
    """The steps of a bag before images are loaded, plus how they were derived."""

    space: ActionSpace
    image_topic: str
    instruction_source: str
    action_source: str
    period_s: float
    steps: List[PlannedStep]
    skipped: Dict[str, int] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    pose_times: List[int] = field(default_factory=list)
    poses: List[np.ndarray] = field(default_factory=list)
    gripper_times: List[int] = field(default_factory=list)
    gripper_openings: List[float] = field(default_factory=list)

    def state_at(self, time_ns: int) -> Optional[np.ndarray]:
        """
        Return the end-effector pose [x y z qx qy qz qw] last received at time_ns.

        That is what the controller passes to the policy as Observation.state; None when the bag
        has no ee_pose topic.
        """
        index = bisect_right(self.pose_times, time_ns) - 1
        return None if index < 0 else self.poses[index]

    def gripper_at(self, time_ns: int) -> Optional[float]:
        """
        Return the gripper's opening (0..1) last read from joint_states at time_ns.

        What the controller passes as Observation.gripper: None without a reading, or when the
        last one is older than GRIPPER_MAX_AGE_S.
        """
        index = bisect_right(self.gripper_times, time_ns) - 1
        if index < 0:
            return None
        reading = GripperReading(self.gripper_openings[index], self.gripper_times[index] / 1e9)
        return fresh_opening(reading, time_ns / 1e9, GRIPPER_MAX_AGE_S)

    def describe(self) -> Dict[str, object]:
        return {'image_topic': self.image_topic, 'instruction': self.instruction_source,
                'action_source': self.action_source, 'period_s': self.period_s,
                'steps': len(self.steps), 'skipped': dict(self.skipped),
                'episodes': len({s.episode for s in self.steps})}


def _pick(bag: BagReader, given: Optional[str], msgtypes: Sequence[str], suffixes: Sequence[str],
          what: str, flag: str, required: bool = True,
          any_name: bool = False) -> Optional[TopicInfo]:
    """
    Return the topic the user named, else the one topic with the usual name (and type).

    any_name also accepts a single topic of the right type under another name (a camera or twist
    stream is unambiguous by type; a String or Float64MultiArray topic is not).
    """
    if given:
        return bag.topic(given, msgtypes)
    candidates = bag.find_topics(msgtypes)
    pool = [t for t in candidates if t.name.endswith(tuple(suffixes))]
    if not pool and any_name:
        pool = candidates
    if len(pool) == 1:
        return pool[0]
    if not pool:
        if required:
            raise BagError('missing_topic', f'{bag.path} has no {what} topic '
                           f'({" or ".join(msgtypes)}); topics: '
                           f'{", ".join(bag.topics) or "none"}; name one with {flag}')
        return None
    names = ', '.join(t.name for t in pool)
    raise BagError('usage', f'{bag.path} has several {what} topics ({names}); choose one with '
                   f'{flag}')


def _read(bag: BagReader, topic: Optional[TopicInfo]) -> List[Tuple[int, object]]:
    if topic is None:
        return []
    bag.require_known(topic.name)
    return [(m.time_ns, bag.deserialize(m)) for m in bag.messages([topic.name])]


def _label_value(space: ActionSpace, terminate: bool) -> float:
    index = space.terminate_index
    labels = space.dimensions[index].labels
    if terminate:
        return float(labels.index(TERMINATE_LABEL))
    return float(next(i for i, label in enumerate(labels) if label != TERMINATE_LABEL))


def _terminate_flag(space: ActionSpace, value: float) -> Optional[bool]:
    index = space.terminate_index
    if index is None or not np.isfinite(value):
        return None
    labels = space.dimensions[index].labels
    label = int(round(value))
    if abs(value - label) > 1e-6 or not 0 <= label < len(labels):
        raise BagError('bad_message', f'recorded {space.names[index]} = {value!r} is not one of '
                       f'0..{len(labels) - 1}')
    return labels[label] == TERMINATE_LABEL


class TwistIntegrator:
    """
    Displacement and rotation commanded by a stream of twists over a time window.

    Each twist is held from its receive time until the next twist or until it is older than the
    timeout (MoveIt Servo halts on stale commands), whichever comes first.
    """

    def __init__(self, twists: Sequence[Tuple[int, np.ndarray, np.ndarray]],
                 timeout_s: float) -> None:
        self.times = [t for t, _, _ in twists]
        self.linear = [v for _, v, _ in twists]
        self.angular = [w for _, _, w in twists]
        self.timeout_ns = int(timeout_s * 1e9)

    def integrate(self, start_ns: int, end_ns: int) -> Tuple[np.ndarray, np.ndarray]:
        """Return (translation [m], rpy [rad]) commanded between start_ns and end_ns."""
        translation = np.zeros(3)
        rotation = np.eye(3)
        first = max(0, bisect_right(self.times, start_ns) - 1)
        for i in range(first, len(self.times)):
            held_from = self.times[i]
            if held_from >= end_ns:
                break
            held_to = held_from + self.timeout_ns
            if i + 1 < len(self.times):
                held_to = min(held_to, self.times[i + 1])
            overlap = (min(held_to, end_ns) - max(held_from, start_ns)) / 1e9
            if overlap <= 0:
                continue
            translation += self.linear[i] * overlap
            rotation = rotvec_to_matrix(self.angular[i] * overlap) @ rotation
        return translation, matrix_to_rpy(rotation)


def _vector(xyz: object) -> np.ndarray:
    return np.array([float(xyz.x), float(xyz.y), float(xyz.z)])


def plan_steps(bag: BagReader, space: ActionSpace, options: StepOptions) -> StepPlan:
    """Find the topics, read everything but the images, and lay out the decision steps."""
    period = options.period_s if options.period_s else 1.0 / space.nominal_rate_hz
    if period <= 0:
        raise BagError('usage', f'the decision period must be positive, got {period}')
    image = _pick(bag, options.image_topic, IMAGE_TYPES, ('camera/image_raw',
                                                          'image_raw/compressed'),
                  'camera image', '--image-topic', any_name=True)
    bag.require_known(image.name)
    frame_times = [m.time_ns for m in bag.messages([image.name])]
    if not frame_times:
        raise BagError('missing_topic', f'camera topic {image.name} has no messages')

    if options.instruction is not None:
        if not options.instruction.strip():
            raise BagError('usage', '--instruction must not be empty')
        instructions = [(0, options.instruction.strip())]
        instruction_source = 'given'
    else:
        topic = _pick(bag, options.instruction_topic, (STRING,), ('instruction',),
                      'instruction', '--instruction-topic', required=False)
        if topic is None:
            raise BagError('missing_topic', f'{bag.path} has no instruction topic (std_msgs/'
                           'String ending in "instruction"); pass --instruction TEXT or '
                           '--instruction-topic')
        instructions = [(t, str(m.data).strip()) for t, m in _read(bag, topic)]
        instructions = [(t, text) for t, text in instructions if text]
        if not instructions:
            raise BagError('missing_topic', f'instruction topic {topic.name} has no non-empty '
                           'messages; pass --instruction TEXT')
        instruction_source = topic.name

    action_topic = None
    if options.use_actions:
        if options.action_topic:
            action_topic = bag.topic(options.action_topic, (FLOAT_ARRAY,))
        else:
            found = [t for t in bag.find_topics((FLOAT_ARRAY,))
                     if t.name.endswith('expert/action')]
            action_topic = found[0] if len(found) == 1 else None
    plan = StepPlan(space, image.name, instruction_source, '', period, [])
    pose_topic = _pick(bag, options.pose_topic, (POSE_STAMPED,), ('ee_pose',), 'end-effector pose',
                       '--pose-topic', required=False)
    for time_ns, msg in _read(bag, pose_topic):
        pose = msg.pose
        plan.pose_times.append(time_ns)
        plan.poses.append(np.array([pose.position.x, pose.position.y, pose.position.z,
                                    pose.orientation.x, pose.orientation.y,
                                    pose.orientation.z, pose.orientation.w]))
    _read_gripper(bag, options, plan)
    max_age_ns = int((options.max_frame_age_s or max(2 * period, 0.5)) * 1e9)
    if action_topic is not None:
        plan.action_source = f'action topic {action_topic.name}'
        _plan_from_actions(bag, space, action_topic, frame_times, instructions, max_age_ns, plan)
    else:
        twist = _pick(bag, options.twist_topic, (TWIST_STAMPED,), ('delta_twist_cmds',),
                      'twist command', '--twist-topic', required=False, any_name=True)
        if twist is None:
            raise BagError('missing_topic', f'{bag.path} has neither an action topic '
                           '(Float64MultiArray expert/action, or --action-topic) nor twist '
                           'commands (TwistStamped, or --twist-topic) to compare with')
        gripper = _pick(bag, options.gripper_topic, (FLOAT_ARRAY,), ('gripper/commands',),
                        'gripper command', '--gripper-topic', required=False)
        plan.action_source = f'twists {twist.name} held over {period:g} s' + (
            f', gripper {gripper.name}' if gripper else ', no gripper topic')
        _plan_from_twists(bag, space, options, twist, gripper, frame_times, instructions,
                          max_age_ns, plan)
    return plan


def _read_gripper(bag: BagReader, options: StepOptions, plan: StepPlan) -> None:
    """Read the gripper joint's openings from joint_states (none: the bag has no such topic)."""
    topic = _pick(bag, options.joint_topic, (JOINT_STATE,), ('joint_states',), 'joint state',
                  '--joint-topic', required=False)
    scale = GripperMap(open_position=options.gripper_open_position,
                       closed_position=options.gripper_closed_position)
    for time_ns, msg in _read(bag, topic):
        position = joint_position(msg.name, msg.position, options.gripper_joint)
        opening = None if position is None else scale.openness(position)
        if opening is not None:
            plan.gripper_times.append(time_ns)
            plan.gripper_openings.append(opening)


def _instruction_at(instructions: List[Tuple[int, str]], times: List[int],
                    time_ns: int) -> Tuple[Optional[str], int]:
    """Instruction in force at time_ns and its episode number (index of the change)."""
    index = bisect_right(times, time_ns) - 1
    if index < 0:
        return None, -1
    return instructions[index][1], index


def _episode_starts(instructions: List[Tuple[int, str]]) -> List[Tuple[int, str]]:
    """
    Every instruction message starts an episode, as it does in rt2_controller.

    Only exact duplicates (same text within a millisecond: the latched value delivered twice to
    the recorder) are dropped.
    """
    kept: List[Tuple[int, str]] = []
    for time_ns, text in instructions:
        if kept and kept[-1][1] == text and time_ns - kept[-1][0] < 1_000_000:
            continue
        kept.append((time_ns, text))
    return kept


def _skip(plan: StepPlan, reason: str) -> None:
    plan.skipped[reason] = plan.skipped.get(reason, 0) + 1


def _plan_from_actions(bag: BagReader, space: ActionSpace, topic: TopicInfo,
                       frame_times: List[int], instructions: List[Tuple[int, str]],
                       max_age_ns: int, plan: StepPlan) -> None:
    starts = _episode_starts(instructions)
    start_times = [t for t, _ in starts]
    for time_ns, msg in _read(bag, topic):
        values = np.asarray(msg.data, dtype=np.float64).reshape(-1)
        if values.size != space.size:
            raise BagError('bad_message', f'{topic.name} carries {values.size} values but '
                           f'action space {space.name} has {space.size} '
                           f'({" ".join(space.names)}); pass the matching --space')
        frame = bisect_right(frame_times, time_ns) - 1
        if frame < 0 or time_ns - frame_times[frame] > max_age_ns:
            _skip(plan, 'no_recent_frame')
            continue
        text, episode = _instruction_at(starts, start_times, frame_times[frame])
        if text is None:
            _skip(plan, 'no_instruction')
            continue
        terminate = None
        if space.terminate_index is not None:
            terminate = _terminate_flag(space, values[space.terminate_index])
        plan.steps.append(PlannedStep(time_ns, frame, frame_times[frame], text, episode, values,
                                      terminate, _clipped(space, values)))


def _clipped(space: ActionSpace, values: np.ndarray) -> Tuple[str, ...]:
    names = []
    for dim, value in zip(space.dimensions, values):
        if not dim.is_discrete and np.isfinite(value) and \
                not dim.low - 1e-9 <= value <= dim.high + 1e-9:
            names.append(dim.name)
    return tuple(names)


def _plan_from_twists(bag: BagReader, space: ActionSpace, options: StepOptions,
                      twist_topic: TopicInfo, gripper_topic: Optional[TopicInfo],
                      frame_times: List[int], instructions: List[Tuple[int, str]],
                      max_age_ns: int, plan: StepPlan) -> None:
    unsupported = [d.name for d in space.dimensions
                   if d.role in ('base_translation', 'base_rotation', 'other')]
    if unsupported:
        plan.warnings.append(f'{", ".join(unsupported)} cannot be derived from arm twists; '
                             'they are left unknown (record an action topic for them)')
    twists = []
    frames = set()
    for time_ns, msg in _read(bag, twist_topic):
        twists.append((time_ns, _vector(msg.twist.linear), _vector(msg.twist.angular)))
        frames.add(str(msg.header.frame_id))
    if len(frames) > 1:
        plan.warnings.append(f'twists on {twist_topic.name} use several frames '
                             f'({", ".join(sorted(frames))}); they are added as if in one')
    integrator = TwistIntegrator(twists, options.twist_timeout_s)
    grippers = []
    span = options.gripper_open_position - options.gripper_closed_position
    if span == 0:
        raise BagError('usage', 'gripper open and closed positions must differ')
    for time_ns, msg in _read(bag, gripper_topic):
        data = list(msg.data)
        if not data:
            continue
        openness = min(1.0, max(0.0, (float(data[0]) - options.gripper_closed_position) / span))
        grippers.append((time_ns, space.gripper_closed_value + openness * (
            space.gripper_open_value - space.gripper_closed_value)))
    if gripper_topic is not None and not grippers:
        plan.warnings.append(f'gripper topic {gripper_topic.name} has no commands')
    gripper_times = [t for t, _ in grippers]

    starts = _episode_starts(instructions)
    start_times = [t for t, _ in starts]
    period_ns = int(round(plan.period_s * 1e9))
    twist_times = integrator.times
    # the session lasts until its last message, or until the last twist stops being executed
    end = max(bag.end_ns - 1, twists[-1][0] + integrator.timeout_ns if twists else 0)
    for episode, (episode_start, text) in enumerate(starts):
        episode_end = start_times[episode + 1] if episode + 1 < len(starts) else end + 1
        # the grid starts with the episode's first command (a controller or scripted expert
        # starts each decision period with one), else with its first camera frame
        first_twist = bisect_left(twist_times, episode_start)
        first_frame = bisect_left(frame_times, episode_start)
        if first_twist < len(twist_times) and twist_times[first_twist] < episode_end:
            time_ns = twist_times[first_twist]
        elif first_frame < len(frame_times) and frame_times[first_frame] < episode_end:
            time_ns = frame_times[first_frame]
        else:
            _skip(plan, 'empty_episode')
            continue
        while time_ns + period_ns <= episode_end:
            frame = bisect_right(frame_times, time_ns) - 1
            if frame < 0 or time_ns - frame_times[frame] > max_age_ns:
                _skip(plan, 'no_recent_frame')
                time_ns += period_ns
                continue
            action = np.full(space.size, np.nan)
            translation, rpy = integrator.integrate(time_ns, time_ns + period_ns)
            for role, values in (('translation', translation), ('rotation', rpy)):
                for index in space.indices(role):
                    axis = space.dimensions[index].axis or 'xyz'[space.indices(role).index(index)]
                    action[index] = values['xyz'.index(axis)]
            gripper_index = space.gripper_index
            if gripper_index is not None and grippers:
                # the latest target issued before the period ends (one issued exactly at its end
                # belongs to the next step); before any command, the first one (unchanged state)
                g = bisect_left(gripper_times, time_ns + period_ns) - 1
                action[gripper_index] = grippers[max(g, 0)][1]
            plan.steps.append(PlannedStep(time_ns, frame, frame_times[frame], text, episode,
                                          action, None, _clipped(space, action)))
            time_ns += period_ns
    for i, step in enumerate(plan.steps):
        last = i + 1 == len(plan.steps) or plan.steps[i + 1].episode != step.episode
        if space.terminate_index is not None:
            step.terminate = last
            step.action[space.terminate_index] = _label_value(space, last)


def iter_steps(bag: BagReader, plan: StepPlan) -> Iterator[DecisionStep]:
    """Yield the planned steps in order, decoding each needed frame once."""
    by_frame: Dict[int, List[int]] = {}
    for index, step in enumerate(plan.steps):
        by_frame.setdefault(step.frame, []).append(index)
    if not by_frame:
        return
    last_needed = max(by_frame)
    for ordinal, message in enumerate(bag.messages([plan.image_topic])):
        if ordinal > last_needed:
            break
        wanted = by_frame.get(ordinal)
        if not wanted:
            continue
        image = image_to_rgb(bag.deserialize(message))
        for index in wanted:
            step = plan.steps[index]
            yield DecisionStep(index, step.time_ns, step.frame_time_ns, image, step.instruction,
                               step.episode, step.action.copy(), step.terminate, step.clipped,
                               plan.state_at(step.frame_time_ns),
                               plan.gripper_at(step.frame_time_ns))

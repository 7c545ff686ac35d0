"""
A small scripted tabletop session as bag messages: for tests, the golden bags and the docs.

It has what a recording of the robot or the sim has - camera frames, the latched instruction,
the end-effector pose, the expert's twists and gripper commands, and its `expert/action` - and
its numbers are consistent by construction: each decision's action held as a constant twist over
one period integrates back to exactly that action. That makes it a check of the bag tools (export
from twists and from the action topic must agree) and not just of themselves.
"""
from dataclasses import dataclass, field
from typing import Any, List, Sequence, Tuple

import numpy as np

from rt2_ros.actions import ActionSpace, load_action_space
from rt2_ros.bags.qos import DEFAULT, LATCHED, QosSpec, SENSOR_DATA
from rt2_ros.bags.rotations import rpy_to_rotvec

START_NS = 1_700_000_000_000_000_000
TOPIC_TYPES = {
    '/camera/image_raw': 'sensor_msgs/msg/Image',
    '/instruction': 'std_msgs/msg/String',
    '/ee_pose': 'geometry_msgs/msg/PoseStamped',
    '/servo/delta_twist_cmds': 'geometry_msgs/msg/TwistStamped',
    '/gripper/commands': 'std_msgs/msg/Float64MultiArray',
    '/expert/action': 'std_msgs/msg/Float64MultiArray',
    '/joint_states': 'sensor_msgs/msg/JointState',
}
TOPIC_QOS = {'/camera/image_raw': SENSOR_DATA, '/instruction': LATCHED}
ALL_PARTS = ('camera', 'instruction', 'ee_pose', 'twist', 'gripper', 'action')
# Asked for by name only: the golden bags predate it. joint_states holds the sim's gripper_joint
# (the opening of the last gripper command) beside a wheel joint.
OPTIONAL_PARTS = ('joint_states',)
PART_TOPICS = {'camera': '/camera/image_raw', 'instruction': '/instruction',
               'ee_pose': '/ee_pose', 'twist': '/servo/delta_twist_cmds',
               'gripper': '/gripper/commands', 'action': '/expert/action',
               'joint_states': '/joint_states'}


@dataclass
class SessionSpec:
    """Shape of the session; the defaults make a 3 s, two-episode, ~25 KB bag."""

    duration_s: float = 3.0
    camera_hz: float = 10.0
    control_hz: float = 30.0
    image_size: Tuple[int, int] = (16, 16)
    instructions: Sequence[Tuple[float, str]] = (
        (0.0, 'pick up the red block'), (1.5, 'place it on the blue plate'))
    parts: Sequence[str] = ALL_PARTS
    space: str = 'rt2'
    start_ns: int = START_NS
    frame_id: str = 'base_link'


@dataclass
class Session:
    """The messages in time order and the expert's actions, one per decision."""

    messages: List[Tuple[str, str, int, Any]]
    decision_times: List[int]
    actions: np.ndarray
    period_ns: int
    topics: List[str] = field(default_factory=list)


def expert_action(space: ActionSpace, step: int, last_of_episode: bool) -> np.ndarray:
    """Return a smooth, deterministic action within the space's bounds, using every dim."""
    action = np.zeros(space.size)
    phase = 0.7 * step
    for index, dim in enumerate(space.dimensions):
        if dim.role == 'terminate':
            label = 'terminate' if last_of_episode else next(
                lb for lb in dim.labels if lb != 'terminate')
            action[index] = dim.labels.index(label)
        elif dim.role == 'gripper':
            action[index] = space.gripper_open_value if step % 6 < 3 else \
                space.gripper_closed_value
        elif not dim.is_discrete:
            middle, half = (dim.high + dim.low) / 2, (dim.high - dim.low) / 2
            action[index] = middle + 0.6 * half * np.sin(phase + index)
    return action


def frame_image(time_s: float, size: Tuple[int, int]) -> np.ndarray:
    """Draw a red block moving across a grey table: changes every frame, tiny, deterministic."""
    height, width = size
    image = np.full((height, width, 3), 96, dtype=np.uint8)
    column = int((time_s * 4.0) % max(1, width - 3))
    image[height // 2 - 2:height // 2 + 2, column:column + 3] = (220, 30, 30)
    image[1, :, 2] = np.uint8(int(time_s * 10) % 256)
    return image


def build_session(spec: SessionSpec, typestore: Any) -> Session:
    """Messages (topic, type, receive time ns, rosbags message) of the scripted session."""
    space = load_action_space(spec.space)
    types = typestore.types
    period_ns = int(round(1e9 / space.nominal_rate_hz))
    end_ns = spec.start_ns + int(spec.duration_s * 1e9)
    changes = [spec.start_ns + int(t * 1e9) for t, _ in spec.instructions]
    # like the sim's expert, each instruction starts a new series of decisions at once
    decisions: List[int] = []
    last_of_episode: List[bool] = []
    for episode, start in enumerate(changes):
        stop = changes[episode + 1] if episode + 1 < len(changes) else end_ns
        times = list(range(start, stop - period_ns + 1, period_ns))
        decisions.extend(times)
        last_of_episode.extend(i + 1 == len(times) for i in range(len(times)))
    actions = np.array([expert_action(space, k, last) for k, last in
                        enumerate(last_of_episode)])
    messages: List[Tuple[str, str, int, Any]] = []

    def stamp(time_ns: int) -> Any:
        header = types['std_msgs/msg/Header']
        time = types['builtin_interfaces/msg/Time']
        return header(stamp=time(sec=time_ns // 10**9, nanosec=time_ns % 10**9),
                      frame_id=spec.frame_id)

    def add(part: str, time_ns: int, message: Any) -> None:
        if part in spec.parts:
            topic = PART_TOPICS[part]
            messages.append((topic, TOPIC_TYPES[topic], time_ns, message))

    for (offset, text), time_ns in zip(spec.instructions, changes):
        add('instruction', time_ns, types['std_msgs/msg/String'](data=text))
    camera_ns = int(round(1e9 / spec.camera_hz))
    height, width = spec.image_size
    for time_ns in range(spec.start_ns, end_ns, camera_ns):
        pixels = frame_image((time_ns - spec.start_ns) / 1e9, spec.image_size)
        header = stamp(time_ns)
        add('camera', time_ns, types['sensor_msgs/msg/Image'](
            header=header, height=height, width=width, encoding='rgb8', is_bigendian=0,
            step=width * 3, data=pixels.reshape(-1)))
    layout = types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
    position = np.array([0.4, 0.0, 0.2])
    control_ns = int(round(1e9 / spec.control_hz))
    translation = space.indices('translation')
    rotation = space.indices('rotation')
    gripper = space.gripper_index
    openings: List[Tuple[int, float]] = []
    for k, decision_ns in enumerate(decisions):
        action = actions[k]
        add('action', decision_ns, types['std_msgs/msg/Float64MultiArray'](
            layout=layout, data=action.astype(np.float64)))
        if gripper is not None:
            openness = space.gripper_openness(action[gripper])
            openings.append((decision_ns, float(openness)))
            add('gripper', decision_ns, types['std_msgs/msg/Float64MultiArray'](
                layout=layout, data=np.array([openness])))
        velocity = action[translation] / (period_ns / 1e9)
        omega = rpy_to_rotvec(action[rotation]) / (period_ns / 1e9)
        ticks = max(1, int(round(period_ns / control_ns)))
        for tick in range(ticks):
            tick_ns = decision_ns + tick * period_ns // ticks
            twist = types['geometry_msgs/msg/Twist'](
                linear=types['geometry_msgs/msg/Vector3'](*velocity),
                angular=types['geometry_msgs/msg/Vector3'](*omega))
            add('twist', tick_ns, types['geometry_msgs/msg/TwistStamped'](
                header=stamp(tick_ns), twist=twist))
        position = position + action[translation]
    for time_ns in range(spec.start_ns, end_ns, camera_ns):
        pose = types['geometry_msgs/msg/Pose'](
            position=types['geometry_msgs/msg/Point'](*position),
            orientation=types['geometry_msgs/msg/Quaternion'](0.0, 0.0, 0.0, 1.0))
        add('ee_pose', time_ns + 1_000_000, types['geometry_msgs/msg/PoseStamped'](
            header=stamp(time_ns), pose=pose))
        # read just before the frame: the fingers have followed the commands sent before it
        commanded = [opening for t, opening in openings if t < time_ns]
        add('joint_states', time_ns - 1_000_000, types['sensor_msgs/msg/JointState'](
            header=stamp(time_ns - 1_000_000), name=['wheel_left_joint', 'gripper_joint'],
            position=np.array([0.5, commanded[-1] if commanded else 1.0]),
            velocity=np.zeros(0), effort=np.zeros(0)))
    messages.sort(key=lambda m: m[2])
    topics = [PART_TOPICS[p] for p in ALL_PARTS + OPTIONAL_PARTS if p in spec.parts]
    return Session(messages, decisions, actions, period_ns, topics)


def topic_qos(topic: str) -> QosSpec:
    """Return the QoS the session's publishers offer (what rosbag2 stores with the topic)."""
    return TOPIC_QOS.get(topic, DEFAULT)


def write_session(path: Any, spec: SessionSpec = SessionSpec(), storage: str = 'mcap',
                  distro: str = 'kilted') -> Session:
    """Write the session as a rosbag2 bag with full definitions and offered QoS."""
    from rt2_ros.bags.writer import BagWriter
    with BagWriter(path, storage=storage, distro=distro) as writer:
        session = build_session(spec, writer.typestore)
        for topic in session.topics:
            writer.add_topic(topic, TOPIC_TYPES[topic], [topic_qos(topic)])
        for topic, _, time_ns, message in session.messages:
            writer.write_message(topic, time_ns, message)
    return session

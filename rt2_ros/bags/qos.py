"""
QoS for replaying and recording topics, as plain data (the ROS layer turns it into QoSProfile).

Mismatched QoS in ROS 2 does not fail, it silently never connects.
A reliable subscriber never hears a best-effort publisher, and a volatile late joiner never sees
a latched instruction. So replay copies what the recording's publishers offered when the bag
says so (rosbag2 stores it per topic) and otherwise uses what the topic is known to need: sensor
data for cameras, transient local depth 1 for latched topics such as `instruction`.
"""
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, Optional, Sequence

RELIABLE = 'reliable'
BEST_EFFORT = 'best_effort'
VOLATILE = 'volatile'
TRANSIENT_LOCAL = 'transient_local'

SENSOR_TYPES = frozenset({
    'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/PointCloud2',
    'sensor_msgs/msg/LaserScan', 'sensor_msgs/msg/CameraInfo',
})
LATCHED_SUFFIXES = ('instruction', 'tf_static', 'robot_description')


@dataclass(frozen=True)
class QosSpec:
    """The parts of a QoS profile that decide whether publisher and subscriber connect."""

    reliability: str = RELIABLE
    durability: str = VOLATILE
    depth: int = 10

    @property
    def latched(self) -> bool:
        return self.durability == TRANSIENT_LOCAL

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


SENSOR_DATA = QosSpec(BEST_EFFORT, VOLATILE, 5)
LATCHED = QosSpec(RELIABLE, TRANSIENT_LOCAL, 1)
DEFAULT = QosSpec(RELIABLE, VOLATILE, 10)


def default_qos(topic: str, msgtype: str) -> QosSpec:
    """Return the QoS a topic is known to need when the bag does not record what was offered."""
    if msgtype in SENSOR_TYPES:
        return SENSOR_DATA
    if topic.rstrip('/').endswith(LATCHED_SUFFIXES):
        return LATCHED
    return DEFAULT


def combine_offered(offered: Sequence[QosSpec]) -> Optional[QosSpec]:
    """
    One profile compatible with what every recorded publisher offered, or None if none recorded.

    Reliable and transient local only when all publishers offered them: replaying a best-effort
    camera as reliable would change what a sensor-data subscriber sees, and replaying a volatile
    topic as latched would hand late joiners stale commands.
    """
    if not offered:
        return None
    reliability = RELIABLE if all(q.reliability == RELIABLE for q in offered) else BEST_EFFORT
    durability = TRANSIENT_LOCAL if all(q.latched for q in offered) else VOLATILE
    depth = max(q.depth for q in offered)
    if durability != TRANSIENT_LOCAL:
        depth = max(depth, 10)
    return QosSpec(reliability, durability, max(depth, 1))


def playback_qos(topic: str, msgtype: str, offered: Sequence[QosSpec],
                 override: Optional[QosSpec] = None) -> QosSpec:
    """Return the QoS to publish a bag topic with: override, else recorded, else default."""
    if override is not None:
        return override
    return combine_offered(offered) or default_qos(topic, msgtype)


def from_rosbags(profiles: Iterable[Any]) -> tuple:
    """Convert rosbags `Qos` tuples to QosSpec; unknown or system-default values mean reliable."""
    specs = []
    for profile in profiles:
        reliability = getattr(profile.reliability, 'name', str(profile.reliability)).lower()
        durability = getattr(profile.durability, 'name', str(profile.durability)).lower()
        specs.append(QosSpec(
            BEST_EFFORT if reliability == 'best_effort' else RELIABLE,
            TRANSIENT_LOCAL if durability == 'transient_local' else VOLATILE,
            int(profile.depth) if int(profile.depth) > 0 else 10))
    return tuple(specs)


def to_rosbags(specs: Iterable[QosSpec]) -> list:
    """Convert QosSpec to rosbags `Qos` tuples for a bag's offered_qos_profiles."""
    from rosbags.interfaces import (
        Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime,
    )
    infinite = QosTime(0x7FFFFFFF, 0xFFFFFFFF)
    return [
        Qos(QosHistory.KEEP_LAST, spec.depth,
            QosReliability.RELIABLE if spec.reliability == RELIABLE
            else QosReliability.BEST_EFFORT,
            QosDurability.TRANSIENT_LOCAL if spec.latched else QosDurability.VOLATILE,
            infinite, infinite, QosLiveliness.AUTOMATIC, infinite, False)
        for spec in specs]

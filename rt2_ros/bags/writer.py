"""
Write rosbag2 bags (MCAP by default, or sqlite3) that `ros2 bag` and `rosbags` read back.

Every topic is written with its full message definition and type hash, so the bag decodes on a
machine without the message packages and on another ROS distro. Definitions come from the
`rosbags` typestore of the distro we run on; a type it does not know (a robot's custom message)
is read from its `.msg` file through a lookup the ROS layer provides.
"""
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

from rt2_ros.bags.errors import BagError
from rt2_ros.bags.qos import QosSpec, to_rosbags
from rt2_ros.bags.reader import DEFAULT_DISTRO, DISTROS, normalize_topic

STORAGES = ('mcap', 'sqlite3')
DefinitionLookup = Callable[[str], Optional[str]]


def running_distro() -> str:
    """Return the ROS distro of this environment ($ROS_DISTRO), else that of the dev wheels."""
    distro = os.environ.get('ROS_DISTRO', '').lower()
    return distro if distro in DISTROS else DEFAULT_DISTRO


def _referenced_types(fields: Any) -> Iterable[str]:
    """Names of message types used by a rosbags field list (nested, arrays and sequences)."""
    for _, desc in fields:
        node, detail = desc
        while getattr(node, 'name', '') in ('ARRAY', 'SEQUENCE'):
            (node, detail), _ = detail
        if getattr(node, 'name', '') == 'NAME':
            yield detail


class BagWriter:
    """
    A new bag being written; use as a context manager so it is closed even on errors.

    Closing writes the MCAP summary (or commits sqlite3) and metadata.yaml; a bag that is closed
    is complete even when recording was interrupted by a signal.
    """

    def __init__(self, path: Any, storage: str = 'mcap', distro: Optional[str] = None,
                 version: int = 9, definitions: Optional[DefinitionLookup] = None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
        from rosbags.typesys import get_typestore, Stores
        if storage not in STORAGES:
            raise BagError('usage', f'storage must be one of {", ".join(STORAGES)}, not '
                           f'{storage!r}')
        self.path = Path(path).expanduser()
        if self.path.exists():
            raise BagError('exists', f'{self.path} already exists; choose a new bag name')
        self.storage = storage
        self.distro = distro or running_distro()
        self._typestore = get_typestore(getattr(Stores, f'ROS2_{self.distro.upper()}'))
        self._definitions = definitions
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        try:
            self._writer = Writer(self.path, version=version, storage_plugin=plugin)
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError('usage', f'cannot create {self.path}: {exc}') from None
        self._connections: Dict[str, Any] = {}
        self.counts: Dict[str, int] = {}
        self.closed = False

    @property
    def typestore(self) -> Any:
        return self._typestore

    def _ensure_type(self, msgtype: str) -> None:
        """Register msgtype (and what it uses) from .msg files when the typestore lacks it."""
        from rosbags.typesys import get_types_from_msg, TypesysError
        pending = [msgtype]
        found: Dict[str, Any] = {}
        while pending:
            name = pending.pop()
            if name in self._typestore.fielddefs or name in found:
                continue
            text = self._definitions(name) if self._definitions else None
            if text is None:
                raise BagError('unknown_type', f'message type {name} is not known to ROS 2 '
                               f'{self.distro} definitions and no .msg file was found for it')
            try:
                parsed = get_types_from_msg(text, name)
            except TypesysError as exc:
                raise BagError('unknown_type', f'the definition of {name} cannot be parsed: '
                               f'{exc}') from None
            found.update(parsed)
            for fields in parsed.values():
                pending.extend(_referenced_types(fields[1]))
        if found:
            self._typestore.register(found)

    def add_topic(self, name: str, msgtype: str,
                  offered_qos: Sequence[QosSpec] = ()) -> None:
        topic = normalize_topic(name)
        if topic in self._connections:
            return
        self._ensure_type(msgtype)
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self._typestore,
            offered_qos_profiles=to_rosbags(offered_qos))
        self.counts[topic] = 0

    def write(self, topic: str, time_ns: int, raw: bytes) -> None:
        """Append one serialized (CDR) message received at time_ns."""
        name = normalize_topic(topic)
        self._writer.write(self._connections[name], int(time_ns), raw)
        self.counts[name] += 1

    def write_message(self, topic: str, time_ns: int, message: Any) -> None:
        """Serialize a rosbags message object of the topic's type and append it."""
        connection = self._connections[normalize_topic(topic)]
        raw = self._typestore.serialize_cdr(message, connection.msgtype)
        self.write(topic, time_ns, bytes(raw))

    def message_class(self, msgtype: str) -> Any:
        """Return the rosbags dataclass for msgtype, to build messages to write."""
        self._ensure_type(msgtype)
        return self._typestore.types[msgtype]

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

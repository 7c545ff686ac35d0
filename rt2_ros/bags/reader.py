"""
Read rosbag2 bags (sqlite3 or MCAP; Humble, Jazzy, Kilted, ...) without rosbag2_py.

Message types come from the definitions stored in the bag when it has them (MCAP always; sqlite3
from Jazzy on), else from the `rosbags` typestore of the ROS distro that wrote it - read from the
metadata, guessed from the metadata version for older bags, or given by the user. Every failure a
user can cause or meet (wrong path, truncated or corrupt file, a storage file that is not what
metadata.yaml says, a type nobody defines, a topic that is not there) becomes a BagError with one
line saying what is wrong, instead of a traceback from three libraries down.
"""
from dataclasses import dataclass
from pathlib import Path
import struct
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from rt2_ros.bags.errors import BagError
from rt2_ros.bags.qos import from_rosbags, QosSpec
import yaml

STORAGE_MAGIC = {'mcap': b'\x89MCAP0\r\n', 'sqlite3': b'SQLite format 3\x00'}
SUFFIX_STORAGE = {'.mcap': 'mcap', '.db3': 'sqlite3'}
DISTROS = ('foxy', 'galactic', 'humble', 'iron', 'jazzy', 'kilted', 'lyrical')
DEFAULT_DISTRO = 'kilted'


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: its type, message count and the QoS its publishers offered."""

    name: str
    msgtype: str
    count: int
    offered_qos: Tuple[QosSpec, ...]
    defined_in_bag: bool


class BagMessage(NamedTuple):
    """One serialized message: topic, receive time (ns, the recorder's clock) and CDR bytes."""

    topic: str
    time_ns: int
    raw: bytes
    msgtype: str


def normalize_topic(name: str) -> str:
    """Absolute topic name: rosbag2 stores `/camera/image_raw`, users type `camera/image_raw`."""
    name = name.strip()
    return name if name.startswith('/') else '/' + name


def sniff_storage(path: Path) -> Optional[str]:
    """Storage format from a file's first bytes (mcap, sqlite3) or None if neither."""
    try:
        with path.open('rb') as handle:
            head = handle.read(16)
    except OSError as exc:
        raise BagError('missing', f'cannot read {path}: {exc.strerror}') from None
    for storage, magic in STORAGE_MAGIC.items():
        if head.startswith(magic):
            return storage
    return None


def distro_for(version: Optional[int], declared: Optional[str]) -> Tuple[str, str]:
    """
    Return the ROS distro whose message definitions to assume, and why.

    rosbag2 records `ros_distro` from metadata version 8 (Jazzy) on. Before that the version tells
    the era: 4-5 Foxy..Humble (Humble's messages cover those), 6-7 Iron.
    """
    if declared and declared.lower() in DISTROS:
        return declared.lower(), f'metadata ros_distro {declared}'
    if version is not None and version <= 5:
        return 'humble', f'metadata version {version} (Humble era)'
    if version is not None and version <= 7:
        return 'iron', f'metadata version {version} (Iron era)'
    if version is not None:
        return 'jazzy', f'metadata version {version}'
    return DEFAULT_DISTRO, 'no metadata'


MAX_METADATA_BYTES = 16 << 20


def _load_metadata(path: Path) -> Dict[str, Any]:
    """
    Read metadata.yaml, refusing YAML aliases and oversized files.

    rosbag2 never writes anchors or aliases; a bag from elsewhere that uses them can expand to
    billions of entries (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) - cheap to parse, but anything
    that walks or prints the result hangs (a 1 kB file made `relative_file_paths` 10^9 long).
    """
    file = path / 'metadata.yaml'
    try:
        if file.stat().st_size > MAX_METADATA_BYTES:
            raise BagError('corrupt', f'{file} is larger than {MAX_METADATA_BYTES} bytes; not '
                           'rosbag2 metadata')
        text = file.read_text(encoding='utf-8')
        if any(isinstance(event, yaml.AliasEvent)
               for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise BagError('corrupt', f'{file} uses YAML aliases, which rosbag2 never writes; '
                           'refusing it')
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BagError('corrupt', f'{path}/metadata.yaml cannot be read: '
                       f'{str(exc).splitlines()[0]}') from None
    info = data.get('rosbag2_bagfile_information') if isinstance(data, dict) else None
    if not isinstance(info, dict):
        raise BagError('not_a_bag', f'{path}/metadata.yaml is not rosbag2 metadata '
                       '(no rosbag2_bagfile_information)')
    files = info.get('relative_file_paths') or []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise BagError('corrupt', f'{path}/metadata.yaml: relative_file_paths must be a list of '
                       'file names')
    return info


class BagReader:
    """
    An open bag: topics, messages in time order, and deserialization.

    Use as a context manager. `distro` forces the message definitions assumed for bags that do
    not carry their own (Humble sqlite3 bags); None picks them from the metadata.
    """

    def __init__(self, path: Any, distro: Optional[str] = None) -> None:
        if distro is not None and distro not in DISTROS:
            raise BagError('usage', f'unknown ROS distro {distro!r}; one of {", ".join(DISTROS)}')
        self.path = Path(path).expanduser()
        self.warnings: List[str] = []
        self.metadata: Dict[str, Any] = {}
        self.target, self.storage = self._resolve()
        self._open_reader()
        try:
            self._build_topics()
            declared = self.metadata.get('ros_distro') or self._reader.ros_distro
            if not isinstance(declared, str):
                declared = None
            self.distro, self.distro_reason = distro_for(self.metadata.get('version'), declared)
            if distro is not None:
                self.distro, self.distro_reason = distro, 'given'
            self._typestore = self._build_typestore()
        except BagError:
            self.close()
            raise
        except _storage_failures() as exc:  # what a corrupt file's tables or records held
            self.close()
            raise BagError('corrupt', f'{self.target} has corrupt topic records: {exc}') from None
        except BaseException:
            self.close()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _resolve(self) -> Tuple[Path, str]:
        path = self.path
        if not path.exists():
            raise BagError('missing', f'{path} does not exist')
        if path.is_file() and path.name == 'metadata.yaml':
            path = self.path = path.parent
        if path.is_dir():
            if (path / 'metadata.yaml').is_file():
                return path, self._check_directory(path)
            files = sorted(p for p in path.iterdir() if p.suffix in SUFFIX_STORAGE)
            if len(files) == 1:
                self.warnings.append(
                    f'{path} has no metadata.yaml (the recorder did not close cleanly); reading '
                    f'{files[0].name} directly')
                return files[0], self._check_file(files[0])
            if files:
                raise BagError('corrupt', f'{path} has no metadata.yaml and {len(files)} storage '
                               'files; run `ros2 bag reindex` on it first')
            raise BagError('not_a_bag', f'{path} is not a rosbag2 bag (no metadata.yaml, no .mcap '
                           'or .db3 file)')
        return path, self._check_file(path)

    def _check_file(self, path: Path) -> str:
        found = sniff_storage(path)
        expected = SUFFIX_STORAGE.get(path.suffix)
        if found is None:
            if expected is None:
                raise BagError('not_a_bag', f'{path} is not a rosbag2 bag (neither a bag '
                               'directory nor an .mcap or .db3 file)')
            raise BagError('corrupt', f'{path} is not a valid {expected} file (wrong magic bytes; '
                           'the file is corrupt or not a bag)')
        if expected != found:
            raise BagError('storage_mismatch', f'{path} is a {found} file but its name says '
                           f'{expected or "neither mcap nor sqlite3"}; rename it to '
                           f'{path.stem}{".mcap" if found == "mcap" else ".db3"}')
        return found

    def _check_directory(self, path: Path) -> str:
        info = self.metadata = _load_metadata(path)
        declared = info.get('storage_identifier')
        if declared not in STORAGE_MAGIC:
            raise BagError('storage_mismatch', f'{path} uses storage {declared!r}; only mcap and '
                           'sqlite3 bags can be read')
        files = info.get('relative_file_paths') or []
        if not files:
            raise BagError('corrupt', f'{path}/metadata.yaml lists no storage files')
        compressed = bool(info.get('compression_mode')) and \
            str(info.get('compression_mode')).lower() not in ('', 'none')
        for name in files:
            file = path / Path(str(name)).name
            if not file.is_file():
                raise BagError('corrupt', f'{path}/metadata.yaml lists {file.name}, which is '
                               'missing')
            if compressed and str(info.get('compression_mode')).lower() == 'file':
                continue
            found = sniff_storage(file)
            if found is None:
                raise BagError('corrupt', f'{file} is not a valid {declared} file (wrong magic '
                               'bytes; the file is corrupt or not part of a bag)')
            if found != declared:
                raise BagError('storage_mismatch', f'{path}/metadata.yaml says storage '
                               f'{declared} but {file.name} is a {found} file')
        return declared

    def _open_reader(self) -> None:
        from rosbags.rosbag2 import Reader, ReaderError
        try:
            self._reader = Reader(self.target)
            self._reader.open()
        except ReaderError as exc:
            raise _storage_error(self.target, self.storage, exc) from None
        except _storage_failures() as exc:
            raise BagError('corrupt', f'{self.target} cannot be opened: {exc}') from None
        except MemoryError:  # a record's size field claims more than memory holds
            raise BagError('corrupt', f'{self.target} cannot be opened: a record claims an '
                           'impossible size') from None

    def _build_topics(self) -> None:
        topics: Dict[str, TopicInfo] = {}
        self._connections: Dict[str, list] = {}
        for connection in self._reader.connections:
            from rosbags.interfaces import MessageDefinitionFormat
            if not (isinstance(connection.topic, str) and isinstance(connection.msgtype, str)):
                raise BagError('corrupt', f'{self.target} has a topic record without a name or '
                               'type')
            defined = connection.msgdef.format != MessageDefinitionFormat.NONE
            qos = from_rosbags(getattr(connection.ext, 'offered_qos_profiles', ()) or ())
            known = topics.get(connection.topic)
            if known is not None and known.msgtype != connection.msgtype:
                raise BagError('bad_message', f'topic {connection.topic} has two types in the '
                               f'bag ({known.msgtype}, {connection.msgtype})')
            count = connection.msgcount + (known.count if known else 0)
            offered = (known.offered_qos if known else ()) + qos
            topics[connection.topic] = TopicInfo(connection.topic, connection.msgtype, count,
                                                 offered, defined or bool(known and
                                                                          known.defined_in_bag))
            self._connections.setdefault(connection.topic, []).append(connection)
        self.topics = dict(sorted(topics.items()))

    def _build_typestore(self) -> Any:
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore, Stores
        from rosbags.typesys import TypesysError
        from_bag: Dict[str, Any] = {}
        digests: Dict[str, str] = {}
        for connections in self._connections.values():
            for connection in connections:
                definition = connection.msgdef
                try:
                    if definition.format == MessageDefinitionFormat.MSG:
                        from_bag.update(get_types_from_msg(definition.data, connection.msgtype))
                    elif definition.format == MessageDefinitionFormat.IDL:
                        separator = '=' * 80 + '\n'
                        parts = definition.data.split(separator)[1:] \
                            if definition.data.startswith(separator + 'IDL: ') else None
                        if parts is None:
                            from_bag.update(get_types_from_idl(definition.data))
                        else:
                            for part in parts:
                                from_bag.update(get_types_from_idl(part.split('\n', 1)[1]))
                except (TypesysError, IndexError, ValueError) as exc:
                    raise BagError('corrupt', f"the bag's definition of {connection.msgtype} "
                                   f'cannot be parsed: {exc}') from None
                if connection.digest:
                    digests[connection.msgtype] = connection.digest
        fallback = get_typestore(getattr(Stores, f'ROS2_{self.distro.upper()}'))
        merged = {name: fields for name, fields in fallback.fielddefs.items()
                  if name not in from_bag}
        merged.update(from_bag)
        store = get_typestore(Stores.EMPTY)
        try:
            store.register(merged)
        except TypesysError as exc:
            raise BagError('corrupt', f"the bag's message definitions are inconsistent: {exc}") \
                from None
        for msgtype, digest in digests.items():
            if msgtype not in store.fielddefs or not digest.startswith('RIHS01_'):
                continue
            try:
                have = store.hash_rihs01(msgtype)
            except (TypesysError, KeyError):
                continue
            if have != digest:
                source = 'the bag' if msgtype in from_bag else f'ROS 2 {self.distro}'
                self.warnings.append(
                    f'{msgtype}: the definition from {source} does not match the recorded type '
                    'hash; messages may decode wrongly (try --distro)')
        return store

    # -- queries -----------------------------------------------------------------------------

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time) if self.message_count else 0

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time) if self.message_count else 0

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def topic(self, name: str, msgtypes: Optional[Sequence[str]] = None) -> TopicInfo:
        """Look a topic up by (relative or absolute) name, optionally requiring its type."""
        wanted = normalize_topic(name)
        info = self.topics.get(wanted)
        if info is None:
            available = ', '.join(f'{t.name} ({t.msgtype})' for t in self.topics.values())
            raise BagError('missing_topic', f'topic {wanted} is not in {self.path}; it has: '
                           f'{available or "no topics"}')
        if msgtypes and info.msgtype not in msgtypes:
            raise BagError('bad_message', f'topic {wanted} has type {info.msgtype}, expected '
                           f'{" or ".join(msgtypes)}')
        return info

    def find_topics(self, msgtypes: Iterable[str]) -> List[TopicInfo]:
        """Topics whose type is one of msgtypes, in name order."""
        wanted = set(msgtypes)
        return [t for t in self.topics.values() if t.msgtype in wanted]

    def knows_type(self, msgtype: str) -> bool:
        return msgtype in self._typestore.fielddefs

    def messages(self, topics: Optional[Iterable[str]] = None) -> Iterator[BagMessage]:
        """Messages in receive-time order, of the given topics (all when None)."""
        from rosbags.rosbag2 import ReaderError
        if topics is None:
            connections: list = []
        else:
            connections = []
            for name in topics:
                info = self.topic(name)
                connections.extend(self._connections[info.name])
            if not connections:
                return
        try:
            for connection, timestamp, raw in self._reader.messages(connections=connections):
                yield BagMessage(connection.topic, int(timestamp), bytes(raw),
                                 connection.msgtype)
        except ReaderError as exc:
            raise _storage_error(self.target, self.storage, exc) from None
        except _storage_failures() as exc:
            raise BagError('corrupt', f'{self.target} cannot be read to the end: {exc}') from None
        except MemoryError:
            raise BagError('corrupt', f'{self.target} cannot be read to the end: a record claims '
                           'an impossible size') from None

    def deserialize(self, message: BagMessage) -> Any:
        """Decode a message with the bag's (or the distro's) definition of its type."""
        if not self.knows_type(message.msgtype):
            raise BagError('unknown_type', f'topic {message.topic} has type {message.msgtype}, '
                           f'which the bag does not define and ROS 2 {self.distro} does not know')
        try:
            return self._typestore.deserialize_cdr(message.raw, message.msgtype)
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds on bad bytes
            raise BagError('bad_message', f'a {message.msgtype} message on {message.topic} at '
                           f'{message.time_ns} ns cannot be decoded: {exc}') from None

    def require_known(self, topic: str) -> TopicInfo:
        """Return a topic whose type can be decoded, or raise a BagError saying why not."""
        info = self.topic(topic)
        if not self.knows_type(info.msgtype):
            raise BagError('unknown_type', f'topic {info.name} has type {info.msgtype}, which the '
                           f'bag does not define and ROS 2 {self.distro} does not know')
        return info

    def summary(self) -> Dict[str, Any]:
        """Describe the bag for `rt2 bag info`: storage, distro, span and topics."""
        return {
            'path': str(self.path), 'storage': self.storage,
            'version': self.metadata.get('version'),
            'ros_distro': self.metadata.get('ros_distro'),
            'definitions': f'{self.distro} ({self.distro_reason})',
            'messages': self.message_count, 'duration_s': round(self.duration_s, 3),
            'start_ns': self.start_ns,
            'topics': [{'name': t.name, 'type': t.msgtype, 'count': t.count,
                        'defined_in_bag': t.defined_in_bag,
                        'qos': [q.to_dict() for q in t.offered_qos]}
                       for t in self.topics.values()],
        }

    def close(self) -> None:
        reader = getattr(self, '_reader', None)
        if reader is not None and reader.is_open:
            reader.close()

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _storage_failures() -> Tuple[type, ...]:
    """
    Exceptions the storage libraries raise on a corrupt file besides ReaderError.

    rosbags trusts the size and offset fields of an MCAP file and lets sqlite (through apsw)
    report a malformed database as its own error type; fuzzing mutated bags produced each of
    these. They all mean the same to a user: the file is corrupt.
    """
    import sqlite3
    kinds = [OSError, ValueError, KeyError, IndexError, TypeError, OverflowError, EOFError,
             struct.error, sqlite3.Error]
    try:
        import apsw
        kinds.append(apsw.Error)
    except ImportError:
        pass
    return tuple(kinds)


def _storage_error(target: Path, storage: str, exc: Exception) -> BagError:
    text = str(exc.args[0] if exc.args else exc)
    lowered = text.replace(str(target), '').lower()
    if 'end magic' in lowered or 'truncated record' in lowered or 'footer' in lowered:
        return BagError('truncated', f'{target} is truncated ({text.rstrip(".")}): the recording '
                        'was not closed cleanly')
    if 'malformed' in lowered or 'not a database' in lowered or 'magic' in lowered:
        return BagError('corrupt', f'{target} is not a readable {storage} file, truncated or '
                        f'corrupt ({text.rstrip(".")})')
    return BagError('corrupt', f'{target} cannot be read: {text}')


def open_bag(path: Any, distro: Optional[str] = None) -> BagReader:
    """Open a bag directory or a single .mcap/.db3 file (see BagReader)."""
    return BagReader(path, distro)

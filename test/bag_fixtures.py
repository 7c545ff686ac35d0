"""
Bags laid out the way Humble, Jazzy and Kilted's rosbag2 write them, for the reader tests.

rosbags writes current bags; the older layouts are produced from them the way those distros
differ on disk:
- Humble sqlite3: metadata version 5 (no ros_distro, no type hashes, QoS as a YAML string),
  database schema 3 without a message_definitions table - the bag carries no type definitions.
- Humble MCAP: metadata version 5; the MCAP schemas carry the definitions (as Humble's plugin did).
- Jazzy: metadata version 8 with ros_distro jazzy, QoS as a YAML string, definitions stored.
- Kilted: metadata version 9 with ros_distro kilted, QoS as a YAML list, definitions stored.
"""
from pathlib import Path
import sqlite3
from typing import Any, Dict, List, Tuple

from rosbags.rosbag2.metadata import dump_qos_v8
from rosbags.typesys import get_typestore, Stores
from rt2_ros.bags.qos import to_rosbags
from rt2_ros.bags.synthetic import build_session, Session, SessionSpec, topic_qos, TOPIC_TYPES
from rt2_ros.bags.writer import BagWriter
import yaml

LAYOUTS = [('humble', 'sqlite3'), ('humble', 'mcap'), ('jazzy', 'sqlite3'), ('jazzy', 'mcap'),
           ('kilted', 'sqlite3'), ('kilted', 'mcap')]


def _typestore(distro: str) -> Any:
    return get_typestore(getattr(Stores, f'ROS2_{distro.upper()}'))


def _patch_metadata(path: Path, version: int, distro: str = None) -> None:
    meta_path = path / 'metadata.yaml'
    data = yaml.safe_load(meta_path.read_text())
    info = data['rosbag2_bagfile_information']
    info['version'] = version
    if distro is None:
        info.pop('ros_distro', None)
    else:
        info['ros_distro'] = distro
    for topic in info['topics_with_message_count']:
        meta = topic['topic_metadata']
        if version < 7:
            meta.pop('type_description_hash', None)
    if version < 6:
        info.pop('custom_data', None)
    meta_path.write_text(yaml.safe_dump(data))


def _write_humble_sqlite(path: Path, session: Session, typestore: Any) -> None:
    path.mkdir(parents=True)
    db_name = f'{path.name}_0.db3'
    db = sqlite3.connect(path / db_name)
    db.executescript("""
        CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
        CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                              metadata TEXT NOT NULL);
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL,
                            offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                              timestamp INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE INDEX timestamp_idx ON messages (timestamp ASC);
        INSERT INTO schema(schema_version, ros_distro) VALUES (3, 'humble');
    """)
    ids: Dict[str, int] = {}
    counts: Dict[str, int] = {}
    topics_meta: List[Dict[str, Any]] = []
    for topic in session.topics:
        ids[topic] = len(ids) + 1
        qos = dump_qos_v8(to_rosbags([topic_qos(topic)]))
        db.execute('INSERT INTO topics VALUES (?, ?, ?, ?, ?)',
                   (ids[topic], topic, TOPIC_TYPES[topic], 'cdr', qos))
        topics_meta.append({'name': topic, 'type': TOPIC_TYPES[topic],
                            'serialization_format': 'cdr', 'offered_qos_profiles': qos})
    for topic, msgtype, time_ns, message in session.messages:
        raw = bytes(typestore.serialize_cdr(message, msgtype))
        db.execute('INSERT INTO messages(topic_id, timestamp, data) VALUES (?, ?, ?)',
                   (ids[topic], time_ns, raw))
        counts[topic] = counts.get(topic, 0) + 1
    db.commit()
    db.close()
    times = [m[2] for m in session.messages]
    info = {
        'version': 5, 'storage_identifier': 'sqlite3', 'relative_file_paths': [db_name],
        'duration': {'nanoseconds': times[-1] - times[0]},
        'starting_time': {'nanoseconds_since_epoch': times[0]},
        'message_count': len(times),
        'topics_with_message_count': [
            {'topic_metadata': meta, 'message_count': counts[meta['name']]}
            for meta in topics_meta],
        'compression_format': '', 'compression_mode': '',
        'files': [{'path': db_name, 'starting_time': {'nanoseconds_since_epoch': times[0]},
                   'duration': {'nanoseconds': times[-1] - times[0]},
                   'message_count': len(times)}],
    }
    (path / 'metadata.yaml').write_text(yaml.safe_dump({'rosbag2_bagfile_information': info}))


def write_layout_bag(path: Path, distro: str, storage: str,
                     spec: SessionSpec = SessionSpec()) -> Session:
    """Write the synthetic session as `distro`'s rosbag2 would have; return the session."""
    typestore = _typestore(distro)
    session = build_session(spec, typestore)
    if distro == 'humble' and storage == 'sqlite3':
        _write_humble_sqlite(path, session, typestore)
        return session
    version = 9 if distro == 'kilted' else 8
    with BagWriter(path, storage=storage, distro=distro, version=version) as writer:
        for topic in session.topics:
            writer.add_topic(topic, TOPIC_TYPES[topic], [topic_qos(topic)])
        for topic, _, time_ns, message in session.messages:
            writer.write_message(topic, time_ns, message)
    if distro == 'humble':
        _patch_metadata(path, 5)
    else:
        _patch_metadata(path, version, distro)
    return session


def write_messages(path: Path, messages: List[Tuple[str, str, int, Any]],
                   storage: str = 'mcap', distro: str = 'kilted') -> None:
    """Write a bag of arbitrary (topic, type, time_ns, rosbags message) tuples."""
    with BagWriter(path, storage=storage, distro=distro) as writer:
        for topic, msgtype, _, _ in messages:
            writer.add_topic(topic, msgtype)
        for topic, _, time_ns, message in messages:
            writer.write_message(topic, time_ns, message)

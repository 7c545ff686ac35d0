"""Reading bags as Humble, Jazzy and Kilted write them, and the errors a user can run into."""
import json
import os
import sqlite3

from bag_fixtures import LAYOUTS, write_layout_bag
from cli_helpers import run_rt2
import numpy as np
import pytest
from rt2_ros.bags.errors import BagError
from rt2_ros.bags.images import image_to_rgb
from rt2_ros.bags.reader import open_bag
from rt2_ros.bags.synthetic import frame_image, SessionSpec
from rt2_ros.bags.writer import BagWriter
from rt2_ros.cli.main import main
import yaml

SMALL = SessionSpec(duration_s=1.0, instructions=((0.0, 'pick up the red block'),))


@pytest.mark.parametrize('distro,storage', LAYOUTS)
def test_reads_each_distros_layout(tmp_path, distro, storage):
    bag_path = tmp_path / f'{distro}_{storage}'
    session = write_layout_bag(bag_path, distro, storage, SMALL)
    with open_bag(bag_path) as bag:
        assert bag.storage == storage
        assert bag.distro == distro
        assert bag.message_count == len(session.messages)
        image = bag.topic('camera/image_raw')
        assert image.msgtype == 'sensor_msgs/msg/Image' and image.count == 10
        # Humble's sqlite3 plugin stored no definitions: the Humble typestore decodes them
        assert image.defined_in_bag == (distro != 'humble' or storage == 'mcap')
        assert bag.topic('/instruction').offered_qos[0].latched
        assert bag.topic('/camera/image_raw').offered_qos[0].reliability == 'best_effort'
        frames = [bag.deserialize(m) for m in bag.messages(['/camera/image_raw'])]
        assert np.array_equal(image_to_rgb(frames[3]), frame_image(0.3, SMALL.image_size))
        text = bag.deserialize(next(bag.messages(['instruction'])))
        assert text.data == 'pick up the red block'
        times = [m.time_ns for m in bag.messages()]
        assert times == sorted(times) and times[0] == session.messages[0][2]


def test_distro_override_and_single_storage_file(tmp_path):
    bag_path = tmp_path / 'humble'
    write_layout_bag(bag_path, 'humble', 'sqlite3', SMALL)
    with open_bag(bag_path, distro='jazzy') as bag:
        assert bag.distro == 'jazzy' and bag.distro_reason == 'given'
        assert bag.deserialize(next(bag.messages(['/instruction']))).data
    # a bag whose recorder died before writing metadata.yaml: the storage file is read directly
    (bag_path / 'metadata.yaml').unlink()
    with open_bag(bag_path) as bag:
        assert 'no metadata.yaml' in bag.warnings[0]
        assert bag.topic('/ee_pose').count == 10


def _error(path, **kwargs) -> BagError:
    with pytest.raises(BagError) as info:
        with open_bag(path, **kwargs) as bag:
            for message in bag.messages():
                bag.deserialize(message)
    return info.value


def test_truncated_and_corrupt_bags(tmp_path):
    mcap = tmp_path / 'mcap'
    write_layout_bag(mcap, 'kilted', 'mcap', SMALL)
    storage_file = next(mcap.glob('*.mcap'))
    storage_file.write_bytes(storage_file.read_bytes()[:-400])
    error = _error(mcap)
    assert error.kind == 'truncated' and 'not closed cleanly' in str(error)

    db = tmp_path / 'db'
    write_layout_bag(db, 'jazzy', 'sqlite3', SMALL)
    db_file = next(db.glob('*.db3'))
    data = bytearray(db_file.read_bytes())
    data[100:4096] = os.urandom(3996)
    db_file.write_bytes(bytes(data))
    assert _error(db).kind == 'corrupt'

    garbage = tmp_path / 'garbage'
    write_layout_bag(garbage, 'kilted', 'mcap', SMALL)
    next(garbage.glob('*.mcap')).write_bytes(b'not a bag at all' * 10)
    error = _error(garbage)
    assert error.kind == 'corrupt' and 'magic' in str(error)

    (tmp_path / 'empty_metadata').mkdir()
    (tmp_path / 'empty_metadata' / 'metadata.yaml').write_text('just: text\n')
    assert _error(tmp_path / 'empty_metadata').kind == 'not_a_bag'


def test_storage_mismatch(tmp_path):
    bag_path = tmp_path / 'bag'
    write_layout_bag(bag_path, 'kilted', 'mcap', SMALL)
    meta = bag_path / 'metadata.yaml'
    meta.write_text(meta.read_text().replace('storage_identifier: mcap',
                                             'storage_identifier: sqlite3'))
    error = _error(bag_path)
    assert error.kind == 'storage_mismatch' and 'says storage sqlite3' in str(error)
    renamed = tmp_path / 'renamed.db3'
    next(bag_path.glob('*.mcap')).rename(renamed)
    error = _error(renamed)
    assert error.kind == 'storage_mismatch' and 'rename it to renamed.mcap' in str(error)


def test_unknown_type_and_missing_topic(tmp_path):
    bag_path = tmp_path / 'custom'
    write_layout_bag(bag_path, 'humble', 'sqlite3', SMALL)
    db = sqlite3.connect(next(bag_path.glob('*.db3')))
    db.execute("INSERT INTO topics VALUES (99, '/grasp', 'my_msgs/msg/Grasp', 'cdr', '')")
    db.execute("INSERT INTO messages(topic_id, timestamp, data) VALUES (99, 1, x'00010000')")
    db.commit()
    db.close()
    meta = yaml.safe_load((bag_path / 'metadata.yaml').read_text())
    meta['rosbag2_bagfile_information']['topics_with_message_count'].append({'topic_metadata': {
        'name': '/grasp', 'type': 'my_msgs/msg/Grasp', 'serialization_format': 'cdr',
        'offered_qos_profiles': ''}, 'message_count': 1})
    (bag_path / 'metadata.yaml').write_text(yaml.safe_dump(meta))
    with open_bag(bag_path) as bag:
        assert bag.topic('/grasp').msgtype == 'my_msgs/msg/Grasp'
        with pytest.raises(BagError) as info:
            bag.require_known('/grasp')
        assert info.value.kind == 'unknown_type' and 'my_msgs/msg/Grasp' in str(info.value)
        with pytest.raises(BagError) as info:
            bag.topic('/camera/depth')
        assert info.value.kind == 'missing_topic' and '/camera/image_raw' in str(info.value)


def test_writer_custom_type_from_definition_lookup(tmp_path):
    definitions = {'my_msgs/msg/Grasp': 'my_msgs/Finger[] fingers\nfloat64 width\n',
                   'my_msgs/msg/Finger': 'float64 force\n'}
    with BagWriter(tmp_path / 'bag', definitions=definitions.get) as writer:
        writer.add_topic('grasp', 'my_msgs/msg/Grasp')
        finger = writer.message_class('my_msgs/msg/Finger')
        grasp = writer.message_class('my_msgs/msg/Grasp')(
            fingers=[finger(force=1.5), finger(force=2.5)], width=0.04)
        writer.write_message('grasp', 5, grasp)
        with pytest.raises(BagError) as info:
            writer.add_topic('other', 'my_msgs/msg/Unknown')
        assert info.value.kind == 'unknown_type'
    # the definitions travel in the bag: readable without the package installed
    with open_bag(tmp_path / 'bag') as bag:
        assert bag.topic('/grasp').defined_in_bag
        message = bag.deserialize(next(bag.messages()))
        assert message.width == pytest.approx(0.04)
        assert [f.force for f in message.fingers] == [1.5, 2.5]


def test_cli_info_and_user_errors(tmp_path, capsys):
    bag_path = tmp_path / 'bag'
    write_layout_bag(bag_path, 'jazzy', 'mcap', SMALL)
    assert main(['bag', 'info', str(bag_path), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['storage'] == 'mcap' and info['version'] == 8
    assert {t['name'] for t in info['topics']} >= {'/camera/image_raw', '/instruction'}
    for argv, needle in [
        (['bag', 'info', str(tmp_path / 'nope')], 'does not exist'),
        (['bag', 'info', str(tmp_path)], 'is not a rosbag2 bag'),
        (['bag', 'info', str(bag_path), '--distro', 'ardent'], 'unknown ROS distro'),
        (['bag', 'export', str(bag_path), str(tmp_path / 'out'), '--image-topic', '/depth'],
         'topic /depth is not in'),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count('\n') == 1, err


def test_cli_error_is_one_line_without_traceback(tmp_path):
    bag_path = tmp_path / 'bag'
    write_layout_bag(bag_path, 'kilted', 'mcap', SMALL)
    storage_file = next(bag_path.glob('*.mcap'))
    storage_file.write_bytes(storage_file.read_bytes()[:1000])
    result = run_rt2(['bag', 'info', str(bag_path)])
    assert result.returncode == 2
    assert result.stderr.startswith('rt2 bag: error: ') and 'truncated' in result.stderr
    assert 'Traceback' not in result.stderr and result.stderr.count('\n') == 1

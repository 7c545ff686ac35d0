"""
Closed loop over DDS (rt2_sim process <-> expert node) recorded to bags that read back.

`rt2 sim record-demos` runs as a user runs it: a separate sim process, the expert and the
recorder in the CLI process, real rosbag2 files written by rosbags.
"""
import json
from pathlib import Path

from cli_helpers import run_rt2
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def read_bag(path):
    from rosbags.highlevel import AnyReader
    from rt2_ros.sim.demo_recorder_node import typestore_for
    messages = {}
    with AnyReader([Path(path)], default_typestore=typestore_for('kilted')) as reader:
        for connection, stamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(
                (stamp, raw, reader.deserialize(raw, connection.msgtype)))
    return messages


def test_record_demos_per_episode_mcap(tmp_path):
    out = tmp_path / 'demos'
    result = run_rt2(['sim', 'record-demos', '--episodes', '2', '--family', 'pick', '--seed',
                      '10', '--out', str(out), '--camera-rate-hz', '15'], timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    index = json.loads((out / 'index.json').read_text())
    assert [r['seed'] for r in index] == [10, 11]
    assert all(r['success'] and r['status'] == 'terminated' for r in index), index
    for entry in index:
        bag = Path(entry['bag'])
        assert (bag / 'metadata.yaml').is_file() and list(bag.glob('*.mcap'))
        messages = read_bag(bag)
        (_, _, instruction), = messages['/instruction']
        assert instruction.data == entry['instruction']
        actions = [m for _, _, m in messages['/expert/action']]
        assert len(actions) == entry['decisions']
        assert actions[0].layout.dim[0].label.split(',')[0] == 'terminate'
        assert actions[-1].data[0] == 0.0 and all(a.data[0] == 1.0 for a in actions[:-1])
        texts = [m.data for _, _, m in messages['/expert/action_text']]
        assert len(texts) == len(actions) and texts[-1].startswith('0 ')
        image = messages['/camera/image_raw'][-1][2]
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
        assert pixels.shape == (224, 224, 3) and pixels.std() > 10
        assert len(messages['/servo/delta_twist_cmds']) > 5 * len(actions)
        assert messages['/servo/delta_twist_cmds'][0][2].header.frame_id == 'base_link'
        assert messages['/rt2_sim/success'][-1][2].data is True
        assert {'/ee_pose', '/gripper/commands', '/expert/intended_action',
                '/camera/camera_info', '/rt2_sim/episode'} <= set(messages)
        # The same bytes become rclpy messages, as the bag tools do.
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import Image
        msg = deserialize_message(bytes(messages['/camera/image_raw'][0][1]), Image)
        assert (msg.width, msg.encoding) == (224, 'rgb8')


def test_record_demos_single_sqlite3_bag(tmp_path):
    out = tmp_path / 'demos'
    result = run_rt2(['sim', 'record-demos', '--episodes', '2', '--family', 'push_next_to',
                      '--single', '--storage', 'sqlite3', '--distro', 'humble', '--out',
                      str(out), '--camera-rate-hz', '20', '--decision-rate-hz', '10',
                      '--size', '64x48'], timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    bag = out / 'train_seed0-1'
    assert list(bag.glob('*.db3'))
    messages = read_bag(bag)
    instructions = [m.data for _, _, m in messages['/instruction']]
    index = json.loads((out / 'index.json').read_text())
    assert instructions == [r['instruction'] for r in index]
    episodes = {json.loads(m.data)['episode'] for _, _, m in messages['/rt2_sim/episode']}
    assert len(episodes) == 2
    image = messages['/camera/image_raw'][0][2]
    assert (image.width, image.height) == (64, 48)


def test_record_demos_refuses_to_overwrite(tmp_path):
    (tmp_path / 'train_seed000000').mkdir()
    result = run_rt2(['sim', 'record-demos', '--episodes', '1', '--out', str(tmp_path)])
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and 'already exists' in result.stderr

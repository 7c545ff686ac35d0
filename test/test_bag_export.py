"""`rt2 bag export` rows, and the twist -> action derivation behind export and eval."""
import json

import cv2
import numpy as np
import pytest
from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.bags.rotations import rotvec_to_rpy, rpy_to_rotvec
from rt2_ros.bags.steps import TwistIntegrator
from rt2_ros.bags.synthetic import frame_image, SessionSpec, write_session
from rt2_ros.cli.main import main

ROW_KEYS = {'image', 'instruction', 'prompt', 'gripper', 'action', 'bins', 'values', 'terminate',
            'episode', 'step', 'index', 'time_ns'}


def _rows(out):
    return [json.loads(line) for line in (out / 'dataset.jsonl').read_text().splitlines()]


def test_export_rows_from_action_topic(tmp_path, capsys):
    session = write_session(tmp_path / 'bag', SessionSpec(), storage='sqlite3')
    out = tmp_path / 'dataset'
    assert main(['bag', 'export', str(tmp_path / 'bag'), str(out), '--no-progress']) == 0
    assert '8 rows, 2 episodes' in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 8 and all(set(r) == ROW_KEYS for r in rows)
    codec = make_codec(load_action_space('rt2'))
    for row, expert in zip(rows, session.actions):
        decoded = codec.decode(row['action'])
        assert list(decoded.bins) == row['bins'] == list(codec.values_to_bins(expert))
        assert row['values'] == pytest.approx(expert, abs=1e-6)
        assert row['terminate'] == decoded.terminate
        assert row['prompt'] == f'Q: what action should the robot take to {row["instruction"]}? A:'
    assert [r['terminate'] for r in rows] == ([False] * 3 + [True]) * 2
    assert [r['episode'] for r in rows] == [0] * 4 + [1] * 4
    assert [r['step'] for r in rows] == [0, 1, 2, 3] * 2
    assert rows[4]['instruction'] == 'place it on the blue plate'
    # images beside the jsonl, paths relative to it, pixels exactly the decision's frame
    image = cv2.imread(str(out / rows[3]['image']))[:, :, ::-1]
    frame_s = (rows[3]['time_ns'] - session.decision_times[0]) / 1e9
    assert np.array_equal(image, frame_image(np.floor(frame_s * 10) / 10, (16, 16)))
    info = json.loads((out / 'info.json').read_text())
    assert info['rows'] == 8 and info['space'] == 'rt2' and info['names'][0] == 'terminate'
    assert info['action_source'] == 'action topic /expert/action'


def test_export_from_twists_matches_action_topic(tmp_path):
    write_session(tmp_path / 'bag', SessionSpec())
    assert main(['bag', 'export', str(tmp_path / 'bag'), str(tmp_path / 'a'),
                 '--no-progress']) == 0
    assert main(['bag', 'export', str(tmp_path / 'bag'), str(tmp_path / 'b'), '--from-twists',
                 '--no-progress', '--image-format', 'jpg']) == 0
    from_actions, from_twists = _rows(tmp_path / 'a'), _rows(tmp_path / 'b')
    assert [r['action'] for r in from_twists] == [r['action'] for r in from_actions]
    assert from_twists[0]['image'].endswith('.jpg')
    info = json.loads((tmp_path / 'b' / 'info.json').read_text())
    assert info['action_source'].startswith('twists /servo/delta_twist_cmds')


def test_export_openvla_space_and_errors(tmp_path, capsys):
    write_session(tmp_path / 'twists', SessionSpec(parts=('camera', 'instruction', 'twist')))
    bag = str(tmp_path / 'twists')
    assert main(['bag', 'export', bag, str(tmp_path / 'x'), '--no-progress']) == 2
    assert '--assume-gripper' in capsys.readouterr().err
    assert main(['bag', 'export', bag, str(tmp_path / 'y'), '--no-progress', '--space', 'openvla',
                 '--assume-gripper', 'open']) == 0
    rows = _rows(tmp_path / 'y')
    ids = [int(t) for t in rows[0]['action'].split()]
    assert len(ids) == 7 and all(31744 <= i <= 31999 for i in ids)
    assert rows[0]['terminate'] is None and rows[0]['values'][6] == 1.0
    # the output must be new; an 8-value action topic does not fit a 7-dim space
    assert main(['bag', 'export', bag, str(tmp_path / 'y'), '--no-progress',
                 '--assume-gripper', 'open']) == 2
    assert 'not an empty directory' in capsys.readouterr().err
    write_session(tmp_path / 'full', SessionSpec())
    assert main(['bag', 'export', str(tmp_path / 'full'), str(tmp_path / 'z'), '--no-progress',
                 '--space', 'openvla']) == 2
    assert 'carries 8 values but action space openvla has 7' in capsys.readouterr().err


def test_export_states_the_recorded_gripper_joint_in_a_gripper_prompt(tmp_path, capsys):
    # A recording with joint_states: each row's prompt says what the gripper joint read at that
    # frame, as the controller would have asked a model trained with {gripper}.
    from rt2_ros.bags.synthetic import ALL_PARTS
    session = write_session(tmp_path / 'bag', SessionSpec(parts=ALL_PARTS + ('joint_states',)))
    out = tmp_path / 'dataset'
    assert main(['bag', 'export', str(tmp_path / 'bag'), str(out), '--no-progress',
                 '--prompt-template', 'rt2_gripper']) == 0
    rows = _rows(out)
    space = load_action_space('rt2')
    # each frame shows the fingers where the decisions before it sent them (open at the start)
    commanded = [space.gripper_openness(a[space.gripper_index]) for a in session.actions]
    assert [r['gripper'] for r in rows] == pytest.approx([1.0] + commanded[:-1])
    for row in rows:
        word = 'open' if row['gripper'] >= 0.9 else 'closed'
        assert row['prompt'] == (f'Q: the gripper is {word}. what action should the robot take '
                                 f'to {row["instruction"]}? A:')
    assert {r['prompt'].split('.')[0] for r in rows} == {'Q: the gripper is open',
                                                         'Q: the gripper is closed'}
    # the gripper joint must be found under the name given; without it, one clear error
    assert main(['bag', 'export', str(tmp_path / 'bag'), str(tmp_path / 'other'),
                 '--no-progress', '--prompt-template', 'rt2_gripper',
                 '--gripper-joint', 'panda_finger_joint1']) == 2
    assert 'gripper' in capsys.readouterr().err
    # a bag without joint_states still exports with prompts that do not state the gripper
    write_session(tmp_path / 'plain', SessionSpec())
    assert main(['bag', 'export', str(tmp_path / 'plain'), str(tmp_path / 'plain_out'),
                 '--no-progress']) == 0
    assert {r['gripper'] for r in _rows(tmp_path / 'plain_out')} == {None}


def test_stale_twist_stops_counting_like_servo():
    velocity = np.array([0.1, 0.0, -0.2])
    integrator = TwistIntegrator([(0, velocity, np.zeros(3))], timeout_s=0.1)
    translation, rpy = integrator.integrate(0, 333_333_333)
    assert translation == pytest.approx(velocity * 0.1)
    # a window that starts while the twist is held counts only the overlap
    translation, _ = integrator.integrate(50_000_000, 400_000_000)
    assert translation == pytest.approx(velocity * 0.05)


def test_rotation_twists_compose_to_the_action_rpy():
    rng = np.random.default_rng(3)
    for _ in range(50):
        rpy = rng.uniform(-0.25, 0.25, 3)
        assert rotvec_to_rpy(rpy_to_rotvec(rpy)) == pytest.approx(rpy, abs=1e-12)
        omega = rpy_to_rotvec(rpy) / 0.3
        ticks = [(int(i * 0.03e9), np.zeros(3), omega) for i in range(10)]
        _, integrated = TwistIntegrator(ticks, timeout_s=0.1).integrate(0, int(0.3e9))
        assert integrated == pytest.approx(rpy, abs=1e-9)

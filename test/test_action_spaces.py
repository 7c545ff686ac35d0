"""Presets load with the documented layout; malformed YAML is rejected with a reason."""
import math

import pytest

from rt2_ros.actions import ActionSpaceError, load_action_space, preset_names
from rt2_ros.actions.space import parse_action_space


def test_presets_shipped():
    assert {'rt2', 'openvla', 'rt1_mobile'} <= set(preset_names())


def test_rt2_preset_is_the_papers_layout():
    space = load_action_space('rt2')
    assert space.names == ('terminate', 'dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw',
                           'gripper_extension')
    assert space.tokenization == 'text'
    assert space.binning == 'rt1_grid'
    assert all(d.bins == 256 for d in space.dimensions[1:])
    assert space.dimensions[0].labels == ('terminate', 'continue')
    assert space.terminate_index == 0
    assert space.indices('translation') == [1, 2, 3]
    assert space.indices('rotation') == [4, 5, 6]
    assert space.gripper_index == 7
    assert space.gripper_openness(1.0) == 1.0 and space.gripper_openness(0.0) == 0.0


def test_openvla_preset():
    space = load_action_space('openvla')
    assert space.size == 7
    assert space.tokenization == 'vocab_ids'
    assert space.vocab.layout == 'inverted_tail' and space.vocab.vocab_size == 32000
    assert space.terminate_index is None
    assert space.gripper_openness(1.0) == 1.0


def test_rt1_mobile_preset_has_base_and_mode():
    space = load_action_space('rt1_mobile')
    assert space.dimensions[0].labels == ('terminate', 'arm', 'base')
    assert len(space.indices('base_translation')) == 2
    assert len(space.indices('base_rotation')) == 1
    rot = space.dimensions[space.indices('rotation')[0]]
    assert math.isclose(rot.high, math.pi / 2)
    # RT-1: gripper_closedness 1 = close, -1 = open
    assert space.gripper_openness(-1.0) == 1.0 and space.gripper_openness(1.0) == 0.0


def test_load_by_path(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text('name: mine\ndimensions:\n'
                    '  - {name: a, role: translation, axis: x, type: continuous,'
                    ' low: -1, high: 1}\n')
    space = load_action_space(str(path))
    assert space.name == 'mine' and space.size == 1


def test_unknown_preset_lists_known():
    with pytest.raises(ActionSpaceError, match='rt2'):
        load_action_space('nope')


def test_missing_file():
    with pytest.raises(ActionSpaceError, match='does not exist'):
        load_action_space('/nonexistent/space.yaml')


@pytest.mark.parametrize('data, message', [
    ({'dimensions': []}, "missing key 'name'"),
    ({'name': 'x', 'dimensions': []}, 'non-empty list'),
    ({'name': 'x', 'dimensions': [{'name': 'a', 'type': 'continuous', 'low': 1, 'high': 0}]},
     'below high'),
    ({'name': 'x', 'dimensions': [{'name': 'a', 'type': 'weird'}]}, 'type'),
    ({'name': 'x', 'dimensions': [{'name': 'a', 'type': 'continuous', 'low': 0, 'high': 'inf'}]},
     'not finite'),
    ({'name': 'x', 'dimensions': [{'name': 'a', 'type': 'continuous', 'low': 0, 'high': 1},
                                  {'name': 'a', 'type': 'continuous', 'low': 0, 'high': 1}]},
     'unique'),
    ({'name': 'x', 'dimensions': [{'name': 't', 'role': 'terminate', 'type': 'discrete',
                                   'labels': ['stop', 'go']}]}, "'terminate' label"),
    ({'name': 'x', 'tokenization': 'vocab_ids',
      'dimensions': [{'name': 'a', 'type': 'continuous', 'low': 0, 'high': 1}]}, 'vocab'),
    ({'name': 'x', 'gripper': {'dimension': 'g'},
      'dimensions': [{'name': 'a', 'type': 'continuous', 'low': 0, 'high': 1}]}, 'gripper'),
])
def test_invalid_definitions(data, message):
    with pytest.raises(ActionSpaceError, match=message):
        parse_action_space(data)


def test_with_vocab_size():
    space = load_action_space('openvla').with_vocab_size(32064)
    assert space.vocab.vocab_size == 32064
    with pytest.raises(ActionSpaceError):
        load_action_space('rt2').with_vocab_size(32000)

"""RT-2 text codec: the paper's examples, chain-of-thought, and every kind of invalid output."""
import re

import numpy as np
import pytest

from rt2_ros.actions import ActionDecodeError, ActionEncodeError, load_action_space, make_codec
from rt2_ros.actions.codec import TextActionCodec


@pytest.fixture(scope='module')
def codec() -> TextActionCodec:
    return make_codec(load_action_space('rt2'))


def test_paper_example(codec):
    decoded = codec.decode('1 128 91 241 5 101 127 217')
    assert list(decoded.bins) == [1, 128, 91, 241, 5, 101, 127, 217]
    assert decoded.terminate is False
    assert decoded.plan is None
    # RT-1 grid: value = bin / 255 * (high - low) + low
    assert decoded.value('dx') == pytest.approx(128 / 255 * 0.1 - 0.05)
    assert decoded.value('dz') == pytest.approx(241 / 255 * 0.1 - 0.05)
    assert decoded.value('droll') == pytest.approx(5 / 255 * 0.5 - 0.25)
    assert decoded.value('gripper_extension') == pytest.approx(217 / 255)


def test_terminate_token(codec):
    decoded = codec.decode('0 128 128 128 128 128 128 255')
    assert decoded.terminate is True
    assert decoded.labels == {'terminate': 'terminate'}


def test_chain_of_thought(codec):
    decoded = codec.decode('Plan: pick rock. Action: 1 143 129 123 145 114 115 127')
    assert decoded.plan == 'pick rock'
    assert list(decoded.bins) == [1, 143, 129, 123, 145, 114, 115, 127]


def test_plan_with_digits_and_the_word_action(codec):
    decoded = codec.decode('Plan: move 2 blocks; action: careful. Action: 1 1 2 3 4 5 6 7')
    assert decoded.plan == 'move 2 blocks; action: careful'
    assert list(decoded.bins) == [1, 1, 2, 3, 4, 5, 6, 7]


def test_action_prefix_and_whitespace(codec):
    decoded = codec.decode('  Action:  1 0 0 0 0 0 0 0\n')
    assert list(decoded.bins) == [1, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize('text, kind, fragment', [
    ('', 'empty', 'empty'),
    ('   \n', 'empty', 'empty'),
    ('1 2 3', 'count', 'expected 8'),
    ('1 2 3 4 5 6 7 8 9', 'count', 'got 9'),
    ('1 2 3 4 5 6 7 256', 'out_of_range', 'gripper_extension'),
    ('2 2 3 4 5 6 7 8', 'out_of_range', 'terminate'),
    ('1 2 3 4 5 6 7 -8', 'not_integer', "'-8'"),
    ('1 2 3 4.5 5 6 7 8', 'not_integer', 'dz'),
    ('1 2 3 four 5 6 7 8', 'not_integer', "'four'"),
    ('Plan: do it.', 'format', 'no "Action:"'),
    ('Sure! Action: 1 2 3 4 5 6 7 8', 'format', 'unexpected text'),
    ('Plan: x. Action:', 'empty', 'no action tokens'),
    ('1 2 3 4 5 6 7 99999999999999999999', 'not_integer', 'gripper_extension'),
    ('x' * 10000, 'too_long', 'characters'),
])
def test_invalid_outputs_raise_typed_errors(codec, text, kind, fragment):
    with pytest.raises(ActionDecodeError) as info:
        codec.decode(text)
    assert info.value.kind == kind
    assert fragment in str(info.value)


def test_bytes_and_bad_utf8(codec):
    assert codec.decode(b'1 1 1 1 1 1 1 1').bins[0] == 1
    with pytest.raises(ActionDecodeError):
        codec.decode(b'\xff\xfe')
    with pytest.raises(ActionDecodeError):
        codec.decode(None)


def test_encode_roundtrip_and_plan(codec):
    text = codec.encode([1, 0.01, -0.02, 0.0, 0.1, -0.1, 0.0, 1.0])
    assert text == '1 153 77 128 179 77 128 255'
    assert codec.decode(text).value('dx') == pytest.approx(0.01, abs=0.1 / 255 / 2)
    cot = codec.encode([0, 0, 0, 0, 0, 0, 0, 0], plan='place the apple.')
    assert cot.startswith('Plan: place the apple. Action: 0 ')
    assert codec.decode(cot).plan == 'place the apple'


@pytest.mark.parametrize('values', [
    [1, 0, 0],
    [1, 0, 0, 0, 0, 0, 0, float('nan')],
    [0.5, 0, 0, 0, 0, 0, 0, 0],
    [2, 0, 0, 0, 0, 0, 0, 0],
])
def test_encode_rejects_bad_values(codec, values):
    with pytest.raises(ActionEncodeError):
        codec.encode(values)


def test_encode_clips_out_of_range_continuous(codec):
    # Encoding is for training data: RT-1 clips to the bounds before binning.
    assert codec.encode([1, 1.0, -1.0, 0, 0, 0, 0, 2.0]).split()[1:3] == ['255', '0']


def test_regex_matches_exactly_valid_actions(codec):
    pattern = re.compile(codec.action_regex('optional'))
    assert pattern.fullmatch('1 128 91 241 5 101 127 217')
    assert pattern.fullmatch('Plan: pick rock. Action: 1 143 129 123 145 114 115 127')
    assert not pattern.fullmatch('2 128 91 241 5 101 127 217')
    assert not pattern.fullmatch('1 128 91 241 5 101 127 256')
    assert not pattern.fullmatch('1 128 91 241 5 101 127')
    assert not pattern.fullmatch('1 128 091 241 5 101 127 217')
    required = re.compile(codec.action_regex('required'))
    assert not required.fullmatch('1 128 91 241 5 101 127 217')
    bare = re.compile(codec.action_regex('none'))
    assert not bare.fullmatch('Plan: x. Action: 1 128 91 241 5 101 127 217')


def test_rt1_mobile_floor_rounding_is_rt1_exact():
    codec = make_codec(load_action_space('rt1_mobile'))
    values = [1, 0.999, -0.999, 0.0, 0, 0, 0, 0.5, 0, 0, 0]
    bins = codec.values_to_bins(values)
    # RT-1: t = int((a - low) / (high - low) * (bins - 1))
    assert bins[1] == int((0.999 + 1) / 2 * 255)
    assert bins[2] == int((-0.999 + 1) / 2 * 255)
    assert bins[3] == int(1 / 2 * 255) == 127
    decoded = codec.decode(' '.join(str(b) for b in bins))
    assert decoded.labels['terminate_episode'] == 'arm'
    assert decoded.terminate is False
    # RT-1 decode: a = t / (bins - 1) * (high - low) + low
    assert np.allclose(decoded.values[1:4], bins[1:4] / 255 * 2.0 - 1.0)
    assert decoded.value('base_yaw') == pytest.approx(bins[10] / 255 * 2 * np.pi - np.pi)

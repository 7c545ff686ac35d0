"""Property tests: round trips within half a bin, valid tokens decode in bounds, junk raises."""
from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from rt2_ros.actions import ActionDecodeError, load_action_space, make_codec
from rt2_ros.actions.regex import int_range_regex

SPACES = ['rt2', 'openvla', 'rt1_mobile']
CODECS = {name: make_codec(load_action_space(name)) for name in SPACES}


def _in_range_action(space):
    elements = []
    for dim in space.dimensions:
        if dim.is_discrete:
            elements.append(st.integers(0, dim.bins - 1).map(float))
        else:
            elements.append(st.floats(dim.low, dim.high, allow_nan=False))
    return st.tuples(*elements)


def _half_bin(space, dim):
    if space.binning == 'openvla_centers':
        return (dim.high - dim.low) / (dim.bins - 1) / 2
    if space.rounding == 'floor':  # RT-1 truncation: up to one full grid step
        return dim.bin_width
    return dim.bin_width / 2


@pytest.mark.parametrize('name', SPACES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_roundtrip_within_half_a_bin(name, data):
    codec = CODECS[name]
    space = codec.space
    values = np.array(data.draw(_in_range_action(space)))
    tokens = codec.encode(values)
    decoded = codec.decode(tokens)
    for i, dim in enumerate(space.dimensions):
        tolerance = 0 if dim.is_discrete else _half_bin(space, dim) + 1e-12
        assert abs(decoded.values[i] - values[i]) <= tolerance, (dim.name, values[i])


@pytest.mark.parametrize('name', SPACES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_valid_token_decodes_inside_bounds(name, data):
    codec = CODECS[name]
    space = codec.space
    bins = [data.draw(st.integers(0, d.bins - 1)) for d in space.dimensions]
    if space.tokenization == 'vocab_ids':
        decoded = codec.decode([int(i) for i in codec.bin_to_id(np.array(bins))])
    else:
        decoded = codec.decode(' '.join(map(str, bins)))
    assert np.all(decoded.values >= np.array(space.lows))
    assert np.all(decoded.values <= np.array(space.highs))
    assert np.all(np.isfinite(decoded.values))


@pytest.mark.parametrize('name', ['rt2', 'rt1_mobile'])
@settings(max_examples=500, deadline=None)
@given(text=st.one_of(
    st.text(max_size=80),
    st.lists(st.integers(-5, 300).map(str), max_size=12).map(' '.join),
    st.text(alphabet='0123456789 .:-PlanAction\n', max_size=60),
))
def test_random_text_decodes_or_raises_typed_error(name, text):
    codec = CODECS[name]
    try:
        decoded = codec.decode(text)
    except ActionDecodeError as exc:
        assert exc.kind in {'empty', 'format', 'count', 'not_integer', 'out_of_range', 'too_long'}
        return
    assert decoded.values.shape == (codec.space.size,)
    assert np.all(np.isfinite(decoded.values))


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.one_of(st.integers(-10, 40000), st.text(max_size=3), st.none(),
                              st.floats()), max_size=10))
def test_random_ids_decode_or_raise_typed_error(ids):
    codec = CODECS['openvla']
    try:
        decoded = codec.decode(ids)
    except ActionDecodeError:
        return
    assert np.all(np.abs(decoded.values) <= 1.0)


@settings(max_examples=200, deadline=None)
@given(low=st.integers(0, 1200), span=st.integers(0, 1500), probe=st.integers(0, 3000))
def test_int_range_regex_matches_exactly_the_range(low, span, probe):
    import re
    high = low + span
    pattern = re.compile(int_range_regex(low, high))
    assert bool(pattern.fullmatch(str(probe))) == (low <= probe <= high)
    assert not pattern.fullmatch('0' + str(probe))

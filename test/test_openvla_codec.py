"""OpenVLA id codec against OpenVLA's own formulas, including both ends of the id range."""
import json

import numpy as np
import pytest

from rt2_ros.actions import (
    ActionDecodeError, load_action_space, load_dataset_statistics, make_codec, StatisticsError,
    unnormalizer_from_statistics,
)

VOCAB = 32000


def openvla_reference_decode(token_ids, vocab_size=VOCAB):
    """Decode like OpenVLA's published tokenizer (prismatic/vla/action_tokenizer.py)."""
    bins = np.linspace(-1, 1, 256)
    centers = (bins[:-1] + bins[1:]) / 2.0
    discretized = vocab_size - np.asarray(token_ids)
    discretized = np.clip(discretized - 1, a_min=0, a_max=centers.shape[0] - 1)
    return centers[discretized]


def openvla_reference_encode(action, vocab_size=VOCAB):
    bins = np.linspace(-1, 1, 256)
    discretized = np.digitize(np.clip(action, -1.0, 1.0), bins)
    return vocab_size - discretized


@pytest.fixture(scope='module')
def codec():
    return make_codec(load_action_space('openvla'))


def test_every_id_of_the_block_matches_reference(codec):
    ids = np.arange(VOCAB - 256, VOCAB)
    for start in range(0, 256, 7):
        chunk = ids[start:start + 7]
        if len(chunk) < 7:
            chunk = np.concatenate([chunk, ids[:7 - len(chunk)]])
        decoded = codec.decode([int(i) for i in chunk])
        assert np.array_equal(decoded.values, openvla_reference_decode(chunk))


def test_range_edges(codec):
    # lowest id = highest value: d = 256 folds onto the last centre
    top = codec.decode([VOCAB - 256] * 7)
    assert np.allclose(top.values, openvla_reference_decode([VOCAB - 256] * 7))
    assert top.values[0] == pytest.approx(0.99607843, abs=1e-7)
    # ids VOCAB-256 and VOCAB-255 decode to the same value (OpenVLA's clip)
    assert np.array_equal(codec.decode([VOCAB - 255] * 7).values, top.values)
    bottom = codec.decode([VOCAB - 1] * 7)
    assert bottom.values[0] == pytest.approx(-0.99607843, abs=1e-7)


@pytest.mark.parametrize('bad', [VOCAB - 257, VOCAB, VOCAB + 5, 0, -1, 31000])
def test_ids_outside_block(codec, bad):
    with pytest.raises(ActionDecodeError) as info:
        codec.decode([bad] + [VOCAB - 1] * 6)
    assert info.value.kind == 'outside_block'
    assert str(bad) in str(info.value) and '31744..31999' in str(info.value)


def test_wrong_count_and_types(codec):
    with pytest.raises(ActionDecodeError) as info:
        codec.decode([VOCAB - 1] * 6)
    assert info.value.kind == 'count'
    with pytest.raises(ActionDecodeError) as info:
        codec.decode([VOCAB - 1] * 6 + ['x'])
    assert info.value.kind == 'not_integer'
    with pytest.raises(ActionDecodeError) as info:
        codec.decode([])
    assert info.value.kind == 'empty'


def test_encode_matches_reference(codec):
    rng = np.random.default_rng(0)
    for action in rng.uniform(-1.2, 1.2, size=(200, 7)).tolist() + [[-1.0] * 7, [1.0] * 7]:
        assert codec.encode(action) == list(openvla_reference_encode(np.array(action)))


def test_other_vocab_size():
    space = load_action_space('openvla').with_vocab_size(32064)
    codec = make_codec(space)
    decoded = codec.decode([32063] * 7)
    assert np.allclose(decoded.values, openvla_reference_decode([32063] * 7, 32064))


def _stats(tmp_path, entries):
    path = tmp_path / 'dataset_statistics.json'
    path.write_text(json.dumps(entries))
    return load_dataset_statistics(path)


def test_unnormalization(tmp_path):
    q01 = [-0.02, -0.03, -0.01, -0.1, -0.2, -0.3, 0.0]
    q99 = [0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 1.0]
    stats = _stats(tmp_path, {'bridge_orig': {'action': {
        'q01': q01, 'q99': q99, 'mask': [True] * 6 + [False]}}})
    unnorm = unnormalizer_from_statistics(stats, None, 7)
    codec = make_codec(load_action_space('openvla'), unnorm)
    ids = [31900, 31800, 31999, 31744, 31872, 31870, 31744]
    normalized = openvla_reference_decode(ids)
    expected = np.where([True] * 6 + [False],
                        0.5 * (normalized + 1) * (np.array(q99) - np.array(q01)) + np.array(q01),
                        normalized)
    assert np.allclose(codec.decode(ids).values, expected)
    low, high = codec.bounds()
    assert np.all(low[:6] >= np.array(q01[:6]) - 1e-12) and np.all(high[:6] <= q99[:6])


def test_missing_mask_means_all_dims(tmp_path):
    stats = _stats(tmp_path, {'a': {'action': {'q01': [0.0] * 7, 'q99': [2.0] * 7}}})
    unnorm = unnormalizer_from_statistics(stats, 'a', 7)
    assert unnorm.mask.all()
    assert np.allclose(unnorm.unnormalize(np.zeros(7)), 1.0)


def test_key_selection_rules(tmp_path):
    stats = _stats(tmp_path, {'a': {'action': {'q01': [0.0] * 7, 'q99': [1.0] * 7}},
                              'b': {'action': {'q01': [0.0] * 7, 'q99': [1.0] * 7}}})
    with pytest.raises(StatisticsError, match='several datasets'):
        unnormalizer_from_statistics(stats, None, 7)
    with pytest.raises(StatisticsError, match="'c' not in"):
        unnormalizer_from_statistics(stats, 'c', 7)
    assert unnormalizer_from_statistics(stats, 'b', 7).key == 'b'


@pytest.mark.parametrize('entry, message', [
    ({'action': {'q01': [0.0] * 6, 'q99': [1.0] * 7}}, 'shape'),
    ({'action': {'q99': [1.0] * 7}}, "no 'q01'"),
    ({'proprio': {}}, 'no "action"'),
    ({'action': {'q01': [1.0] * 7, 'q99': [0.0] * 7}}, 'below'),
    ({'action': {'q01': [0.0] * 7, 'q99': [1.0] * 7, 'mask': [True] * 3}}, 'mask'),
])
def test_bad_statistics(tmp_path, entry, message):
    stats = _stats(tmp_path, {'k': entry})
    with pytest.raises(StatisticsError, match=message):
        unnormalizer_from_statistics(stats, 'k', 7)


def test_unreadable_statistics(tmp_path):
    with pytest.raises(StatisticsError, match='does not exist'):
        load_dataset_statistics(tmp_path / 'none.json')
    bad = tmp_path / 'bad.json'
    bad.write_text('{not json')
    with pytest.raises(StatisticsError, match='cannot read'):
        load_dataset_statistics(bad)

"""`rt2 actions` as a user runs it: JSON out, exit 2 and one stderr line on bad input."""
import json

from cli_helpers import run_rt2
import pytest


def test_decode_rt2_text():
    result = run_rt2(['actions', 'decode', '--space', 'rt2', '1 128 91 241 5 101 127 217'])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out['names'][0] == 'terminate' and len(out['action']) == 8
    assert out['terminate'] is False and out['plan'] is None
    assert out['action'][7] == pytest.approx(217 / 255)


def test_decode_tokens_as_separate_arguments_and_plan():
    result = run_rt2(['actions', 'decode', '--space', 'rt2', 'Plan:', 'pick', 'rock.', 'Action:',
                      '0', '143', '129', '123', '145', '114', '115', '127'])
    out = json.loads(result.stdout)
    assert out['plan'] == 'pick rock' and out['terminate'] is True


def test_decode_openvla_ids_with_stats(tmp_path):
    stats = tmp_path / 'stats.json'
    stats.write_text(json.dumps({'bridge_orig': {'action': {
        'q01': [-1.0] * 7, 'q99': [3.0] * 7, 'mask': [True] * 6 + [False]}}}))
    ids = ['31999'] * 7
    plain = json.loads(run_rt2(['actions', 'decode', '--space', 'openvla', *ids]).stdout)
    assert plain['terminate'] is None
    assert plain['action'][0] == pytest.approx(-0.99607843)
    result = run_rt2(['actions', 'decode', '--space', 'openvla', '--stats', str(stats),
                      '--unnorm-key', 'bridge_orig', *ids])
    scaled = json.loads(result.stdout)
    assert scaled['action'][0] == pytest.approx(0.5 * (plain['action'][0] + 1) * 4 - 1)
    assert scaled['action'][6] == pytest.approx(plain['action'][6])


def test_vocab_size_option():
    out = json.loads(run_rt2(['actions', 'decode', '--space', 'openvla', '--vocab-size', '1000',
                              *['999'] * 7]).stdout)
    assert out['action'][0] == pytest.approx(-0.99607843)


@pytest.mark.parametrize('args, fragment', [
    (['--space', 'rt2', '1 2 3'], 'expected 8'),
    (['--space', 'rt2', '1 2 3 4 5 6 7 300'], 'outside 0..255'),
    (['--space', 'openvla', *['31743'] * 7], 'outside the action block'),
    (['--space', 'openvla', *['x'] * 7], 'not an integer'),
    (['--space', 'nope', '1'], 'unknown action space'),
    (['--space', 'openvla', '--unnorm-key', 'k', *['31999'] * 7], 'needs --stats'),
    (['--space', 'openvla', '--stats', '/no/such.json', *['31999'] * 7], 'does not exist'),
])
def test_decode_errors_exit_2_one_line(args, fragment):
    result = run_rt2(['actions', 'decode', *args])
    assert result.returncode == 2
    assert result.stdout == ''
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_encode():
    result = run_rt2(['actions', 'encode', '--space', 'rt2', '1', '0.01', '-0.02', '0', '0.1',
                      '-0.1', '0', '1'])
    assert result.stdout.strip() == '1 153 77 128 179 77 128 255'
    ids = run_rt2(['actions', 'encode', '--space', 'openvla', '-1', '1', '0', '0', '0', '0', '1'])
    assert ids.stdout.split() == ['31999', '31744', '31872', '31872', '31872', '31872', '31744']
    cot = run_rt2(['actions', 'encode', '--space', 'rt2', '--plan', 'pick rock', *['0'] * 8])
    assert cot.stdout.startswith('Plan: pick rock. Action: 0 ')


def test_encode_errors():
    result = run_rt2(['actions', 'encode', '--space', 'rt2', '1', '2'])
    assert result.returncode == 2 and 'needs 8 values' in result.stderr
    result = run_rt2(['actions', 'encode', '--space', 'rt2', *['nan'] * 8])
    assert result.returncode == 2 and 'finite' in result.stderr


def test_list_and_show():
    listing = run_rt2(['actions', 'list']).stdout
    assert 'rt2' in listing and 'openvla' in listing and 'rt1_mobile' in listing
    shown = json.loads(run_rt2(['actions', 'show', '--space', 'rt1_mobile']).stdout)
    assert shown['dimensions'][0]['labels'] == ['terminate', 'arm', 'base']

"""
`rt2 bag replay-test` on the committed golden bag pair (test/data), as CI runs it.

The real rt2_controller runs in its own process over DDS; the policy is the scripted
OpenVLA-protocol server (its k-th answer is make_golden_bags.SCRIPT[k]); see
scripts/make_golden_bags.py for why that policy and how the bags are made.
"""
from pathlib import Path

from cli_helpers import load_script, run_rt2
import pytest
from rt2_ros.bags.reader import open_bag
from rt2_ros.cli.main import main
from support.scripted_policy_server import action, ScriptedPolicyServer

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parent.parent
golden_bags = load_script('make_golden_bags')


@pytest.fixture(scope='module')
def shared_server():
    with ScriptedPolicyServer() as running:
        yield running


@pytest.fixture
def server(shared_server):
    shared_server.reset()
    return shared_server


def test_golden_bags_are_small_and_complete():
    for bag, topics in ((golden_bags.INPUT, {'/camera/image_raw', '/instruction', '/ee_pose'}),
                        (golden_bags.GOLDEN, {'/rt2_replay/servo/delta_twist_cmds',
                                              '/rt2_replay/rt2_controller/action',
                                              '/rt2_replay/gripper/commands'})):
        assert sum(f.stat().st_size for f in bag.iterdir()) < 64 * 1024
        with open_bag(bag) as reader:
            assert topics <= set(reader.topics)
    with open_bag(golden_bags.GOLDEN) as reader:
        assert reader.topic('/rt2_replay/rt2_controller/action').count == len(golden_bags.SCRIPT)


def test_replay_matches_golden(server):
    server.push(*[action(values) for values in golden_bags.SCRIPT])
    result = run_rt2(golden_bags.replay_args(server.url), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith('PASS (tolerance 0.0001)')
    assert 'ok   /rt2_replay/servo/delta_twist_cmds' in result.stdout
    assert len(server.requests()) == len(golden_bags.SCRIPT)


def test_replay_reports_a_changed_command(server, tmp_path):
    script = [list(values) for values in golden_bags.SCRIPT]
    script[3][3] = -0.02                 # the 4th decision now lowers twice as far
    server.push(*[action(values) for values in script])
    result = run_rt2(golden_bags.replay_args(server.url) + ['--keep', str(tmp_path / 'out')],
                     timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == 'FAIL (tolerance 0.0001)'
    assert any(line.startswith('DIFF /rt2_replay/rt2_controller/action') for line in lines)
    assert any(line.startswith('DIFF /rt2_replay/servo/delta_twist_cmds') for line in lines)
    assert any('twist.linear.z=-0.03' in line and line.lstrip().startswith('-')
               for line in lines)
    assert any('twist.linear.z=-0.06' in line and line.lstrip().startswith('+')
               for line in lines)
    assert 'ok   /rt2_replay/gripper/commands' in result.stdout
    with open_bag(tmp_path / 'out') as kept:
        assert kept.topic('/rt2_replay/rt2_controller/action').count == len(script)


def test_replay_user_errors(tmp_path, capsys):
    base = ['bag', 'replay-test', str(golden_bags.INPUT), '--policy', 'openvla_http',
            '--url', 'http://127.0.0.1:9']
    cases = [
        (['--golden', str(tmp_path / 'none')], 'create it with --update-golden'),
        (['--golden', str(golden_bags.GOLDEN), '--set', 'no_such_param:=1'],
         'not rt2_controller parameters: no_such_param'),
        (['--golden', str(golden_bags.GOLDEN), '--set', 'control_rate_hz:=0'],
         'control_rate_hz'),
    ]
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'todo.txt').write_text('keep me')
    cases += [
        (['--golden', str(tmp_path / 'notes'), '--update-golden'], 'is not a bag directory'),
        (['--golden', str(golden_bags.GOLDEN), '--keep', str(tmp_path / 'notes')],
         'already exists'),
    ]
    for extra, needle in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count('\n') == 1, err
    assert main(['bag', 'replay-test', str(golden_bags.GOLDEN), '--golden',
                 str(golden_bags.GOLDEN), '--policy', 'openvla_http']) == 2
    assert 'no camera/image_raw topic' in capsys.readouterr().err
    assert (tmp_path / 'notes' / 'todo.txt').read_text() == 'keep me'

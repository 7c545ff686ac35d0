"""`rt2 bag eval` against a real policy server on loopback (OpenVLA /act protocol)."""
import json

import numpy as np
import pytest
from rt2_ros.actions import load_action_space
from rt2_ros.bags.synthetic import SessionSpec, write_session
from rt2_ros.cli.main import main
from support.scripted_policy_server import action, error_200, hang, ScriptedPolicyServer

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def server():
    with ScriptedPolicyServer() as running:
        yield running


def test_eval_report_against_scripted_policy(tmp_path, server):
    session = write_session(tmp_path / 'session', SessionSpec(), storage='sqlite3')
    space = load_action_space('rt2')
    expert = session.actions
    assert len(expert) == 8            # two episodes of 4 decisions
    dx, gripper, terminate = space.index('dx'), space.gripper_index, space.terminate_index
    replies = []
    for k, values in enumerate(expert):
        answer = values.copy()
        if k in (2, 3):
            answer[dx] += 0.01            # 0.01 m off: 25.5 bins
        if k == 4:
            answer[gripper] = 1.0 - answer[gripper]
        if k == 3:
            answer[terminate] = 1.0       # the expert ended the episode here; the policy did not
        replies.append(action(answer))
    replies[5] = error_200()
    replies[6] = hang(5.0)
    server.reset()
    server.push(*replies)
    out = tmp_path / 'report'
    code = main(['bag', 'eval', str(tmp_path / 'session'), '--policy', 'openvla_http',
                 '--url', server.url, '--timeout', '0.5', '--out', str(out), '--no-progress'])
    assert code == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['action_source'] == 'action topic /expert/action'
    assert report['steps'] == {'total': 8, 'answered': 6, 'failed': 2, 'planned': 8}
    assert report['failures'] == {'protocol': 1, 'timeout': 1}
    assert report['episodes'] == 2 and report['names'] == list(space.names)
    dims = report['dimensions']
    assert set(dims) == set(space.names) - {'terminate'}
    assert dims['dx']['n'] == 6
    assert dims['dx']['mae'] == pytest.approx(0.02 / 6, abs=1e-9)
    assert dims['dx']['max_abs'] == pytest.approx(0.01, abs=1e-9)
    assert dims['dx']['bin_accuracy'] == pytest.approx(4 / 6, abs=1e-4)
    assert dims['dy']['mae'] == pytest.approx(0.0, abs=1e-9)
    assert dims['dy']['bin_accuracy'] == 1.0
    assert report['gripper']['agreement'] == pytest.approx(5 / 6, abs=1e-4)
    assert report['terminate'] == {'agreement': pytest.approx(5 / 6, abs=1e-4), 'n': 6,
                                   'tp': 1, 'fp': 0, 'fn': 1, 'tn': 4}
    assert report['bin_accuracy']['all_dims_exact'] == pytest.approx(3 / 6, abs=1e-4)
    wall = report['latency_s']['wall']
    assert wall['n'] == 8 and wall['max'] >= 0.5 > wall['p50']
    assert wall['p50'] <= wall['p90'] <= wall['p99'] <= wall['max']
    for name in ('actions.png', 'errors.png', 'latency.png'):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    rows = [json.loads(line) for line in (out / 'steps.jsonl').read_text().splitlines()]
    assert [r['error_cause'] for r in rows] == [None] * 5 + ['protocol', 'timeout', None]
    assert rows[2]['predicted'][dx] == pytest.approx(rows[2]['recorded'][dx] + 0.01)
    # the policy saw each decision's frame and the instruction in force at that time
    seen = server.requests()
    assert [r['instruction'] for r in seen] == ['pick up the red block'] * 4 + \
        ['place it on the blue plate'] * 4
    assert all(r['image_shape'] == [16, 16, 3] for r in seen)


def test_eval_from_twists_with_instruction_override(tmp_path, server):
    spec = SessionSpec(parts=('camera', 'twist', 'gripper'),
                       instructions=((0.0, 'stack the blocks'),))
    session = write_session(tmp_path / 'session', spec)
    server.reset()
    server.push(*[action(values) for values in session.actions])
    out = tmp_path / 'report'
    code = main(['bag', 'eval', str(tmp_path / 'session'), '--policy', 'openvla_http',
                 '--url', server.url, '--instruction', 'stack the blocks', '--out', str(out),
                 '--no-progress', '--no-plots', '--max-steps', '6'])
    assert code == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['action_source'].startswith('twists /servo/delta_twist_cmds')
    assert report['steps']['total'] == 6 and report['steps']['planned'] == 9
    # twists integrated over each period reproduce the expert's displacement and rotation
    assert report['bin_accuracy']['exact'] == 1.0
    for stats in report['dimensions'].values():
        assert stats['mae'] == pytest.approx(0.0, abs=1e-9)
    assert report['plots'] == {}
    assert {r['instruction'] for r in server.requests()} == {'stack the blocks'}


def test_eval_user_errors(tmp_path, capsys):
    write_session(tmp_path / 'session', SessionSpec(parts=('camera', 'twist')))
    bag = str(tmp_path / 'session')
    cases = [
        (['--policy', 'nonsense'], 'unknown policy backend'),
        (['--policy', 'openvla_http', '--url', 'http://127.0.0.1:9'], 'no instruction topic'),
        (['--policy', 'openvla_http', '--instruction', 'x', '--action-topic', '/twist'],
         'topic /twist is not in'),
        (['--policy', 'openvla_http', '--instruction', 'x', '--space', 'nope'],
         'unknown action space'),
    ]
    for extra, needle in cases:
        assert main(['bag', 'eval', bag, '--no-progress', '--out', str(tmp_path / 'r'),
                     *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count('\n') == 1, err
    assert not np.any([p.name == 'report.json' for p in tmp_path.rglob('*')])


def test_eval_asks_a_gripper_prompt_with_the_recorded_gripper_joint(tmp_path, server):
    """A model trained with {gripper} is scored from a bag as the controller would ask it."""
    from rt2_ros.bags.synthetic import ALL_PARTS

    write_session(tmp_path / 'session', SessionSpec(parts=ALL_PARTS + ('joint_states',)))
    server.reset()
    out = tmp_path / 'report'
    assert main(['bag', 'eval', str(tmp_path / 'session'), '--policy', 'openai',
                 '--url', server.url + '/v1', '--prompt-template', 'rt2_gripper',
                 '--out', str(out), '--no-progress']) == 0
    prompts = [r['prompt'] for r in server.requests() if r.get('prompt')]
    assert len(prompts) == 8
    assert prompts[0] == ('Q: the gripper is open. what action should the robot take to pick up '
                          'the red block? A:')
    assert any(p.startswith('Q: the gripper is closed.') for p in prompts)

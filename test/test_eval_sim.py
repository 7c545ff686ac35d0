"""
`rt2 eval-sim`: Wilson intervals, the report schema, seed hygiene, and one real-node run.

The ROS test runs two short episodes through real rt2_sim and rt2_controller processes over
DDS with a checkpoint in the controller's local backend, and checks the JSON a user gets.
"""
import json
import math

from cli_helpers import run_rt2
import pytest
from rt2_ros.evaluation.report import build_report, check_seed_overlap, SeedOverlapError
from rt2_ros.evaluation.stats import latency_summary, percentile, wilson_interval
from rt2_ros.sim.splits import LADDER
from tiny_models import tiny_checkpoint


def test_wilson_interval_known_values():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    low, high = wilson_interval(81, 100)
    assert low < 0.81 < high and high - low < 0.16
    # Wider for fewer trials, symmetric under success <-> failure.
    assert wilson_interval(8, 10)[0] < wilson_interval(80, 100)[0]
    assert wilson_interval(3, 20)[0] == pytest.approx(1 - wilson_interval(17, 20)[1])
    for bad in [(-1, 10), (11, 10)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_percentiles_and_latency_summary():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    summary = latency_summary([0.010, 0.020, 0.030])
    assert summary['mean_ms'] == pytest.approx(20.0) and summary['count'] == 3


def test_report_schema_and_seed_overlap():
    records = [{'seed': s, 'family': f, 'referent': 'direct', 'success': ok, 'decisions': 5,
                'terminated': ok} for s, f, ok in [(7, 'pick', True), (8, 'pick', False),
                                                   (9, 'move_to', True)]]
    report = build_report('seen', records, 'ros', {'backend': 'local'}, {'max_steps': 40},
                          [0.02, 0.04])
    assert report['success_rate'] == pytest.approx(2 / 3, abs=1e-4)
    assert report['episodes'] == 3 and report['split'] == 'seen'
    assert report['ci95'] == [pytest.approx(v, abs=1e-4) for v in wilson_interval(2, 3)]
    assert report['per_family']['pick']['success_rate'] == 0.5
    assert report['seeds']['list'] == [7, 8, 9]
    assert 'progress' not in report  # the ROS path does not track it
    for record, (gap, held) in zip(records, [(0.01, True), (0.05, False), (0.019, False)]):
        record.update(closest_xy_m=gap, grasped=held)
    progress = build_report('seen', records, 'fast', {}, {}, [])['progress']
    assert progress['reached_target_rate'] == pytest.approx(2 / 3, abs=1e-4)
    assert progress['grasped_target_rate'] == pytest.approx(1 / 3, abs=1e-4)
    json.dumps(report)
    check_seed_overlap([10, 11], [[0, 10]])
    with pytest.raises(SeedOverlapError):
        check_seed_overlap([5, 11], [[0, 10]])


def test_lockstep_ends_on_terminate_and_counts_invalid_outputs():
    from rt2_ros.evaluation.lockstep import run_lockstep

    seeds = [1_000_000, 1_000_001]
    stop = run_lockstep(lambda images, *_: ['0 128 128 128 128 128 128 255'] * len(images),
                        'seen', seeds, batch=2, max_steps=4)
    assert [(e.steps, e.terminated, e.success, e.invalid) for e in stop.episodes] == \
        [(1, True, False, 0)] * 2
    garbled = run_lockstep(lambda images, *_: ['Action: 1 2'] * len(images), 'seen', seeds,
                           batch=2, max_steps=4)
    assert [(e.steps, e.terminated, e.invalid) for e in garbled.episodes] == [(4, False, 4)] * 2
    # A plan before the action is read like the local backend's raw text.
    plan = 'Plan: 1 2 3 4. Action: 0 128 128 128 128 128 128 255'
    planned = run_lockstep(lambda images, *_: [plan] * len(images), 'seen', seeds[:1],
                           max_steps=4)
    assert planned.episodes[0].terminated and planned.episodes[0].invalid == 0
    assert len(stop.decision_latencies_s) == 1 and len(garbled.decision_latencies_s) == 4


def test_lockstep_tells_the_policy_the_gripper_opening_of_each_frame():
    from rt2_ros.evaluation.lockstep import run_lockstep

    seen = []

    def close_then_hold(images, instructions, openings):
        seen.append(list(openings))
        return ['1 128 128 128 128 128 128 0'] * len(images)  # close the gripper, stay put

    run_lockstep(close_then_hold, 'one_block', [1_000_000, 1_000_001], batch=2, max_steps=12)
    assert seen[0] == [1.0, 1.0]            # every episode starts open
    assert all(len(row) == 2 for row in seen)
    closing = [row[0] for row in seen]
    assert closing == sorted(closing, reverse=True) and closing[-1] < 0.9  # it read closed


def test_fast_cli_report_names_the_checkpoint_and_its_plan_mode(tmp_path):
    out = tmp_path / 'report.json'
    result = run_rt2(['eval-sim', '--fast', '--model', str(tiny_checkpoint('rt2')), '--split',
                      'seen', '--episodes', '2', '--max-steps', '2', '--json', str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report['episodes'] == 2 and report['split'] == 'seen' and report['mode'] == 'fast'
    assert 0.0 <= report['success_rate'] <= 1.0 and len(report['ci95']) == 2
    assert report['policy']['plan'] == 'none'
    assert all(r['decisions'] <= 2 for r in report['records'])


def test_the_ladder_reports_every_rung_easiest_first(tmp_path):
    out = tmp_path / 'ladder.json'
    result = run_rt2(['eval-sim', '--fast', '--model', str(tiny_checkpoint('rt2')), '--split',
                      'ladder', '--episodes', '1', '--max-steps', '1', '--json', str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    rungs = json.loads(out.read_text())['rungs']
    assert list(rungs) == list(LADDER)
    assert all(report['split'] == split and report['episodes'] == 1
               for split, report in rungs.items())
    assert [line.split(' ')[0] for line in result.stdout.splitlines()] == list(LADDER)


def test_cli_refuses_training_seeds_and_bad_input(tmp_path):
    model = tmp_path / 'model'
    model.mkdir()
    (model / 'config.json').write_text('{}')
    (model / 'training.json').write_text(json.dumps({'train_seed_ranges': [[0, 3000]]}))
    result = run_rt2(['eval-sim', '--model', str(model), '--split', 'seen', '--seed', '10',
                      '--episodes', '2', '--fast'])
    assert result.returncode == 2 and 'overlap the training seeds' in result.stderr
    assert 'Traceback' not in result.stderr
    result = run_rt2(['eval-sim', '--model', str(tmp_path / 'nope'), '--split', 'seen'])
    assert result.returncode == 2 and 'not a checkpoint' in result.stderr


@pytest.mark.ros
@pytest.mark.slow
def test_eval_sim_through_real_nodes_writes_the_report(tmp_path):
    checkpoint = tiny_checkpoint('rt2')
    out = tmp_path / 'seen.json'
    result = run_rt2(['eval-sim', '--model', str(checkpoint), '--split', 'seen',
                      '--episodes', '2', '--max-steps', '3', '--json', str(out)], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report['mode'] == 'ros' and report['split'] == 'seen' and report['episodes'] == 2
    assert 0.0 <= report['success_rate'] <= 1.0
    low, high = report['ci95']
    assert 0.0 <= low <= report['success_rate'] <= high <= 1.0
    assert report['seeds']['first'] == 1_000_000
    for record in report['records']:
        # Every episode ran through the controller: decisions were accepted and executed.
        assert record['end'] in ('max_steps', 'terminated'), record
        assert record['decisions'] >= 1 and 'running' in record['controller_states']
    latency = report['decision_latency']
    assert latency['count'] >= 1 and math.isfinite(latency['mean_ms'])
    assert 'seen (ros)' in result.stdout


@pytest.mark.ros
@pytest.mark.slow
def test_the_expert_backend_solves_the_first_rungs_through_real_nodes(tmp_path):
    # The scripted expert as a controller backend, reading rt2_sim's state per camera frame:
    # the same codec, mapper and safety stage as any learned policy, over DDS.
    for split, episodes in (('one_block', 3), ('two_blocks', 2)):
        out = tmp_path / f'{split}.json'
        result = run_rt2(['eval-sim', '--backend', 'expert', '--split', split, '--episodes',
                          str(episodes), '--json', str(out)], timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads(out.read_text())
        assert report['mode'] == 'ros' and report['policy']['backend'] == 'expert'
        assert report['successes'] == episodes, report['records']

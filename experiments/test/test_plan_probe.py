"""The plan probe script: plan parsing, scoring against the expert, a free-running pass."""
import json
import subprocess
import sys

from experiment_helpers import EXPERIMENTS, load_script, ROOT
import numpy as np
from tiny_models import tiny_checkpoint


def test_plan_numbers_need_exactly_the_layouts_count():
    probe = load_script('plan_probe')
    assert probe.plan_numbers(' 12 40 7 255', 4).tolist() == [12, 40, 7, 255]
    assert probe.plan_numbers('12 40', 4) is None
    assert probe.plan_numbers(' 12 40 7 255', 6) is None
    assert probe.plan_numbers(None, 4) is None
    assert probe.plan_numbers('', 0) is None            # a layout without a plan
    assert probe.plan_names('target_points') == [
        'target_row', 'target_col', 'waypoint_row', 'waypoint_col', 'fingertips_row',
        'fingertips_col']


def test_scores_count_errors_directions_and_the_median_baseline():
    probe = load_script('plan_probe')
    image = np.zeros((4, 4, 3), np.uint8)
    truth = [np.array([1, 200, 30, 128, 128, 128, 128, 255]),
             np.array([1, 60, 220, 128, 128, 128, 128, 0]),
             np.array([0, 128, 128, 128, 128, 128, 128, 0])]
    # Camera pixels (224 frame) of waypoint, fingertips, target: (8.75, 17.5) is (10, 20)
    # on the 0..255 grid, (26.25, 35) is (30, 40).
    points = np.array([[8.75, 17.5], [26.25, 35.0], [100.0, 100.0]])
    openings = [1.0, 1.0, 0.5]     # the second state closes open fingers, the third holds
    states = [probe.ExpertState(image, 'pick', bins, points, opening)
              for bins, opening in zip(truth, openings)]
    said = {'bins': [np.array([1, 190, 220, 128, 128, 128, 128, 255]),   # dy the wrong way
                     np.array([1, 60, 230, 128, 128, 128, 128, 255]),    # gripper wrong
                     np.array([0, 128, 128, 128, 128, 128, 128, 0])],
            'plans': [np.array([10, 20, 30, 40]), np.array([30, 20, 30, 40]), None],
            'plan': 'points'}
    report = probe.score(states, said)
    assert report['dx'] == {'mae_bins': round(10 / 3, 1), 'median_answer_mae': round(140 / 3, 1),
                            'direction_right': 1.0}
    assert report['dy']['direction_right'] == 0.5      # two clear moves, one right
    assert report['dz'] == {'mae_bins': 0.0, 'median_answer_mae': 0.0}   # no clear move
    assert report['gripper']['exact'] == round(2 / 3, 3)
    assert report['holds_while_closing'] == {'states': 1, 'right': 1.0}
    assert 'gripper_word_right' not in report
    assert report['plans_read'] == 2
    assert report['waypoint_row'] == {'mae': 10.0, 'within_8': 0.5, 'median_answer_mae': 0.0}
    assert report['fingertips_col']['mae'] == 0.0
    assert 'target_row' not in report
    # Waypoint above-left of the fingertips in the image: forward (+dx) and left (+dy).
    assert report['dx_reads_plan'] == {'follows_own_plan': 1.0, 'moves': 1,  # 2nd: same row
                                       'plan_direction_right': 0.5, 'expert_moves': 2}
    assert report['dy_reads_plan'] == {'follows_own_plan': 1.0, 'moves': 2,
                                       'plan_direction_right': 1.0, 'expert_moves': 2}
    # The target layout scores the named block's point first, then the same two.
    said['plan'] = 'target_points'
    said['plans'] = [np.array([114, 114, 10, 20, 30, 40]), np.array([114, 104, 10, 20, 30, 40]),
                     None]
    report = probe.score(states, said)
    assert report['plans_read'] == 2
    assert report['target_row']['mae'] == 0.0 and report['target_col']['mae'] == 5.0
    assert report['waypoint_row'] == {'mae': 0.0, 'within_8': 1.0, 'median_answer_mae': 0.0}
    # A gripper plan's word is scored against the fingers' state, open and closed apart.
    said['words'] = ['open', 'closed', 'closed']
    assert probe.score(states, said)['gripper_word_right'] == {'open': 0.5, 'closed': 1.0}


def test_free_running_pass_on_a_checkpoint():
    model = tiny_checkpoint('rt2')
    script = str(EXPERIMENTS / 'scripts' / 'plan_probe.py')
    run = subprocess.run([sys.executable, script, '--model',
                          str(model), '--episodes', '1', '--every', '4'],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report['states'] >= 2 and 'request_ms_median' in report
    assert 'plans_read' not in report       # a checkpoint without a plan writes none
    assert set(report['dx']) >= {'mae_bins', 'median_answer_mae'}


def test_trace_runs_closed_loop_beside_the_expert():
    model = tiny_checkpoint('rt2')
    script = str(EXPERIMENTS / 'scripts' / 'plan_probe.py')
    run = subprocess.run([sys.executable, script, '--model',
                          str(model), '--trace', '--episodes', '1', '--family', 'pick'],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith('== seen seed 7000: ') and lines[-1] in (
        'success: True', 'success: False')
    decisions = lines[1:-1]
    assert decisions and all(' | plan - / - | act ' in line for line in decisions)
    # The expert's action at the first state is what the expert does from the start.
    assert decisions[0].split(' / ')[-1].startswith('1 ')

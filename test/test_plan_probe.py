"""The plan probe script: plan parsing, scoring against the expert, a free-running pass."""
import json
from pathlib import Path
import subprocess
import sys

from cli_helpers import load_script
import numpy as np
from tiny_models import tiny_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def test_plan_numbers_need_exactly_four():
    probe = load_script('plan_probe')
    assert probe.plan_numbers(' 12 40 7 255').tolist() == [12, 40, 7, 255]
    assert probe.plan_numbers('12 40') is None
    assert probe.plan_numbers(None) is None


def test_scores_count_errors_directions_and_the_median_baseline():
    probe = load_script('plan_probe')
    image = np.zeros((4, 4, 3), np.uint8)
    truth = [np.array([1, 200, 30, 128, 128, 128, 128, 255]),
             np.array([1, 60, 220, 128, 128, 128, 128, 0]),
             np.array([0, 128, 128, 128, 128, 128, 128, 0])]
    states = [probe.ExpertState(image, 'pick', bins, np.zeros((2, 2)), np.array([10, 20, 30, 40]))
              for bins in truth]
    said = {'bins': [np.array([1, 190, 220, 128, 128, 128, 128, 255]),   # dy the wrong way
                     np.array([1, 60, 230, 128, 128, 128, 128, 255]),    # gripper wrong
                     np.array([0, 128, 128, 128, 128, 128, 128, 0])],
            'plans': [np.array([10, 20, 30, 40]), np.array([30, 20, 30, 40]), None]}
    report = probe.score(states, said)
    assert report['dx'] == {'mae_bins': round(10 / 3, 1), 'median_answer_mae': round(140 / 3, 1),
                            'direction_right': 1.0}
    assert report['dy']['direction_right'] == 0.5      # two clear moves, one right
    assert report['dz'] == {'mae_bins': 0.0, 'median_answer_mae': 0.0}   # no clear move
    assert report['gripper']['exact'] == round(2 / 3, 3)
    assert report['plans_read'] == 2
    assert report['waypoint_row'] == {'mae': 10.0, 'within_8': 0.5, 'median_answer_mae': 0.0}
    assert report['fingertips_col']['mae'] == 0.0


def test_free_running_pass_on_a_checkpoint():
    model = tiny_checkpoint('rt2')
    run = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'plan_probe.py'), '--model',
                          str(model), '--episodes', '1', '--every', '4'],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report['states'] >= 2 and 'request_ms_median' in report
    assert 'plans_read' not in report       # a checkpoint without a plan writes none
    assert set(report['dx']) >= {'mae_bins', 'median_answer_mae'}

"""The grounding probe script: argument parsing, referent grouping, a tiny end-to-end run."""
import argparse
import ast
import json
import subprocess
import sys

from experiment_helpers import EXPERIMENTS, load_script, ROOT
import numpy as np
import pytest

SCRIPT = EXPERIMENTS / 'scripts' / 'pointing_probe.py'


def _module():
    return load_script('pointing_probe')


def test_block_range_and_referent_kinds():
    probe = _module()
    assert probe.block_range('3') == (3, 3)
    assert probe.block_range('1-2') == (1, 2)
    with pytest.raises(argparse.ArgumentTypeError):
        probe.block_range('two')
    assert probe.stage('1:2000') == ((1, 1), 2000)
    assert probe.stage('2-5:1500') == ((2, 5), 1500)
    for bad in ('2-5', '2-5:0', 'x:10', '1:many'):
        with pytest.raises(argparse.ArgumentTypeError):
            probe.stage(bad)
    assert probe.referent_kind('Q: where is the gripper? A:') == 'gripper'
    assert probe.referent_kind('Q: where is the red cube? A:') == 'named'
    assert probe.referent_kind('Q: where is the smallest block? A:') == 'property'
    assert probe.parse_point('12 200') == (12.0, 200.0)
    assert all(v != v for v in probe.parse_point('left'))  # unreadable -> NaN


def test_reach_errors_score_each_axis_and_the_direction():
    probe = _module()
    truth = ['0 255 100', '255 0 100', '130 128 90', '10 128 110']
    said = ['10 250 100', '0 0 100', '130 128 90', 'left']
    report = probe.reach_errors(said, truth)
    # dx errors 10, 255, 0 and 255 for the unreadable answer.
    assert report['dx']['mean_error'] == round((10 + 255 + 0 + 255) / 4, 1)
    # Clear moves in dx: rows 0, 1 and 3; only row 0 goes the right way.
    assert report['dx']['sign_right'] == round(1 / 3, 3)
    assert report['dy']['sign_right'] == 1.0 and report['dz']['sign_right'] is None
    assert report['dz']['median_guess'] == 5.0  # median 100: |0| + |0| + 10 + 10 over 4
    assert all(axis['questions'] == 4 for axis in report.values())


def test_a_tiny_run_reports_errors_beside_the_mean_guess(tmp_path):
    out = tmp_path / 'curve.json'
    done = subprocess.run(
        [sys.executable, str(SCRIPT), '--steps', '2', '--every', '1', '--examples', '360',
         '--threads', '1', '--blocks', '1-2', '--json', str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    curve = json.loads(out.read_text())['curve']
    assert [point['step'] for point in curve] == [1, 2]
    for kind in ('gripper', 'named'):
        entry = curve[-1][kind]
        assert entry['questions'] > 0 and 0 < entry['mean_guess'] < 362
        assert 0 <= entry['median_error'] <= 362 and 0 <= entry['hit_rate'] <= 1
    assert 'step 2: loss' in done.stdout


def test_a_curriculum_trains_each_stage_and_measures_on_the_last_stages_scenes(tmp_path):
    out = tmp_path / 'curve.json'
    done = subprocess.run(
        [sys.executable, str(SCRIPT), '--stage', '1:2', '--stage', '3:1', '--every', '1',
         '--examples', '360', '--threads', '1', '--patch-size', '8', '--json', str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'scenes of 1-1 blocks' in done.stdout and 'scenes of 3-3 blocks' in done.stdout
    assert '3 steps' in done.stdout
    report = json.loads(out.read_text())
    assert report['test_blocks'] == [3, 3]
    assert 'questions about 3-3-block scenes' in done.stdout
    assert [point['step'] for point in report['curve']] == [1, 2, 3]


def test_patch_labels_name_the_colour_drawn_in_the_patch():
    from rt2_ros.sim.objects import COLOURS

    probe = _module()
    images, labels = probe.parsing_scenes(40, 96, 12, seed=3)
    table = images[0][48, 4].astype(float)  # the table beside the blocks, as rendered
    gripper = images[0][0, 0].astype(float)  # dark grey like the gripper and the outlines
    palette = np.array([table, gripper, table * 0.55] + list(COLOURS.values()), dtype=float)
    agree = total = 0
    for image, label in zip(images, labels):
        rows, cols = np.nonzero(label[0])
        assert len(rows) >= 1 and int(label[2].sum()) <= 1
        assert np.array_equal(label[0] > 0, label[1] > 0)  # colour and shape go together
        for row, col in zip(rows, cols):
            patch = image[8 * row:8 * row + 8, 8 * col:8 * col + 8].reshape(-1, 3).astype(float)
            if (np.abs(patch - gripper).sum(1) < 40).sum() >= 32:
                continue  # the gripper hides most of it: a label the picture cannot show
            # A small block may straddle the patch border: look at the 8 neighbours too.
            around = image[max(0, 8 * row - 8):8 * row + 16,
                           max(0, 8 * col - 8):8 * col + 16].reshape(-1, 3).astype(float)
            nearest = np.argmin(((around[:, None] - palette[None]) ** 2).sum(-1), axis=1)
            votes = np.bincount(nearest, minlength=len(palette))[3:]  # block colours only
            total += 1
            agree += int(votes[label[0, row, col] - 1] >= 5)
    assert total >= 80 and agree >= 0.95 * total, (agree, total)


def test_parsing_pretraining_runs_before_the_pointing_steps(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), '--steps', '1', '--examples', '360', '--threads', '1',
         '--patch-size', '8', '--parse-steps', '2', '--parse-scenes', '20'],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if 'label patches for 2 steps' in x)
    accuracy = ast.literal_eval(line.split('patches: ')[1])
    assert set(accuracy) == {'colour', 'shape', 'gripper'}
    assert all(0.0 <= v <= 1.0 for v in accuracy.values())
    assert done.stdout.index('label patches') < done.stdout.index('step 1: loss')


def test_checkpoint_mode_measures_the_committed_staged_model_without_training(tmp_path):
    # The notes' figure for experiments/models/rt2_staged_vla: it finds a named block among 2-5.
    out = tmp_path / 'errors.json'
    subprocess.run([sys.executable, str(SCRIPT), '--checkpoint',
                    str(EXPERIMENTS / 'models' / 'rt2_staged_vla'), '--seed', '12',
                    '--threads', '1', '--json', str(out)], check=True, timeout=300)
    errors = json.loads(out.read_text())['errors']
    assert sum(e['questions'] for e in errors.values()) == 300
    assert errors['named']['median_error'] < 16 < errors['named']['mean_guess']
    assert errors['named']['hit_rate'] > 0.6 and errors['gripper']['hit_rate'] > 0.9
    reach = json.loads(out.read_text())['reach']  # a question type this model never saw
    assert set(reach) == {'dx', 'dy', 'dz'} and reach['dx']['questions'] == 300

"""experiments/scripts/continue_run.py: a saved state trained on under a changed recipe."""
import json
import subprocess
import sys

from experiment_helpers import EXPERIMENTS, load_script, ROOT
import pytest
from rt2_ros.training.examples import ExampleSet
from rt2_ros.training.trainer import Trainer
from test_training import tiny_config
import torch


def test_settings_are_recipe_keys_with_json_values():
    script = load_script('continue_run')
    saved = {'steps': 6, 'robot_plan': 'none'}
    assert script.changed_config(saved, ['steps=9', 'robot_plan="points"']) == \
        {'steps': 9, 'robot_plan': 'points'}
    assert saved['steps'] == 6                            # the saved recipe is left alone
    for bad in ('stepz=9', 'steps', 'steps=nine'):
        with pytest.raises(SystemExit):
            script.changed_config(saved, [bad])


def test_continues_a_state_with_another_plan_layout_on_the_same_data(tmp_path):
    first = tmp_path / 'first'
    trainer = Trainer(tiny_config(steps=8), first, log=lambda _: None)
    trainer.prepare()
    trainer.run(until=4)
    trainer.save_state()
    plain = ExampleSet.load(str(first / 'data' / 'robot.npz'))
    out = tmp_path / 'second'
    run = subprocess.run(
        [sys.executable, str(EXPERIMENTS / 'scripts' / 'continue_run.py'), '--state',
         str(first / 'train_state.pt'), '--data', str(first / 'data'), '--out', str(out),
         '--set', 'robot_plan="points"', '--set', 'steps=7'],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'continuing at step 4 of 7' in run.stdout
    robot = ExampleSet.load(str(out / 'data' / 'robot.npz'))
    assert all(a.startswith('Plan: ') for a in robot.answers)
    assert [a.rpartition('Action: ')[2] for a in robot.answers] == plain.answers
    assert (out / 'data' / 'vqa.npz').samefile(first / 'data' / 'vqa.npz')   # linked, not made
    state = torch.load(out / 'train_state.pt', map_location='cpu', weights_only=True)
    assert state['state']['step'] == 7 and state['config']['robot_plan'] == 'points'
    record = json.loads((out / 'model' / 'training.json').read_text())
    assert record['config']['robot_plan'] == 'points'
    # The source run is untouched: its own recipe still resumes it.
    assert torch.load(first / 'train_state.pt', map_location='cpu',
                      weights_only=True)['config']['robot_plan'] == 'none'

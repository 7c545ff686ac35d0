"""`rt2 sim` pure subcommands as a user runs them."""
import json

from cli_helpers import run_rt2
import cv2
import numpy as np


def test_tasks_lists_every_split_with_examples():
    result = run_rt2(['sim', 'tasks', '--examples', '1'])
    assert result.returncode == 0, result.stderr
    for split in ('train', 'seen', 'unseen_objects', 'unseen_phrasing', 'reasoning'):
        assert f'\n{split}: ' in result.stdout


def test_render_writes_the_png(tmp_path):
    out = tmp_path / 'scene.png'
    result = run_rt2(['sim', 'render', '--split', 'reasoning', '--seed', '3', '--size',
                      '320x240', '--steps', '4', '--out', str(out)])
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(out))
    assert image.shape == (240, 320, 3) and image.std() > 10


def test_generate_and_expert(tmp_path):
    out = tmp_path / 'demos.npz'
    result = run_rt2(['sim', 'generate', '--episodes', '3', '--size', '64x64', '--out',
                      str(out)])
    assert result.returncode == 0, result.stderr
    data = np.load(out)
    assert data['images'].shape[1:] == (64, 64, 3) and data['bins'].shape[1] == 8
    assert len(data['instructions']) == 3 and data['success'].all()
    assert data['episode'].max() == 2 and len(data['episode']) == len(data['images'])
    report = tmp_path / 'expert.json'
    result = run_rt2(['sim', 'expert', '--episodes', '5', '--family', 'pick', '--json',
                      str(report)])
    assert result.returncode == 0 and 'pick' in result.stdout
    assert json.loads(report.read_text())['families']['pick']['success_rate'] == 1.0


def test_usage_errors_are_one_line(tmp_path):
    result = run_rt2(['sim', 'generate', '--episodes', '1', '--out', str(tmp_path / 'x.txt')])
    assert result.returncode == 2 and result.stderr.strip().count('\n') == 0
    assert '.npz' in result.stderr
    result = run_rt2(['sim', 'render', '--out', str(tmp_path / 'no' / 'dir' / 'x.png')])
    assert result.returncode == 2 and result.stderr.strip().count('\n') == 0

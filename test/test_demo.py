"""`rt2 demo`: the closed loop in one process, its report, video and plot; its building blocks."""
import csv
import json
import os
from pathlib import Path
import re
import subprocess
import sys

from cli_helpers import run_rt2
import numpy as np
import pytest
from rt2_ros.cli.main import main
from rt2_ros.demo.media import VideoFrame, write_video
from rt2_ros.demo.plan import plan_episodes
from rt2_ros.demo.results import OUTCOMES, percentile
from rt2_ros.models.bundled import BUNDLED_MODEL_NAME, bundled_models
from tiny_models import tiny_checkpoint


RUNNER = Path(__file__).resolve().parent / 'support' / 'demo_runner.py'


def _run_demo(args):
    """Run `rt2 demo` in its own process (support/demo_runner.py checks for leftover threads)."""
    command = [sys.executable, str(RUNNER)] + args
    return subprocess.run(command, capture_output=True, text=True, timeout=240)


@pytest.mark.ros
@pytest.mark.slow
def test_demo_runs_a_short_episode_end_to_end(tmp_path):
    out = tmp_path / 'demo'
    result = _run_demo([
        '--families', 'push_next_to', '--episodes', '1', '--seed', '7',
        '--max-decisions', '4', '--episode-timeout', '20', '--model', str(tiny_checkpoint()),
        '--param', 'limits.max_linear_speed=0.05', '--out', str(out), '--headless',
        '--namespace', f'/demotest{os.getpid()}'])
    # 0 also means: no thread left behind, and rclpy reported no callback failing at shutdown.
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'never retrieved' not in result.stderr and 'Traceback' not in result.stderr
    lines = result.stdout.splitlines()
    episode = next(line for line in lines if '[1/1] push_next_to' in line)
    assert re.search(r'\d+ decisions in [\d.]+ s, latency p50 [\d.]+ ms p95 [\d.]+ ms', episode)
    assert re.match(r'rt2 demo: [01]/1 episodes succeeded, \d+ decisions', lines[-1])
    assert 'demo.gif' in lines[-1] and 'velocities.png' in lines[-1]

    summary = json.loads((out / 'summary.json').read_text())
    (run,) = summary['episodes']
    assert run['family'] == 'push_next_to' and run['split'] == 'seen' and run['seed'] == 7
    assert run['outcome'] in OUTCOMES and run['instruction']
    assert 1 <= run['decisions'] == len(run['latencies_s'])
    assert 0 < run['latency_p50_s'] <= run['latency_p95_s']
    assert summary['limits']['max_linear_speed'] == 0.05
    assert summary['controller_parameters']['enabled_on_start'] is True

    from PIL import Image
    with Image.open(out / 'demo.gif') as gif:
        assert gif.n_frames >= 2  # at least one decision and the result card
        assert gif.size[0] >= 320
    with Image.open(out / 'velocities.png') as plot:
        assert plot.format == 'PNG' and plot.size[0] > 600

    series = {'commanded': [], 'clamped': []}
    with open(out / 'velocities.csv') as handle:
        for row in csv.DictReader(handle):
            series[row['series']].append([float(row[k]) for k in ('vx', 'vy', 'vz')])
    commanded, clamped = (np.array(series[k]) for k in ('commanded', 'clamped'))
    assert len(commanded) and len(clamped)
    # The arm was driven (the rt2 grid has no exact zero), and never faster than the limit.
    assert np.linalg.norm(clamped, axis=1).max() > 0.0
    assert np.linalg.norm(clamped, axis=1).max() <= 0.05 + 1e-9
    # Commanded = an rt2 step (at most 0.05 m per axis) over the 1/3 s decision period.
    assert np.abs(commanded).max() <= 0.15 + 1e-9


@pytest.mark.ros
@pytest.mark.slow
def test_the_expert_backend_succeeds_in_every_demo_episode(tmp_path):
    # The scripted expert through the demo's controller (codec, mapper, safety stage with the
    # simulator's presets): what imitating the training data can reach, episode by episode.
    out = tmp_path / 'demo'
    result = _run_demo(['--backend', 'expert', '--episode-timeout', '60', '--out', str(out),
                        '--headless', '--video', 'none', '--namespace',
                        f'/demoexpert{os.getpid()}'])
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.match(r'rt2 demo: 4/4 episodes succeeded', result.stdout.splitlines()[-1]), \
        result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert [run['outcome'] for run in summary['episodes']] == ['success'] * 4
    assert summary['limits']['max_linear_speed'] == 0.45  # the simulator's preset
    assert summary['controller_parameters']['inference.request_threshold'] == 0.0
    assert not (out / 'demo.gif').exists() and (out / 'velocities.png').is_file()


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(['demo', '--help'])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ('--families', '--episodes', '--split', '--seed', '--model', '--backend',
                   '--url', '--param', '--out', '--video', '--headless', 'RANDOM',
                   'velocities.png', 'out/demo'):
        assert option in text, option


@pytest.mark.parametrize('args, fragment', [
    (['--families', 'pick,juggle'], "unknown family 'juggle'"),
    (['--backend', 'openvla_http'], 'needs --url'),
    (['--backend', 'openvla_http', '--url', 'http://x', '--model', '.'], 'local backend'),
    (['--url', 'http://127.0.0.1:1'], 'remote backends'),
    (['--backend', 'carrier_pigeon', '--url', 'x'], 'unknown policy backend'),
    (['--model', '/no/such/model'], 'not a directory'),
    (['--model', str(Path(__file__).parent)], 'no config.json'),
    (['--param', 'limits.max_linear_speed=-1'], 'limits.max_linear_speed'),
    (['--param', 'no_such_parameter=1'], 'not an rt2_controller parameter'),
    (['--param', 'novalue'], 'NAME=VALUE'),
    (['--namespace', 'rt2_demo'], '--namespace'),
    (['--seed', str(2**31 - 2), '--episodes', '3'], 'outside'),
])
def test_bad_options_are_one_line_errors(args, fragment, tmp_path, capsys):
    out = tmp_path / 'out'
    assert main(['demo', *args, '--out', str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('rt2 demo: error:') and fragment in lines[0]
    assert captured.out == '' and not out.exists()


def test_argparse_mistakes_are_one_line_too():
    result = run_rt2(['demo', '--video', 'avi'])
    assert result.returncode == 2 and result.stdout == ''
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'invalid choice' in lines[0] and 'rt2 demo --help' in lines[0]


def test_plan_cycles_families_with_one_new_seed_per_episode():
    plan = plan_episodes('seen', ['pick', 'move_to'], 5, 10)
    assert [(p.family, p.seed) for p in plan] == [
        ('pick', 10), ('move_to', 11), ('pick', 12), ('move_to', 13), ('pick', 14)]
    with pytest.raises(ValueError, match='unknown split'):
        plan_episodes('nope', ['pick'], 1, 0)


def test_percentiles_are_observed_values():
    values = [0.05, 0.01, 0.03, 0.02, 0.04]
    assert percentile(values, 50) == 0.03 and percentile(values, 95) == 0.05
    assert percentile([0.2], 95) == 0.2 and percentile([], 50) is None


def _fake_model(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / 'config.json').write_text('{}')
    (path / 'action_space.yaml').write_text('name: x\n')
    return path


def test_bundled_model_is_any_complete_model_dir_preferring_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv('RT2_ROS_SHARE', str(tmp_path))
    (tmp_path / 'models' / 'half-copied').mkdir(parents=True)
    (tmp_path / 'models' / 'half-copied' / 'config.json').write_text('{}')
    other = _fake_model(tmp_path / 'models' / 'aaa-other')
    assert bundled_models() == [other]
    preferred = _fake_model(tmp_path / 'models' / BUNDLED_MODEL_NAME)
    assert bundled_models() == [preferred, other]


def test_policy_choice_prefers_the_bundled_model_and_else_says_untrained(tmp_path, monkeypatch):
    from rt2_ros.demo import policy_choice
    bundled = _fake_model(tmp_path / 'share' / 'models' / 'trained')
    monkeypatch.setattr(policy_choice, 'bundled_model_path', lambda: bundled)
    choice = policy_choice.choose_policy(cache_dir=tmp_path / 'out')
    assert choice.trained is True and choice.parameters['policy.model_path'] == str(bundled)
    assert choice.parameters['action_space'] == str(bundled / 'action_space.yaml')

    monkeypatch.setattr(policy_choice, 'bundled_model_path', lambda: None)
    lines = []
    choice = policy_choice.choose_policy(cache_dir=tmp_path / 'out', log=lines.append)
    assert choice.trained is False and 'UNTRAINED' in choice.description and lines
    built = Path(choice.parameters['policy.model_path'])
    assert built == (tmp_path / 'out' / 'tiny-random').resolve()
    stamp = (built / 'config.json').stat().st_mtime_ns
    again = policy_choice.choose_policy(cache_dir=tmp_path / 'out', log=lines.append)
    assert again.parameters == choice.parameters and len(lines) == 1  # reused, not rebuilt
    assert (built / 'config.json').stat().st_mtime_ns == stamp

    remote = policy_choice.choose_policy(backend='openpi', url='ws://127.0.0.1:8000')
    assert remote.trained is None and remote.parameters['policy.backend'] == 'openpi'


def test_mp4_plays_each_frame_for_its_duration(tmp_path):
    import cv2
    frames = [VideoFrame(np.full((48, 64, 3), v, dtype=np.uint8), d)
              for v, d in ((0, 0.3), (120, 0.5), (250, 0.2))]
    path = write_video(frames, tmp_path, 'mp4')
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert count == 10  # 1.0 s at 10 fps
    gif = write_video(frames, tmp_path, 'gif')
    from PIL import Image
    with Image.open(gif) as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info['duration'])
    assert durations == [300, 500, 200]
    assert write_video(frames, tmp_path / 'none', 'none') is None


def test_the_default_split_is_the_hardest_rung_the_model_is_good_at(tmp_path):
    from rt2_ros.demo.plan import DEFAULT_SPLIT, default_split, rung_summary
    from rt2_ros.models.bundled import EVALUATION_FILE, measured_rungs
    assert measured_rungs(tmp_path) == {} and default_split({}) == DEFAULT_SPLIT
    rungs = {'one_block': {'success_rate': 0.93, 'ci95': [0.86, 0.97], 'episodes': 100},
             'two_blocks': {'success_rate': 0.4, 'ci95': [0.3, 0.5], 'episodes': 100},
             'seen': {'success_rate': 0.0, 'ci95': [0.0, 0.04], 'episodes': 100}}
    (tmp_path / EVALUATION_FILE).write_text(json.dumps({'rungs': {
        split: dict(report, split=split, mode='ros') for split, report in rungs.items()}}))
    measured = measured_rungs(tmp_path)
    assert measured['one_block']['success_rate'] == 0.93 and measured['seen']['mode'] == 'ros'
    assert default_split(measured) == 'one_block'
    # one_block has no place_on: of the rungs that have it, two_blocks is where it does best
    assert default_split(measured, ['place_on']) == 'two_blocks'
    # no good rung: the rung where it does best (the easiest of equals); none: the default
    weak = {split: dict(report, success_rate=rate) for (split, report), rate in
            zip(measured.items(), (0.2, 0.2, 0.05))}
    assert default_split(weak) == 'one_block'
    assert default_split(dict(weak, two_blocks=dict(weak['two_blocks'], success_rate=0.3))) \
        == 'two_blocks'
    assert default_split({split: dict(r, success_rate=0.0) for split, r in weak.items()}) \
        == DEFAULT_SPLIT
    assert rung_summary(measured) == \
        'one_block 93 %, two_blocks 40 %, seen 0 % (100 episodes each)'

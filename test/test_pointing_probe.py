"""The grounding probe script: argument parsing, referent grouping, a tiny end-to-end run."""
import argparse
import json
from pathlib import Path
import subprocess
import sys

from cli_helpers import load_script
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / 'scripts' / 'pointing_probe.py'


def _module():
    return load_script('pointing_probe')


def test_block_range_and_referent_kinds():
    probe = _module()
    assert probe.block_range('3') == (3, 3)
    assert probe.block_range('1-2') == (1, 2)
    with pytest.raises(argparse.ArgumentTypeError):
        probe.block_range('two')
    assert probe.referent_kind('Q: where is the gripper? A:') == 'gripper'
    assert probe.referent_kind('Q: where is the red cube? A:') == 'named'
    assert probe.referent_kind('Q: where is the smallest block? A:') == 'property'
    assert probe.parse_point('12 200') == (12.0, 200.0)
    assert all(v != v for v in probe.parse_point('left'))  # unreadable -> NaN


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
        assert 0 <= entry['median_error'] <= 362
    assert 'step 2: loss' in done.stdout

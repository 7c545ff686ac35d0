"""`make bench` runs: the harness works end to end with a few iterations (figures not checked)."""
import json
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_bench_entry_point_writes_results(tmp_path):
    out = tmp_path / 'results.json'
    done = subprocess.run(
        [sys.executable, '-m', 'bench', '--quick', '--only', 'wire_formats', 'node_overhead',
         '--out', str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'Summary against the goals' in done.stdout
    results = json.loads(out.read_text())
    assert results['quick'] and results['machine']['cores']
    figures = {row['figure'] for row in results['summary']}
    assert 'node overhead p50 ms, remote, JPEG, 224x224' in figures
    assert 'wire: json_numpy cost / best format, 640x480' in figures
    assert all(row['p50_ms'] > 0 for row in results['node_overhead']['rows'])


def test_train_step_bench_times_fp32_and_bf16_side_by_side():
    done = subprocess.run([sys.executable, '-m', 'bench.train_step', '--quick', '--json'],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)['rows']
    assert [r['precision'] for r in rows] == ['fp32', 'bf16']
    assert all(r['step_ms'] > 0 and r['gflop_per_step'] > 0 for r in rows)
    assert rows[0]['speed_vs_fp32'] == 1.0


def test_gpu_check_script_runs_its_steps_on_the_cpu_at_toy_size(tmp_path):
    """The script a GPU session runs in one call: here its CPU smoke mode must work end to end."""
    import os
    env = dict(os.environ, DEVICE='cpu', SCALE='smoke', OUT=str(tmp_path), PYTHON=sys.executable)
    done = subprocess.run(['bash', 'scripts/gpu_check.sh'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert json.loads((tmp_path / 'train_step_b4.json').read_text())['rows']
    trained = json.loads((tmp_path / 'run' / 'model' / 'training.json').read_text())
    assert trained['step'] == 4 and trained['device'] == 'cpu'
    report = json.loads((tmp_path / 'eval_seen.json').read_text())
    assert report['episodes'] == 2 and report['split'] == 'seen'

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

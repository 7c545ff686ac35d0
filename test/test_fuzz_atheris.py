"""
A short coverage-guided fuzzing run (atheris) over every untrusted-input parser, seeded.

scripts/fuzz_atheris.py is the tool; this runs its `all` target for a few hundred inputs from
the valid seeds with libFuzzer's memory and per-input time limits, so a regression that
crashes, hangs or balloons on a mutated seed fails CI. Long runs: see the script's docstring.
"""
from pathlib import Path
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parent.parent / 'scripts' / 'fuzz_atheris.py'


def test_seeded_fuzzing_of_all_parsers_finds_no_crash_hang_or_memory_blowup(tmp_path):
    pytest.importorskip('atheris')
    corpus = tmp_path / 'corpus'
    corpus.mkdir()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), 'all', '-runs=400', '-rss_limit_mb=1024', '-timeout=10',
         '-seed=1', str(corpus)], capture_output=True, text=True, timeout=300)
    tail = result.stderr[-3000:]
    assert result.returncode == 0, tail
    # The budget must be spent. libFuzzer's final count can be one past -runs: a full suite run
    # on a fresh clone printed 'Done 401 runs' where a run alone prints 400.
    done = re.search(r'Done (\d+) runs', result.stderr)
    assert done and int(done.group(1)) >= 400, tail
    assert len(list(corpus.iterdir())) >= 10  # the seeds were written and used

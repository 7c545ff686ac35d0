"""Run the installed `rt2` console script the way a user does."""
import os
from pathlib import Path
import shutil
import subprocess
import sys
from typing import List


def rt2_executable() -> str:
    """Return the `rt2` script next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / 'rt2'
    if beside.exists():
        return str(beside)
    found = shutil.which('rt2')
    if not found:
        raise RuntimeError('rt2 is not installed; run make setup')
    return found


def run_rt2(args: List[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(kwargs.pop('env', {}))
    return subprocess.run([rt2_executable(), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)

"""Run the installed `rt2` console script the way a user does, and load our scripts."""
import importlib.util
import os
from pathlib import Path
import shutil
import subprocess
import sys
from types import ModuleType
from typing import List

SCRIPTS = Path(__file__).resolve().parent.parent / 'scripts'


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


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py as a module (scripts/ is not a package), for its functions."""
    spec = importlib.util.spec_from_file_location(f'rt2_script_{name}', SCRIPTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

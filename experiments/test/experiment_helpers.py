"""Load the experiment scripts (experiments/scripts is not a package) for their functions."""
import importlib.util
from pathlib import Path
from types import ModuleType

EXPERIMENTS = Path(__file__).resolve().parent.parent
ROOT = EXPERIMENTS.parent
SCRIPTS = EXPERIMENTS / 'scripts'


def load_script(name: str) -> ModuleType:
    """Import experiments/scripts/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f'rt2_experiment_{name}', SCRIPTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""The source trees the linters check (everything of ours, nothing vendored or generated)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ('rt2_ros', 'test', 'bench', 'launch', 'scripts', 'experiments', 'setup.py')
LINT_PATHS = [str(ROOT / name) for name in CANDIDATES if (ROOT / name).exists()]

"""
Where the bundled demo model lives: the one place that knows its directory name.

The demo model is trained with `rt2 train` and shipped under `models/`, which is
installed to share/rt2_ros/models. `rt2 demo` and launch/rt2_sim_demo.launch.py find it through
this module, so renaming the directory touches one constant. A directory counts as a model only
when it holds the files the local backend needs to load it with its own action meaning
(`config.json` and `action_space.yaml`), so a stray README or a half-copied checkpoint is never
mistaken for one.
"""
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from rt2_ros.resources import find_data

MODELS_DIR = 'models'
# Directory name of the bundled demo model under models/ (preferred when several are present).
BUNDLED_MODEL_NAME = 'rt2_demo_vla'
REQUIRED_FILES = ('config.json', 'action_space.yaml')
# A model's measured success per rung of the evaluation ladder (`rt2 eval-sim --split ladder
# --json`), shipped beside the weights so the demo can say what to expect of each rung.
EVALUATION_FILE = 'evaluation.json'


def is_model_dir(path: Path) -> bool:
    """Tell whether path is a checkpoint directory the local backend can load with its space."""
    return path.is_dir() and all((path / name).is_file() for name in REQUIRED_FILES)


def bundled_models() -> List[Path]:
    """Return every model directory under models/, the preferred name first, then by name."""
    try:
        root = find_data(MODELS_DIR)
    except FileNotFoundError:
        return []
    found = sorted(p for p in root.iterdir() if is_model_dir(p))
    found.sort(key=lambda p: p.name != BUNDLED_MODEL_NAME)
    return found


def bundled_model_path() -> Optional[Path]:
    """Return the bundled demo model's directory, or None while none is committed."""
    found = bundled_models()
    return found[0] if found else None


def measured_rungs(model_dir: Path) -> Dict[str, Dict[str, Any]]:
    """
    Return a model's measured success per rung ({} when it ships no measurement).

    Each entry has success_rate, ci95, episodes and mode, as `rt2 eval-sim` wrote them.
    """
    try:
        rungs = json.loads((Path(model_dir) / EVALUATION_FILE).read_text())['rungs']
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    keep = ('success_rate', 'ci95', 'episodes', 'mode')
    return {split: {k: report[k] for k in keep if k in report}
            for split, report in rungs.items() if isinstance(report, dict)}

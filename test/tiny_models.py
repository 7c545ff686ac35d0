"""
Tiny random VLA checkpoints for tests, built once per test process and shared.

Building takes well under a second after the first transformers import; a module-level cache in
one temporary directory (removed at exit) lets every test module ask for the same checkpoint.
"""
import atexit
from pathlib import Path
import shutil
import tempfile
from typing import Dict, Tuple

_ROOT = Path(tempfile.mkdtemp(prefix='rt2-tiny-vla-'))
atexit.register(shutil.rmtree, _ROOT, True)
_BUILT: Dict[Tuple, Path] = {}


def tiny_checkpoint(space: str = 'rt2', seed: int = 0, **options) -> Path:
    """Directory of a tiny checkpoint for (space, seed, options), built on first request."""
    from rt2_ros.models.tiny_vla import save_tiny_vla, TinyVLASpec
    from transformers.utils import logging as hf_logging

    key = (space, seed, tuple(sorted(options.items())))
    if key not in _BUILT:
        hf_logging.disable_progress_bar()
        name = '-'.join([space, str(seed)] + [f'{k}{v}' for k, v in sorted(options.items())])
        _BUILT[key] = save_tiny_vla(_ROOT / name, TinyVLASpec(space=space, seed=seed, **options))
    return _BUILT[key]

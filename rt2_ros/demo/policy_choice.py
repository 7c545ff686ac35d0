"""
Which policy the demo drives the arm with, said plainly.

In order: a backend the user names (`--backend openvla_http --url ...`, like the controller's
policy.* parameters), a checkpoint directory (`--model PATH`), the bundled demo model
(rt2_ros.models.bundled), and - while no bundled model is committed - a tiny *randomly
initialised* checkpoint built on the spot. The last one exercises the real loop (transformers
model, constrained decoding, controller, safety stage, sim) but has learnt nothing, and every
line the demo prints says so.
"""
import json
from pathlib import Path
import shutil
import tempfile
from typing import Callable, Optional

from rt2_ros.demo.plan import PolicyChoice
from rt2_ros.models.bundled import bundled_model_path, is_model_dir
from rt2_ros.policy.factory import backend_error, BUILTIN_BACKENDS
from rt2_ros.sim.rollout import DEFAULT_DECISION_RATE_HZ

TINY_RANDOM_DIR = 'tiny-random'
SPEC_FILE = 'tiny_vla.json'


def ensure_tiny_random(cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Return a tiny random rt2 checkpoint in cache_dir, building it unless it is there."""
    from rt2_ros.models.tiny_vla import save_tiny_vla, TinyVLASpec

    spec = TinyVLASpec(space='rt2', seed=0)
    cache_dir = Path(cache_dir)
    try:
        cached = json.loads((cache_dir / SPEC_FILE).read_text())
    except (OSError, ValueError):
        cached = None
    if is_model_dir(cache_dir) and cached == spec.to_json():
        return cache_dir
    log(f'building a tiny random checkpoint in {cache_dir} (rt2 make-tiny-vla recipe) ...')
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix='.tiny-random-', dir=cache_dir.parent))
    try:
        save_tiny_vla(staging, spec)
        staging.chmod(0o755)  # mkdtemp makes it private; it is an ordinary output directory
        if cache_dir.exists():
            shutil.rmtree(cache_dir)
        staging.rename(cache_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache_dir


def _local(path: Path, description: str, trained: Optional[bool], action_space: Optional[str],
           label: str) -> PolicyChoice:
    path = path.resolve()
    space_file = path / 'action_space.yaml'
    # The checkpoint's own action space also fixes the decision period it was trained at.
    space = action_space or (str(space_file) if space_file.is_file() else 'rt2')
    return PolicyChoice({'policy.backend': 'local', 'policy.model_path': str(path),
                         'action_space': space}, description, trained, label)


def choose_policy(model: Optional[str] = None, backend: Optional[str] = None,
                  url: Optional[str] = None, action_space: Optional[str] = None,
                  cache_dir: Path = Path('out/demo'),
                  log: Callable[[str], None] = print) -> PolicyChoice:
    """
    Resolve the demo's policy; raises ValueError for a choice that cannot work.

    backend may also be module:Class (a user's Policy subclass), as for the controller.
    """
    if backend is not None and backend_error(backend) is not None:
        raise ValueError(backend_error(backend))
    if model is not None and backend not in (None, 'local'):
        raise ValueError('--model is for the local backend; use --url with --backend '
                         f'{backend}')
    if backend == 'expert':
        if url or model:
            raise ValueError('--backend expert reads the simulator; it takes no --url or --model')
        return PolicyChoice({'policy.backend': 'expert', 'action_space': 'rt2',
                             'decision_period_s': 1.0 / DEFAULT_DECISION_RATE_HZ},
                            "the simulator's scripted expert (reads the true world state)",
                            None, 'scripted expert (privileged state)')
    if backend not in (None, 'local'):
        if backend not in BUILTIN_BACKENDS:  # a plug-in or module:Class: URL optional
            parameters = {'policy.backend': backend, 'action_space': action_space or 'rt2'}
            if url:
                parameters['policy.url'] = url
            return PolicyChoice(parameters, f'policy class {backend}', None, backend)
        if not url:
            raise ValueError(f'--backend {backend} needs --url')
        parameters = {'policy.backend': backend, 'policy.url': url,
                      'action_space': action_space or 'rt2'}
        return PolicyChoice(parameters, f'{backend} policy at {url}', None, f'{backend} {url}')
    if url:
        raise ValueError('--url is for remote backends (--backend openvla_http, openai, openpi)')
    if model is not None:
        path = Path(model).expanduser()
        if not path.is_dir():
            raise ValueError(f'--model {model}: not a directory')
        if not (path / 'config.json').is_file():
            raise ValueError(f'--model {model}: not a transformers checkpoint (no config.json)')
        return _local(path, f'local model {path}', None, action_space, f'model {path.name}')
    bundled = bundled_model_path()
    if bundled is not None:
        return _local(bundled, f'the bundled demo model ({bundled.name})', True, action_space,
                      f'bundled demo model {bundled.name}')
    path = ensure_tiny_random(Path(cache_dir) / TINY_RANDOM_DIR, log)
    return _local(path, f'an UNTRAINED tiny random model ({path}; no bundled demo model is '
                  'installed yet)', False, action_space,
                  'UNTRAINED tiny random model: success not expected')

"""
OpenVLA-style dataset statistics: map normalized [-1, 1] actions to robot units and back.

OpenVLA checkpoints decode to normalized values; the per-dataset q01/q99 statistics (shipped as
dataset_statistics.json beside the checkpoint) turn them into metres and radians. Getting the key
or mask wrong silently scales the arm's motion, so every ambiguity is an error here.
"""
from dataclasses import dataclass
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from rt2_ros.actions.errors import StatisticsError


@dataclass(frozen=True)
class Unnormalizer:
    """a = 0.5 (x + 1)(q99 - q01) + q01 where mask, else a = x (OpenVLA's formula)."""

    key: str
    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        x = np.asarray(normalized, dtype=np.float64)
        scaled = 0.5 * (x + 1.0) * (self.q99 - self.q01) + self.q01
        return np.where(self.mask, scaled, x)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions, dtype=np.float64)
        span = self.q99 - self.q01
        safe = np.where(span == 0, 1.0, span)
        scaled = np.where(span == 0, 0.0, 2.0 * (a - self.q01) / safe - 1.0)
        return np.where(self.mask, scaled, a)

    def to_dict(self) -> dict:
        return {'key': self.key, 'q01': self.q01.tolist(), 'q99': self.q99.tolist(),
                'mask': self.mask.tolist()}


def load_dataset_statistics(path: Union[str, Path]) -> dict:
    """Read an OpenVLA dataset_statistics.json ({key: {'action': {'q01', 'q99', ...}}})."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise StatisticsError(f'statistics file {file} does not exist') from None
    except (OSError, ValueError) as exc:
        raise StatisticsError(f'cannot read statistics file {file}: {exc}') from None
    if not isinstance(data, dict) or not data:
        raise StatisticsError(f'{file}: expected a JSON object keyed by dataset name')
    return data


def _vector(stats: Mapping[str, Any], name: str, dim: int, where: str) -> np.ndarray:
    if name not in stats:
        raise StatisticsError(f'{where}: action statistics have no {name!r}')
    try:
        vector = np.asarray(stats[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise StatisticsError(f'{where}: {name} is not a list of numbers') from None
    if vector.shape != (dim,):
        raise StatisticsError(f'{where}: {name} has shape {vector.shape}, expected ({dim},)')
    if not np.all(np.isfinite(vector)):
        raise StatisticsError(f'{where}: {name} has non-finite entries')
    return vector


def unnormalizer_from_statistics(stats: Mapping[str, Any], unnorm_key: Optional[str],
                                 action_dim: int) -> Unnormalizer:
    """
    Pick the statistics for unnorm_key the way OpenVLA does, and validate them.

    With no key, a file with exactly one dataset is unambiguous; several datasets need a key.
    """
    keys = sorted(stats)
    if unnorm_key is None or unnorm_key == '':
        if len(keys) != 1:
            raise StatisticsError(
                f'statistics hold several datasets; pass an unnorm key from: {", ".join(keys)}')
        unnorm_key = keys[0]
    if unnorm_key not in stats:
        raise StatisticsError(f'unnorm key {unnorm_key!r} not in statistics: {", ".join(keys)}')
    entry = stats[unnorm_key]
    action = entry.get('action') if isinstance(entry, Mapping) else None
    if not isinstance(action, Mapping):
        raise StatisticsError(f'{unnorm_key}: statistics entry has no "action" mapping')
    q01 = _vector(action, 'q01', action_dim, unnorm_key)
    q99 = _vector(action, 'q99', action_dim, unnorm_key)
    if 'mask' in action:
        mask = np.asarray(action['mask'])
        if mask.shape != (action_dim,) or mask.dtype.kind not in 'bi':
            raise StatisticsError(f'{unnorm_key}: mask must be {action_dim} booleans')
        mask = mask.astype(bool)
    else:
        mask = np.ones(action_dim, dtype=bool)
    if np.any(q99[mask] < q01[mask]):
        raise StatisticsError(f'{unnorm_key}: q99 is below q01 for a normalized dimension')
    return Unnormalizer(unnorm_key, q01, q99, mask)

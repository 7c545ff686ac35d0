"""
Continuous values <-> integer bins, per dimension, vectorized over leading (chunk) axes.

Two schemes, because models were trained with one or the other and decoding must match training
bit for bit:
- rt1_grid (RT-1 / RT-2): 256 evenly spaced values from low to high inclusive;
  bin = (a - low) / (high - low) * (bins - 1), truncated (RT-1) or rounded; value = grid point.
- openvla_centers (OpenVLA): edges = linspace(low, high, bins), bin = digitize(a, edges) - 1,
  value = centre of the bin's interval, with the last bin folded onto the one before it.
Discrete dimensions use the value itself as the bin.
"""
from typing import Sequence

import numpy as np

from rt2_ros.actions.errors import ActionEncodeError
from rt2_ros.actions.space import ActionSpace, Dimension


def _grid_encode(values: np.ndarray, dim: Dimension, rounding: str) -> np.ndarray:
    scaled = (np.clip(values, dim.low, dim.high) - dim.low) / (dim.high - dim.low) * (dim.bins - 1)
    stepped = np.floor(scaled) if rounding == 'floor' else np.floor(scaled + 0.5)
    return np.clip(stepped, 0, dim.bins - 1).astype(np.int64)


def _grid_decode(bins: np.ndarray, dim: Dimension) -> np.ndarray:
    return bins.astype(np.float64) / (dim.bins - 1) * (dim.high - dim.low) + dim.low


def _openvla_edges(dim: Dimension) -> np.ndarray:
    return np.linspace(dim.low, dim.high, dim.bins)


def _openvla_encode(values: np.ndarray, dim: Dimension) -> np.ndarray:
    digitized = np.digitize(np.clip(values, dim.low, dim.high), _openvla_edges(dim))
    return (digitized - 1).astype(np.int64)


def _openvla_decode(bins: np.ndarray, dim: Dimension) -> np.ndarray:
    edges = _openvla_edges(dim)
    centers = (edges[:-1] + edges[1:]) / 2.0
    return centers[np.clip(bins, 0, centers.shape[0] - 1)]


def _discrete_encode(values: np.ndarray, dim: Dimension) -> np.ndarray:
    nearest = np.rint(values)
    if np.any(np.abs(values - nearest) > 1e-6) or np.any(nearest < 0) \
            or np.any(nearest > dim.bins - 1):
        raise ActionEncodeError(
            f'{dim.name} is discrete: values must be integers 0..{dim.bins - 1} '
            f'({", ".join(f"{i}={label}" for i, label in enumerate(dim.labels))})')
    return nearest.astype(np.int64)


def values_to_bins(space: ActionSpace, values: Sequence[float]) -> np.ndarray:
    """Encode values of shape (..., n) into bins; NaN or wrong width raise ActionEncodeError."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != space.size:
        raise ActionEncodeError(
            f'{space.name} needs {space.size} values ({" ".join(space.names)}), '
            f'got shape {tuple(array.shape)}')
    if not np.all(np.isfinite(array)):
        raise ActionEncodeError('values must be finite numbers')
    out = np.empty(array.shape, dtype=np.int64)
    for i, dim in enumerate(space.dimensions):
        column = array[..., i]
        if dim.is_discrete:
            out[..., i] = _discrete_encode(column, dim)
        elif space.binning == 'openvla_centers':
            out[..., i] = _openvla_encode(column, dim)
        else:
            out[..., i] = _grid_encode(column, dim, space.rounding)
    return out


def bins_to_values(space: ActionSpace, bins: Sequence[int]) -> np.ndarray:
    """Decode in-range bins of shape (..., n) into values; callers validate the range first."""
    array = np.asarray(bins, dtype=np.int64)
    out = np.empty(array.shape, dtype=np.float64)
    for i, dim in enumerate(space.dimensions):
        column = array[..., i]
        if dim.is_discrete:
            out[..., i] = column
        elif space.binning == 'openvla_centers':
            out[..., i] = _openvla_decode(column, dim)
        else:
            out[..., i] = _grid_decode(column, dim)
    return out


def decoded_bounds(space: ActionSpace) -> np.ndarray:
    """(2, n) array of the smallest and largest value any bin decodes to, per dimension."""
    lows = bins_to_values(space, np.zeros(space.size, dtype=np.int64))
    highs = bins_to_values(space, np.array([d.bins - 1 for d in space.dimensions]))
    return np.stack([np.minimum(lows, highs), np.maximum(lows, highs)])

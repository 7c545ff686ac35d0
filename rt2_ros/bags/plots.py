"""PNG plots of an evaluation (matplotlib, Agg: works on a headless GPU box and in CI)."""
from pathlib import Path
from typing import List

import numpy as np

from rt2_ros.actions import ActionSpace
from rt2_ros.bags.evaluation import StepResult


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_actions(results: List[StepResult], space: ActionSpace, path: Path) -> Path:
    """Plot recorded vs predicted value of every continuous dimension over the steps."""
    plt = _pyplot()
    dims = [i for i, d in enumerate(space.dimensions) if not d.is_discrete]
    figure, axes = plt.subplots(len(dims), 1, figsize=(9, 1.6 * len(dims) + 0.8), sharex=True,
                                squeeze=False)
    steps = np.array([r.index for r in results])
    recorded = np.stack([r.recorded for r in results]) if results else np.zeros((0, space.size))
    predicted = np.stack([r.predicted if r.predicted is not None else
                          np.full(space.size, np.nan) for r in results]) \
        if results else np.zeros((0, space.size))
    changes = [r.index for prev, r in zip(results, results[1:]) if r.episode != prev.episode]
    for row, index in enumerate(dims):
        axis = axes[row][0]
        dim = space.dimensions[index]
        axis.plot(steps, recorded[:, index], color='black', lw=1.5, label='recorded')
        axis.plot(steps, predicted[:, index], color='tab:orange', lw=1.0, marker='.',
                  label='policy')
        for change in changes:
            axis.axvline(change - 0.5, color='grey', lw=0.8, ls=':')
        axis.set_ylabel(f'{dim.name}\n[{dim.unit}]' if dim.unit else dim.name, fontsize=8)
        margin = 0.05 * (dim.high - dim.low)
        axis.set_ylim(dim.low - margin, dim.high + margin)
        axis.tick_params(labelsize=7)
    axes[0][0].legend(loc='upper right', fontsize=7)
    axes[-1][0].set_xlabel('decision step (dotted: new episode)')
    figure.suptitle('Recorded vs policy action per dimension', fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_errors(results: List[StepResult], space: ActionSpace, path: Path) -> Path:
    """Histogram of the bin error (policy - recorded) per continuous dimension."""
    from rt2_ros.bags.evaluation import _safe_bins
    plt = _pyplot()
    answered = [r for r in results if r.predicted is not None]
    dims = [i for i, d in enumerate(space.dimensions) if not d.is_discrete]
    columns = min(4, len(dims))
    rows = (len(dims) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.1 * rows),
                                squeeze=False)
    if answered:
        recorded = np.stack([r.recorded for r in answered])
        predicted = np.stack([r.predicted for r in answered])
        known = np.isfinite(recorded) & np.isfinite(predicted)
        error = _safe_bins(space, predicted) - _safe_bins(space, recorded)
    for slot, index in enumerate(dims):
        axis = axes[slot // columns][slot % columns]
        if answered and known[:, index].any():
            axis.hist(error[known[:, index], index], bins=31, color='tab:blue')
        axis.set_title(space.dimensions[index].name, fontsize=8)
        axis.tick_params(labelsize=7)
    for slot in range(len(dims), rows * columns):
        axes[slot // columns][slot % columns].axis('off')
    figure.suptitle('Bin error (policy - recorded)', fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_latency(results: List[StepResult], path: Path) -> Path:
    """Wall-clock policy latency per step and its distribution."""
    plt = _pyplot()
    figure, (over_time, histogram) = plt.subplots(1, 2, figsize=(9, 3))
    wall = np.array([r.wall_s * 1000.0 for r in results])
    failed = np.array([r.error_cause is not None for r in results], dtype=bool)
    steps = np.arange(len(results))
    over_time.plot(steps[~failed], wall[~failed], '.', color='tab:blue', label='answered')
    if failed.any():
        over_time.plot(steps[failed], wall[failed], 'x', color='tab:red', label='failed')
    over_time.set_xlabel('decision step')
    over_time.set_ylabel('latency [ms]')
    over_time.legend(fontsize=7)
    if wall.size:
        histogram.hist(wall, bins=30, color='tab:blue')
        for p, style in ((50, '-'), (99, '--')):
            histogram.axvline(np.percentile(wall, p), color='black', ls=style, lw=1,
                              label=f'p{p}')
        histogram.legend(fontsize=7)
    histogram.set_xlabel('latency [ms]')
    figure.suptitle('Policy latency (wall clock around infer)', fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path

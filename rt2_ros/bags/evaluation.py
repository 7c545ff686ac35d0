"""
Offline evaluation: run a policy on a recording's decision steps and score it against the expert.

The scores are the ones that tell a VLA team something: error per action dimension in robot
units and in bins (a model trained on bins is judged in bins too), exact-bin accuracy, whether the
gripper and the terminate decision agree, and the latency the policy really had, as percentiles -
not a single mean that hides the stalls. Policy failures are counted by cause, never crash the
run: a server that times out on 3 % of frames is itself a finding.
"""
from dataclasses import dataclass
import math
import time
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from rt2_ros.actions import ActionSpace
from rt2_ros.actions.binning import values_to_bins
from rt2_ros.bags.steps import DecisionStep
from rt2_ros.policy.base import Observation, Policy, PolicyError

PERCENTILES = (50, 90, 95, 99)
GRIPPER_THRESHOLD = 0.5


@dataclass
class StepResult:
    """One decision: the expert's action, the policy's, and how the call went."""

    index: int
    time_ns: int
    episode: int
    instruction: str
    recorded: np.ndarray
    recorded_terminate: Optional[bool]
    predicted: Optional[np.ndarray] = None
    predicted_terminate: Optional[bool] = None
    horizon: int = 0
    wall_s: float = 0.0
    inference_s: Optional[float] = None
    error_cause: Optional[str] = None
    error: Optional[str] = None
    raw: Any = None

    def to_dict(self, names: tuple) -> Dict[str, Any]:
        def listed(values: Optional[np.ndarray]) -> Optional[list]:
            if values is None:
                return None
            return [None if not math.isfinite(v) else round(float(v), 7) for v in values]
        raw = self.raw if isinstance(self.raw, (str, int, float, type(None))) else str(self.raw)
        return {'step': self.index, 'time_ns': self.time_ns, 'episode': self.episode,
                'instruction': self.instruction, 'names': list(names),
                'recorded': listed(self.recorded), 'recorded_terminate': self.recorded_terminate,
                'predicted': listed(self.predicted),
                'predicted_terminate': self.predicted_terminate, 'horizon': self.horizon,
                'wall_s': round(self.wall_s, 6),
                'inference_s': None if self.inference_s is None else round(self.inference_s, 6),
                'error_cause': self.error_cause, 'error': self.error, 'raw': raw}


def run_policy(steps: Iterable[DecisionStep], policy: Policy, total: Optional[int] = None,
               progress: bool = True) -> List[StepResult]:
    """
    Ask the policy at every step, in order, resetting it when a new episode starts.

    The clock is the wall clock around `infer` - what the controller would wait - next to the
    backend's own inference time when it reports one.
    """
    from tqdm import tqdm
    results: List[StepResult] = []
    episode = None
    bar = tqdm(total=total, desc='policy', unit='step', disable=not progress, leave=False)
    try:
        for step in steps:
            if step.episode != episode:
                policy.reset()
                episode = step.episode
            result = StepResult(step.index, step.time_ns, step.episode, step.instruction,
                                step.action, step.terminate)
            observation = Observation(image=step.image, instruction=step.instruction,
                                      stamp=step.frame_time_ns / 1e9, state=step.state,
                                      gripper=step.gripper)
            start = time.perf_counter()
            try:
                answer = policy.infer(observation)
            except PolicyError as exc:
                result.wall_s = time.perf_counter() - start
                result.error_cause, result.error = exc.cause, str(exc)
            else:
                result.wall_s = time.perf_counter() - start
                result.predicted = np.asarray(answer.action, dtype=np.float64)
                result.horizon = answer.horizon
                result.predicted_terminate = answer.terminate[0] if answer.terminate else None
                result.inference_s = answer.timing.inference_s
                result.raw = answer.raw
            results.append(result)
            bar.update(1)
    finally:
        bar.close()
    return results


def percentiles(values: List[float]) -> Optional[Dict[str, float]]:
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    stats = {f'p{p}': float(np.percentile(array, p)) for p in PERCENTILES}
    stats.update({'mean': float(array.mean()), 'max': float(array.max()), 'n': int(array.size)})
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in stats.items()}


def _safe_bins(space: ActionSpace, values: np.ndarray) -> np.ndarray:
    """Bins of a (n, dims) array where NaN entries are filled in (callers mask them out)."""
    filled = values.copy()
    for index, dim in enumerate(space.dimensions):
        column = filled[:, index]
        bad = ~np.isfinite(column)
        if dim.is_discrete:
            column[bad] = 0.0
            column[:] = np.clip(np.rint(column), 0, dim.bins - 1)
        else:
            column[bad] = dim.low
    return values_to_bins(space, filled)


def _round(value: Optional[float], digits: int = 9) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def score(results: List[StepResult], space: ActionSpace) -> Dict[str, Any]:
    """Compute the report's numbers from per-step results (docs/bags.md)."""
    answered = [r for r in results if r.predicted is not None]
    failures: Dict[str, int] = {}
    for result in results:
        if result.error_cause:
            failures[result.error_cause] = failures.get(result.error_cause, 0) + 1
    report: Dict[str, Any] = {
        'steps': {'total': len(results), 'answered': len(answered),
                  'failed': len(results) - len(answered)},
        'failures': failures,
        'latency_s': {
            'wall': percentiles([r.wall_s for r in results]),
            'inference': percentiles([r.inference_s for r in answered
                                      if r.inference_s is not None]),
        },
    }
    dims: Dict[str, Any] = {}
    continuous = [i for i, d in enumerate(space.dimensions) if not d.is_discrete]
    if answered:
        recorded = np.stack([r.recorded for r in answered])
        predicted = np.stack([r.predicted for r in answered])
        known = np.isfinite(recorded) & np.isfinite(predicted)
        recorded_bins = _safe_bins(space, recorded)
        predicted_bins = _safe_bins(space, predicted)
        exact = (recorded_bins == predicted_bins) & known
        near = (np.abs(recorded_bins - predicted_bins) <= 1) & known
        for index in continuous:
            dim = space.dimensions[index]
            mask = known[:, index]
            if not mask.any():
                dims[dim.name] = {'unit': dim.unit, 'n': 0}
                continue
            error = predicted[mask, index] - recorded[mask, index]
            bin_error = np.abs(predicted_bins[mask, index] - recorded_bins[mask, index])
            dims[dim.name] = {
                'unit': dim.unit, 'n': int(mask.sum()),
                'mae': _round(np.abs(error).mean()), 'rmse': _round(np.sqrt((error ** 2).mean())),
                'max_abs': _round(np.abs(error).max()), 'bias': _round(error.mean()),
                'bin_mae': _round(bin_error.mean(), 6),
                'bin_accuracy': _round(exact[mask, index].mean(), 6),
                'bin_within_1': _round(near[mask, index].mean(), 6),
            }
        cells = known[:, continuous]
        rows = cells.any(axis=1)
        report['bin_accuracy'] = {
            'exact': _round(exact[:, continuous][cells].mean(), 6) if cells.any() else None,
            'within_1': _round(near[:, continuous][cells].mean(), 6) if cells.any() else None,
            'all_dims_exact': _round(
                np.all(exact[:, continuous] | ~cells, axis=1)[rows].mean(), 6)
            if rows.any() else None,
        }
        report['gripper'] = _gripper_agreement(space, recorded, predicted, known)
        report['terminate'] = _terminate_agreement(answered)
    else:
        report['bin_accuracy'] = {'exact': None, 'within_1': None, 'all_dims_exact': None}
        report['gripper'] = None
        report['terminate'] = None
    report['dimensions'] = dims
    return report


def _gripper_agreement(space: ActionSpace, recorded: np.ndarray, predicted: np.ndarray,
                       known: np.ndarray) -> Optional[Dict[str, Any]]:
    index = space.gripper_index
    if index is None or not known[:, index].any():
        return None
    mask = known[:, index]
    openness = np.vectorize(space.gripper_openness)
    want = openness(recorded[mask, index]) >= GRIPPER_THRESHOLD
    got = openness(predicted[mask, index]) >= GRIPPER_THRESHOLD
    return {'agreement': _round((want == got).mean(), 6), 'n': int(mask.sum()),
            'threshold': GRIPPER_THRESHOLD,
            'recorded_open': int(want.sum()), 'predicted_open': int(got.sum())}


def _terminate_agreement(answered: List[StepResult]) -> Optional[Dict[str, Any]]:
    pairs = [(r.recorded_terminate, r.predicted_terminate) for r in answered
             if r.recorded_terminate is not None and r.predicted_terminate is not None]
    if not pairs:
        return None
    counts = {'tp': 0, 'fp': 0, 'fn': 0, 'tn': 0}
    for want, got in pairs:
        key = ('t' if want == got else 'f') + ('p' if got else 'n')
        counts[key] += 1
    return {'agreement': _round((counts['tp'] + counts['tn']) / len(pairs), 6),
            'n': len(pairs), **counts}

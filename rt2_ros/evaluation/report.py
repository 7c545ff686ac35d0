"""
The evaluation report (`rt2 eval-sim --json`): success with Wilson intervals, latency, seeds.

One schema for both paths, with `mode` saying which produced it: `ros` (rt2_sim +
rt2_controller over DDS) or `fast` (the pure lockstep sim,
for quick checks only).
"""
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

from rt2_ros.evaluation.stats import latency_summary, rate_summary

SCHEMA_VERSION = 1
EVAL_FIRST_SEED = 1_000_000   # default evaluation seeds start far above any training range
REACH_M = 0.02                # fingertips this close to the target block (xy) count as reached


class SeedOverlapError(ValueError):
    """Evaluation seeds overlap the seeds a model was trained on."""


def check_seed_overlap(seeds: Sequence[int], train_ranges: Sequence[Sequence[int]]) -> None:
    """Raise SeedOverlapError if any seed lies in a [start, stop) training range."""
    for start, stop in train_ranges:
        clash = [s for s in seeds if start <= s < stop]
        if clash:
            raise SeedOverlapError(
                f'evaluation seeds {clash[0]}.. overlap the training seeds {start}..{stop - 1}; '
                f'choose --seed outside them (default {EVAL_FIRST_SEED})')


def _group(records: Sequence[Dict[str, Any]], key: str) -> Dict[str, Dict[str, Any]]:
    groups: Dict[str, List[bool]] = OrderedDict()
    for r in sorted(records, key=lambda r: r[key]):
        groups.setdefault(r[key], []).append(bool(r['success']))
    return {k: rate_summary(sum(v), len(v)) for k, v in groups.items()}


def build_report(split: str, records: Sequence[Dict[str, Any]], mode: str,
                 policy: Dict[str, Any], settings: Dict[str, Any],
                 decision_latencies_s: Sequence[float],
                 controller_latency: Optional[Dict[str, Any]] = None,
                 wall_s: float = 0.0) -> Dict[str, Any]:
    """Assemble the JSON report from per-episode records (dicts with success, seed, family)."""
    successes = sum(bool(r['success']) for r in records)
    summary = rate_summary(successes, len(records))
    seeds = [int(r['seed']) for r in records]
    report: Dict[str, Any] = {
        'schema': SCHEMA_VERSION,
        'split': split,
        'mode': mode,
        'success_rate': round(summary['success_rate'], 4),
        'ci95': summary['ci95'],
        'successes': successes,
        'episodes': len(records),
        'per_family': _group(records, 'family'),
        'per_referent': _group(records, 'referent'),
        'terminated_rate': round(sum(bool(r.get('terminated')) for r in records)
                                 / max(1, len(records)), 4),
        'mean_decisions': round(sum(int(r.get('decisions', 0)) for r in records)
                                / max(1, len(records)), 2),
        'decision_latency': latency_summary(list(decision_latencies_s)),
        'seeds': {'first': min(seeds) if seeds else None,
                  'last': max(seeds) if seeds else None, 'list': seeds},
        'policy': policy,
        'settings': settings,
        'wall_s': round(wall_s, 1),
        'records': list(records),
    }
    progress = _progress(records)
    if progress:
        report['progress'] = progress
    if controller_latency is not None:
        report['controller_policy_latency'] = controller_latency
    return report


def _progress(records: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    """
    Say how far failed attempts got, where records carry it (the fast path tracks it).

    A success rate of 0 says nothing about why; the share of episodes whose fingertips came
    within REACH_M of the target block (xy) and the share that ever held it separate 'never
    found the block' from 'found it but could not grasp' from 'grasped but did not finish'.
    """
    tracked = [r for r in records if 'closest_xy_m' in r and 'grasped' in r]
    if not tracked:
        return {}
    return {'reached_target_rate': round(sum(float(r['closest_xy_m']) <= REACH_M
                                             for r in tracked) / len(tracked), 4),
            'grasped_target_rate': round(sum(bool(r['grasped']) for r in tracked)
                                         / len(tracked), 4),
            'reach_radius_m': REACH_M}


def format_summary(report: Dict[str, Any]) -> str:
    """One human line per report (the CLI prints it)."""
    low, high = report['ci95']
    latency = report['decision_latency']
    mean = latency.get('mean_ms')
    families = ', '.join(f'{k} {v["success_rate"]:.0%}' for k, v in report['per_family'].items())
    return (f'{report["split"]} ({report["mode"]}): {report["success_rate"]:.1%} success '
            f'[{low:.1%}, {high:.1%}] over {report["episodes"]} episodes; '
            f'decision latency mean {mean if mean is not None else "-"} ms'
            f'{" (p90 " + str(latency["p90_ms"]) + " ms)" if latency.get("p90_ms") else ""}; '
            f'{families}')

"""
Success-rate statistics: the Wilson score interval and latency percentiles.

A success rate from N episodes is a binomial estimate; the normal ("Wald") interval collapses
to zero width at 0 % and 100 % and undercovers for the N we can afford, so reports use the
Wilson score interval (Wilson 1927), which stays inside [0, 1] and is well calibrated for small
N. The paper's tables give mean +- a spread; ours give the rate and its 95 % interval.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

Z95 = 1.959963984540054  # two-sided 95 % standard normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z95) -> Tuple[float, float]:
    """Return the Wilson score interval (low, high) for successes out of trials."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f'need 0 <= successes <= trials, got {successes} of {trials}')
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def rate_summary(successes: int, trials: int) -> Dict[str, object]:
    """Return {'success_rate', 'ci95', 'successes', 'episodes'} for a count."""
    low, high = wilson_interval(successes, trials)
    return {'success_rate': (successes / trials) if trials else 0.0,
            'ci95': [round(low, 4), round(high, 4)], 'successes': int(successes),
            'episodes': int(trials)}


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Return the percentile q (0..100, linear interpolation), or None for no values."""
    if not values:
        return None
    data = sorted(float(v) for v in values)
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * q / 100.0
    low = int(math.floor(rank))
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_summary(values_s: Sequence[float]) -> Dict[str, Optional[float]]:
    """Return mean / p50 / p90 / p99 / max in milliseconds (None when there are no values)."""
    if not values_s:
        return {'mean_ms': None, 'p50_ms': None, 'p90_ms': None, 'p99_ms': None,
                'max_ms': None, 'count': 0}

    def ms(value: Optional[float]) -> Optional[float]:
        return None if value is None else round(1000.0 * value, 2)

    return {'mean_ms': ms(sum(values_s) / len(values_s)), 'p50_ms': ms(percentile(values_s, 50)),
            'p90_ms': ms(percentile(values_s, 90)), 'p99_ms': ms(percentile(values_s, 99)),
            'max_ms': ms(max(values_s)), 'count': len(values_s)}

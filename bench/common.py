"""Shared helpers of the benchmarks: percentiles, the machine description, table printing."""
import json
import math
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the nearest-rank q-th percentile of the samples (q in 0..100); nan when empty."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(1, int(math.ceil(q / 100.0 * len(ordered))))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(samples_s: Sequence[float]) -> Dict[str, float]:
    """Return p50 / p99 / max of samples given in seconds, in milliseconds (3 decimals)."""
    return {
        'p50_ms': round(1000.0 * percentile(samples_s, 50), 3),
        'p99_ms': round(1000.0 * percentile(samples_s, 99), 3),
        'max_ms': round(1000.0 * max(samples_s), 3) if samples_s else math.nan,
        'n': len(samples_s),
    }


def median(samples: Iterable[float]) -> float:
    values = list(samples)
    return statistics.median(values) if values else math.nan


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as info:
            for line in info:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def machine() -> Dict[str, Any]:
    """Describe where the figures were taken (load included: this machine may be shared)."""
    return {
        'cpu': cpu_model(),
        'cores': os.cpu_count(),
        'python': platform.python_version(),
        'system': f'{platform.system()} {platform.release()}',
        'load_average': [round(v, 2) for v in os.getloadavg()],
        'time': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
    }


def print_table(title: str, header: Sequence[str], rows: List[Sequence[Any]]) -> None:
    """Print a plain-text table with right-aligned columns (the first left-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
              for i, h in enumerate(header)]
    print(f'\n{title}')
    print('  ' + '  '.join(str(h).ljust(w) if i == 0 else str(h).rjust(w)
                           for i, (h, w) in enumerate(zip(header, widths))))
    for row in cells:
        print('  ' + '  '.join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(row, widths))))


def _cell(value: Any) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        if math.isnan(value):
            return '-'
        return f'{value:.3f}' if abs(value) < 100 else f'{value:.1f}'
    return str(value)


def goal(value: Optional[float], limit: float, higher_is_better: bool = False) -> str:
    """Say whether a figure meets its goal: 'met', 'missed', or '-' when not measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    ok = value >= limit if higher_is_better else value <= limit
    return 'met' if ok else 'missed'


def camera_like(height: int, width: int, seed: int = 0):
    """Return a frame with smooth structure plus sensor noise (JPEG size depends on content)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    noisy = base + rng.normal(0, 6, base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def test_support_path() -> str:
    """Return the test/ directory, whose support package has the scripted policy server."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'test')


def emit(results: Dict[str, Any], as_json: bool, print_results: Callable[[Dict[str, Any]], None]
         ) -> int:
    """Print a benchmark's results as JSON (for the orchestrator) or as its tables; return 0."""
    if as_json:
        print(json.dumps(results))
    else:
        print_results(results)
    return 0

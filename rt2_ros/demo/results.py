"""
What an episode of the demo did, as numbers a user can check: the printed lines and summary.json.

Latency is the controller's own measurement per decision (image handed to the worker to action
back, `InferenceReply.latency_s`), the same number the annotated image and /diagnostics show;
percentiles are over one episode's decisions (nearest-rank, no interpolation, so p95 of a short
episode is an observed value, not an invented one).
"""
from dataclasses import asdict, dataclass, field
import math
from typing import Any, Dict, List, Optional, Sequence

# Why an episode ended.
OUTCOMES = {
    'success': 'task done',
    'terminated': 'the policy ended the episode',
    'max_decisions': 'decision limit reached',
    'timeout': 'time limit reached',
    'interrupted': 'interrupted',
}


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Return the nearest-rank q-th percentile of values, q in 0..100; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class EpisodeResult:
    """One episode: what was asked, how it ended, how many decisions and how fast."""

    index: int
    split: str
    family: str
    seed: int
    instruction: str
    success: bool = False
    outcome: str = 'timeout'
    decisions: int = 0
    policy_failures: int = 0
    last_failure: str = ''
    latencies_s: List[float] = field(default_factory=list)
    start_s: float = 0.0
    end_s: float = 0.0
    clamped_ticks: int = 0
    ticks: int = 0

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @property
    def latency_p50_s(self) -> Optional[float]:
        return percentile(self.latencies_s, 50)

    @property
    def latency_p95_s(self) -> Optional[float]:
        return percentile(self.latencies_s, 95)

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data.update(duration_s=round(self.duration_s, 3), latency_p50_s=self.latency_p50_s,
                    latency_p95_s=self.latency_p95_s)
        return data


def _ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return '-'
    return f'{seconds * 1000:.1f} ms' if seconds < 0.01 else f'{seconds * 1000:.0f} ms'


def episode_line(result: EpisodeResult, total: int) -> str:
    """One line per episode for the terminal."""
    verdict = 'SUCCESS' if result.success else 'fail'
    why = '' if result.success else f' ({OUTCOMES.get(result.outcome, result.outcome)})'
    failures = f', {result.policy_failures} policy failures' if result.policy_failures else ''
    clamped = ''
    if result.ticks:
        clamped = f', clamped {100.0 * result.clamped_ticks / result.ticks:.0f} % of ticks'
    return (f'  [{result.index + 1}/{total}] {result.family:<13} {verdict}{why}: '
            f'{result.decisions} decisions in {result.duration_s:.1f} s, latency p50 '
            f'{_ms(result.latency_p50_s)} p95 {_ms(result.latency_p95_s)}{failures}{clamped}')


def overall(results: Sequence[EpisodeResult]) -> Dict[str, Any]:
    """Totals over the run: successes and latency percentiles over every decision."""
    latencies = [v for r in results for v in r.latencies_s]
    return {
        'episodes': len(results),
        'successes': sum(1 for r in results if r.success),
        'decisions': sum(r.decisions for r in results),
        'latency_p50_s': percentile(latencies, 50),
        'latency_p95_s': percentile(latencies, 95),
    }

"""
Small rolling statistics for diagnostics: latency percentiles and event rates.

Kept in plain Python over bounded deques, so updating them in a control loop is a few hundred
nanoseconds and reading them (once a second for /diagnostics) sorts at most a few hundred values.
"""
from collections import deque
import math
import threading
from typing import Deque, Optional, Tuple


class RollingSamples:
    """The last `size` samples of a quantity (e.g. policy latency), thread-safe."""

    def __init__(self, size: int = 200) -> None:
        self._values: Deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, q: float) -> Optional[float]:
        """Return the nearest-rank q-th percentile, q in 0..100; None without samples."""
        with self._lock:
            values = sorted(self._values)
        if not values:
            return None
        rank = max(1, int(math.ceil(q / 100.0 * len(values))))
        return values[min(rank, len(values)) - 1]

    def percentiles(self, *qs: float) -> Tuple[Optional[float], ...]:
        with self._lock:
            values = sorted(self._values)
        out = []
        for q in qs:
            if not values:
                out.append(None)
                continue
            rank = max(1, int(math.ceil(q / 100.0 * len(values))))
            out.append(values[min(rank, len(values)) - 1])
        return tuple(out)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class RateMeter:
    """Events per second over a sliding window of time (e.g. decisions per second)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window = float(window_s)
        self._times: Deque[float] = deque()
        self._lock = threading.Lock()

    def mark(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-9)
            return (len(self._times) - 1) / span if span < self.window else \
                len(self._times) / self.window

"""
How long the machine itself froze while a timing test measured a node.

A node's worst command gap or halt latency mixes two things: the node's own delays (a callback
blocking the executor, the GIL held by a worker, a garbage-collection pause) and the whole
machine pausing (a virtual CPU descheduled by its host, a burst of other work on a 2-core CI
runner). Only the first is the node's fault. The probe is a separate process that asks to wake
up every 2 ms and reports each wake-up that came late; a late wake-up there means the machine,
not the node, stood still. Timing tests add the probe's worst lateness in the measured window to
their bound, and print both, so a failure says which of the two it was.

    with StallProbe() as probe:              # one window
        items = twists.wait_count(150)
    assert max_gap < 4 * PERIOD + probe.worst_s

    probe = StallProbe().start()             # a long-lived rig: ask about any window
    allowance = probe.worst(cause, cause + budget)
"""
import subprocess
import sys
import threading
import time
from typing import List, Optional, Tuple

REPORT_ABOVE_S = 0.003  # wake-ups later than this are reported

_PROBE = """
import sys, time
tick, report = 0.002, float(sys.argv[1])
last = time.monotonic()
while True:
    time.sleep(tick)
    now = time.monotonic()
    lateness = now - last - tick
    last = now
    if lateness > report:
        sys.stdout.write(f'{time.time():.6f} {lateness:.6f}\\n')
        sys.stdout.flush()
"""


class StallProbe:
    """A sleeper process whose late wake-ups bound the machine's own stalls in a window."""

    def __init__(self) -> None:
        """Create a stopped probe; start() or a with block runs it."""
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._late: List[Tuple[float, float]] = []  # (wall time of the wake-up, lateness)
        self._window = (0.0, 0.0)
        self.worst_s = 0.0

    def start(self) -> 'StallProbe':
        self._process = subprocess.Popen(
            [sys.executable, '-c', _PROBE, str(REPORT_ABOVE_S)], stdout=subprocess.PIPE,
            text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            wall, lateness = (float(v) for v in line.split())
            with self._lock:
                self._late.append((wall, lateness))

    def worst(self, start: float, end: float) -> float:
        """Return the longest stall overlapping [start, end] (wall-clock seconds) seen so far."""
        with self._lock:
            return max((lateness for wall, lateness in self._late
                        if wall >= start and wall - lateness <= end), default=0.0)

    def __enter__(self) -> 'StallProbe':
        """Start the probe and the window."""
        self.start()
        self._window = (time.time(), 0.0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """End the window, stop the probe and keep the window's worst stall in worst_s."""
        end = time.time()
        self.stop()
        self.worst_s = self.worst(self._window[0], end)

    def describe(self, worst: Optional[float] = None) -> str:
        value = self.worst_s if worst is None else worst
        return f'machine stall (probe process, worst wake-up lateness) {value * 1e3:.1f} ms'

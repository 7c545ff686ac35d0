"""
How long the machine itself froze while a timing test measured a node.

A node's worst command gap mixes two things: the node's own delays (a callback blocking the
executor, the GIL held by a worker, a garbage-collection pause) and the whole machine pausing
(a virtual CPU descheduled by its host, a burst of other work on a 2-core CI runner). Only the
first is the node's fault. The probe is a separate process that asks to wake up every 2 ms and
records how late each wake-up was; a late wake-up there means the machine, not the node, stood
still. Timing tests add the probe's worst lateness to their bound on the node's worst gap, and
print both, so a failure says which of the two it was.

    with StallProbe() as probe:
        items = twists.wait_count(150)
    assert max_gap < 4 * PERIOD + probe.worst_s
"""
import subprocess
import sys
from typing import List, Optional

_PROBE = """
import sys, time
tick, worst = 0.002, 0.0
last = time.monotonic()
while True:
    time.sleep(tick)
    now = time.monotonic()
    lateness = now - last - tick
    last = now
    if lateness > worst:
        worst = lateness
        sys.stdout.write(f'{worst:.6f}\\n')
        sys.stdout.flush()
"""


class StallProbe:
    """A sleeper process whose lateness bounds the machine's own stalls during a window."""

    def __init__(self) -> None:
        self._process: Optional[subprocess.Popen] = None
        self.worst_s = 0.0

    def __enter__(self) -> 'StallProbe':
        self._process = subprocess.Popen([sys.executable, '-c', _PROBE], stdout=subprocess.PIPE,
                                         text=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._process.kill()
        output, _ = self._process.communicate(timeout=10)
        values: List[float] = [float(line) for line in output.split() if line]
        self.worst_s = max(values, default=0.0)

    def describe(self) -> str:
        return f'machine stall (probe process, worst wake-up lateness) {self.worst_s * 1e3:.1f} ms'

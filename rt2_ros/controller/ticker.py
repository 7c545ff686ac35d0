"""
A control clock on its own thread, with absolute deadlines on the monotonic clock.

Why not an rclpy timer: a timer callback reaches Python only after the executor's wait set wakes,
the executor's Python code finds the ready entity and a worker thread picks it up - three hand-offs
that each wait for the GIL behind image callbacks, reply handling and diagnostics. A thread that
sleeps to its own deadline needs one: the wake-up. `python -m bench.control_loop` measures both
side by side with a bare loop in another process.

Deadlines are k * period after the start, not "period after the last tick", so a late tick does
not shift the ones after it (no drift). A tick that comes more than one period late skips the
ticks it missed instead of bursting them out back to back: a controller fed three commands in
a millisecond gains nothing and MoveIt Servo would see a velocity spike. Skips are counted.

Wall-clock time only: under sim time the control clock must follow /clock, which an rclpy
timer on the node's clock does (rt2_controller picks accordingly).
"""
import threading
import time
from typing import Callable, Optional


class SteadyTicker:
    """Call `callback()` every `period_s` seconds on a dedicated thread until stopped."""

    def __init__(self, period_s: float, callback: Callable[[], None], name: str = 'ticker',
                 on_error: Optional[Callable[[BaseException], None]] = None) -> None:
        if not period_s > 0.0:
            raise ValueError(f'period must be positive, got {period_s!r}')
        self.period_s = float(period_s)
        self._callback = callback
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ticks = 0
        self.skipped = 0

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop and wait for a running tick to finish; False if it did not within timeout."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        start = time.monotonic()
        k = 0
        while not self._stop.is_set():
            k += 1
            deadline = start + k * self.period_s
            remaining = deadline - time.monotonic()
            if remaining > 0.0 and self._stop.wait(remaining):
                return
            behind = time.monotonic() - deadline
            if behind >= self.period_s:
                missed = int(behind // self.period_s)
                self.skipped += missed
                k += missed
            try:
                self._callback()
            except Exception as exc:  # noqa: BLE001 - a control clock must keep ticking
                if self._on_error is None:
                    raise
                self._on_error(exc)
            self.ticks += 1

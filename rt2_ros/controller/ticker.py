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

A real-time priority (SCHED_FIFO, as ros2_control and MoveIt Servo use for their loops) lets the
thread's wake-up preempt other processes on a busy machine. It needs CAP_SYS_NICE or an rtprio
limit (/etc/security/limits.conf); without them the thread runs at normal priority and says why.
The GIL still has to be won after the wake-up: the priority removes the scheduler's share of
the lateness, not Python's.
"""
import os
import threading
import time
from typing import Callable, Optional


class SteadyTicker:
    """Call `callback()` every `period_s` seconds on a dedicated thread until stopped."""

    def __init__(self, period_s: float, callback: Callable[[], None], name: str = 'ticker',
                 on_error: Optional[Callable[[BaseException], None]] = None,
                 realtime_priority: int = 0) -> None:
        if not period_s > 0.0:
            raise ValueError(f'period must be positive, got {period_s!r}')
        if not 0 <= realtime_priority <= 99:
            raise ValueError(f'realtime priority must be 0 (off) to 99, got {realtime_priority}')
        self.period_s = float(period_s)
        self.realtime_priority = int(realtime_priority)
        self._callback = callback
        self._on_error = on_error
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ticks = 0
        self.skipped = 0
        self.priority_error: Optional[str] = None  # why the real-time priority was not set

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self, timeout: float = 1.0) -> None:
        """Start ticking; return once the thread has set its priority (or failed to)."""
        self._thread.start()
        self._started.wait(timeout)

    def _raise_priority(self) -> None:
        if self.realtime_priority == 0:
            return
        try:
            # pid 0 is the calling thread on Linux: only the control clock is raised
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
        except (AttributeError, OSError) as exc:
            self.priority_error = (f'SCHED_FIFO priority {self.realtime_priority} not set '
                                   f'({type(exc).__name__}: {exc})')

    def stop(self, timeout: float = 1.0) -> bool:
        """Stop and wait for a running tick to finish; False if it did not within timeout."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        self._raise_priority()
        self._started.set()
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

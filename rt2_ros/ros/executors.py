"""
Which rclpy executor spins rt2_controller, and why the default is not the multi-threaded one.

The control clock is a thread of its own (rt2_ros.controller.ticker), so its jitter is how long
it waits for the GIL after each wake-up. rclpy's MultiThreadedExecutor keeps its spinning thread
in Python almost all the time: it rebuilds the wait set (every subscription's QoS event handlers
included) for each callback it hands to its pool, and while a callback of a mutually exclusive
group runs, the same entity is ready again at once and the loop goes round without blocking. In
`python -m bench.control_loop` that made the control jitter's p99 1-146 ms (median 13 ms) with
ticks up to 190 ms late, on an otherwise idle machine where a bare loop saw under 1 ms. The
single-threaded executor blocks in the middleware's wait between callbacks; with it the p99 came
down to 1-3 ms (figures in docs/latency.md).

`auto` is the single-threaded executor on every distro, so what the tests run here is what runs
on a Humble or Jazzy robot. rclpy's EventsExecutor (Kilted and newer, `rclpy.experimental`)
dispatches from C++ and measured about as well, but it is experimental, and creating a
subscription or client from another thread while it spins deadlocked here (Node.create_client
waiting in _wake_executor): choose it with `events` knowing that.

The node does not need callbacks to run in parallel: inference runs on its own worker threads
and the control clock on its own thread; every executor callback is bookkeeping that takes
microseconds to a millisecond.
"""
from typing import Any, Optional, Tuple

from rt2_ros.controller.params import EXECUTOR_KINDS


def events_executor_class() -> Optional[type]:
    """Return rclpy's EventsExecutor, or None where this rclpy (Humble, Jazzy) has none."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor


def resolve_executor_kind(requested: str, events_available: bool) -> str:
    """
    Return the executor kind to build for `requested`; ValueError saying what to use instead.

    `events_available` matters only for `events`: `auto` is single_threaded everywhere.
    """
    if requested not in EXECUTOR_KINDS:
        raise ValueError(f"executor = {requested!r} is not one of {', '.join(EXECUTOR_KINDS)}")
    if requested == 'auto':
        return 'single_threaded'
    if requested == 'events' and not events_available:
        raise ValueError("executor = 'events' needs rclpy.experimental.EventsExecutor (rclpy of "
                         'ROS 2 Kilted or newer), which this rclpy lacks: use auto or '
                         'single_threaded')
    return requested


def make_executor(requested: str, context: Any = None) -> Tuple[Any, str]:
    """Build the executor for `requested`; return it and the kind it resolved to."""
    events = events_executor_class()
    kind = resolve_executor_kind(requested, events is not None)
    if kind == 'events':
        return events(context=context), kind
    if kind == 'single_threaded':
        from rclpy.executors import SingleThreadedExecutor
        return SingleThreadedExecutor(context=context), kind
    from rclpy.executors import MultiThreadedExecutor
    return MultiThreadedExecutor(num_threads=3, context=context), kind

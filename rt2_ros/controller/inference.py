"""
Policy calls on worker threads, so inference never runs in a ROS callback.

A ROS executor that waits 300 ms for a model cannot publish the 50 Hz commands MoveIt Servo needs,
and cannot even notice an e-stop. So the control loop only *asks* for a decision (a cheap,
non-blocking hand-off of the latest image message) and each worker thread does the slow part -
image conversion, encoding, the network or model call - then reports back through a callback.

One policy object per worker, because a Policy is only promised to be safe from one thread.
Several workers let a remote server work on overlapping requests (pipelining a slow policy);
their results can then come back out of order, which the action queue handles by dropping
results older than what it already has.
"""
from dataclasses import dataclass
import queue
import threading
import time
import traceback
from typing import Callable, List, Optional

from rt2_ros.controller.images import ImageConversionError
from rt2_ros.policy.base import Observation, Policy, PolicyError, PolicyResult


class UnexpectedPolicyFailure(PolicyError):
    """A backend raised something other than a PolicyError (a bug); treated as a policy error."""

    cause = 'policy_error'


@dataclass
class InferenceRequest:
    """
    One decision to compute.

    build turns the captured sensor data into an Observation on the worker (so conversion and
    resizing happen off the executor; it raises ImageConversionError for a bad image); stamp is
    the image's camera time, episode says which episode asked, so a reply for an old episode
    is recognised and dropped.
    """

    ticket: int
    episode: int
    stamp: float
    build: Callable[[], Observation]
    sent_at: float = 0.0
    frame_id: str = ''  # the camera message's, for what is drawn on the image


@dataclass
class InferenceReply:
    request: InferenceRequest
    result: Optional[PolicyResult]
    error: Optional[Exception]
    latency_s: float
    observation: Optional[Observation] = None


class _Worker:
    def __init__(self, policy: Policy, on_reply: Callable[[InferenceReply], None],
                 name: str, on_idle: Optional[Callable[[], None]] = None) -> None:
        self.policy = policy
        self._on_reply = on_reply
        self._on_idle = on_idle
        self._inbox: 'queue.Queue[Optional[InferenceRequest]]' = queue.Queue(maxsize=1)
        self._busy = threading.Event()
        self._claim = threading.Lock()  # the control timer and an idle worker may both submit
        self._episode: Optional[int] = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def submit(self, request: InferenceRequest) -> bool:
        with self._claim:
            if self._busy.is_set():
                return False
            self._busy.set()
        self._inbox.put_nowait(request)
        return True

    def stop(self) -> None:
        try:
            self._inbox.put_nowait(None)
        except queue.Full:
            pass

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            request = self._inbox.get()
            if request is None:
                return
            try:
                self._on_reply(self._infer(request))
            except Exception:  # noqa: BLE001 - a failing reply handler must not kill the worker
                traceback.print_exc()
            finally:
                self._busy.clear()
            if self._on_idle is not None:
                try:
                    self._on_idle()
                except Exception:  # noqa: BLE001 - same: the worker must survive its callbacks
                    traceback.print_exc()

    def _infer(self, request: InferenceRequest) -> InferenceReply:
        started = time.monotonic()
        observation = None
        try:
            if self._episode != request.episode:
                self._episode = request.episode
                self.policy.reset()
            try:
                observation = request.build()
            except ImageConversionError as exc:
                return InferenceReply(request, None, exc, time.monotonic() - started)
            result = self.policy.infer(observation)
            error = None
        except PolicyError as exc:
            result, error = None, exc
        except Exception as exc:  # noqa: BLE001 - a backend bug must halt, not kill the worker
            result = None
            error = UnexpectedPolicyFailure(f'{type(exc).__name__}: {exc}')
        return InferenceReply(request, result, error, time.monotonic() - started, observation)


class InferencePool:
    """
    Worker threads, one policy each; submit() never blocks.

    on_idle (optional) runs on a worker each time it has delivered a reply and is free again,
    so the owner can hand it the next request at once instead of at its next timer tick.
    """

    def __init__(self, policies: List[Policy], on_reply: Callable[[InferenceReply], None],
                 on_idle: Optional[Callable[[], None]] = None) -> None:
        if not policies:
            raise ValueError('need at least one policy')
        self._workers = [_Worker(p, on_reply, f'rt2-inference-{i}', on_idle)
                         for i, p in enumerate(policies)]

    @property
    def size(self) -> int:
        return len(self._workers)

    def busy_count(self) -> int:
        return sum(w.busy for w in self._workers)

    def submit(self, request: InferenceRequest) -> bool:
        """Hand a request to an idle worker; False when all are busy."""
        for worker in self._workers:
            if not worker.busy and worker.submit(request):
                return True
        return False

    def close(self, timeout: float = 2.0) -> bool:
        """Stop workers and release policies; True when every thread ended in time."""
        for worker in self._workers:
            worker.stop()
        deadline = time.monotonic() + timeout
        ended = True
        for worker in self._workers:
            ended = worker.join(max(0.0, deadline - time.monotonic())) and ended
        for worker in self._workers:
            try:
                worker.policy.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        return ended

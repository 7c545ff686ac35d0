"""
The controller core: everything rt2_controller decides, without ROS.

The node is a thin shell that feeds this object sensor events, hands its inference requests to
worker threads, and publishes what tick() returns. Keeping the decisions here means every
behaviour the node promises - watchdogs, halts, the e-stop latch, dry run, asynchronous
requests, chunk merging, safety on every step - is exercised by plain unit tests with a fake
clock, and the ROS tests only have to show that the wiring is right.

Threading: inputs arrive from executor threads and replies from inference workers; one lock
serializes all of it. Every method holds the lock only for bookkeeping (microseconds), never for
I/O or inference, so the control timer is never blocked by a slow policy.

Time: all times are node-clock seconds passed in by the caller (ROS time, sim time in
simulation); latencies are measured by the workers on the monotonic clock.
"""
from dataclasses import dataclass, field
import math
import threading
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from rt2_ros.controller.action_queue import ActionQueue, ChunkOutcome, Step
from rt2_ros.controller.images import ImageConversionError
from rt2_ros.controller.inference import InferenceReply
from rt2_ros.controller.mapping import ActionMapper
from rt2_ros.controller.rotation import integrate_orientation
from rt2_ros.controller.safety import (
    CommandRejected, MotionCommand, PoseSample, SafeCommand, SafePoseTarget, SafetyStage,
)
from rt2_ros.controller.state import POLICY_CAUSES, State, StateMachine, Transition
from rt2_ros.controller.stats import RateMeter, RollingSamples
from rt2_ros.policy.base import PolicyInvalidAction, PolicyResult, PolicyTimeout
from rt2_ros.policy.settings import redact

OUTPUT_MODES = ('twist', 'pose')


@dataclass(frozen=True)
class CoreConfig:
    """
    Timing and behaviour settings (the node fills them from its parameters).

    request_threshold: ask for the next decision when the planned motion left is at most this
    fraction of the last chunk's duration (LeRobot's chunk_size_threshold). latency_aware: ask
    earlier when the policy's observed latency (p90) says the queue would otherwise run dry.
    max_in_flight: concurrent requests (pipelining a slow remote policy). policy_watchdog_s: an
    in-flight request older than this halts with policy_timeout even if the backend never
    returns. max_result_age_s: drop results whose image is older than this at arrival (0 = off).
    clock_timeout_s: the node clock standing still this long on the wall clock (sim time paused)
    halts with cause `clock` (the node's wall-clock watchdog applies it; 0 = off).
    """

    control_period_s: float = 0.02
    decision_period_s: float = 1.0 / 3.0
    image_timeout_s: float = 1.0
    policy_watchdog_s: float = 2.5
    clock_timeout_s: float = 0.06
    halt_cycles: int = 5
    auto_resume: bool = True
    request_threshold: float = 0.5
    latency_aware: bool = True
    max_in_flight: int = 1
    retry_interval_s: float = 0.5
    max_result_age_s: float = 0.0
    output_mode: str = 'twist'
    merge: str = 'latest'
    merge_weight: float = 0.7
    align: str = 'auto'

    def __post_init__(self) -> None:
        if self.output_mode not in OUTPUT_MODES:
            raise ValueError(f'output mode {self.output_mode!r} is not one of twist, pose')
        if not self.control_period_s > 0 or not self.decision_period_s > 0:
            raise ValueError('control and decision periods must be positive')
        if self.max_in_flight < 1:
            raise ValueError('max_in_flight must be at least 1')


@dataclass
class RequestTicket:
    """Permission to compute one decision: which episode and which image it is for."""

    ticket: int
    episode: int
    stamp: float
    instruction: str
    sent_at: float
    payload: Any = None


@dataclass
class ReplyOutcome:
    """What the core did with a reply (for logging, ~/action and the annotated image)."""

    accepted: bool
    reason: str = ''
    result: Optional[PolicyResult] = None
    latency_s: float = 0.0
    chunk: Optional[ChunkOutcome] = None
    detail: str = ''


@dataclass
class TickOutput:
    """
    What the node publishes this tick.

    command: a SafeCommand for the twist / cmd_vel topics (None = publish nothing);
    publish_gripper: also send command.gripper; pose_target: pose mode's target;
    preview: what would be commanded (dry run included) for markers; terminated: publish
    ~/terminated with this value (None = nothing new).
    """

    command: Optional[SafeCommand] = None
    publish_gripper: bool = False
    pose_target: Optional[SafePoseTarget] = None
    preview: Optional[SafeCommand] = None
    step: Optional[Step] = None
    terminated: Optional[bool] = None
    transitions: List[Transition] = field(default_factory=list)


@dataclass
class Counters:
    frames_received: int = 0
    frames_used: int = 0
    frames_bad: int = 0
    requests: int = 0
    replies: int = 0
    decisions: int = 0
    results_stale: int = 0
    results_old_episode: int = 0
    policy_failures: Dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    ticks_starved: int = 0
    halts: Dict[str, int] = field(default_factory=dict)


def halt_cause_for(error: Exception) -> str:
    """Map a worker failure to the halt cause it stands for."""
    if isinstance(error, ImageConversionError):
        return 'stale_image'
    if isinstance(error, PolicyTimeout):
        return 'policy_timeout'
    if isinstance(error, PolicyInvalidAction):
        return 'invalid_action'
    return 'policy_error'


class ControllerCore:
    """Decisions, watchdogs, execution and safety of one controller (see module docstring)."""

    def __init__(self, mapper: ActionMapper, safety: SafetyStage, config: CoreConfig) -> None:
        self.mapper = mapper
        self.safety = safety
        self.config = config
        self._lock = threading.RLock()
        self._transitions: List[Transition] = []
        self.machine = StateMachine(config.auto_resume, self._transitions.append)
        self.queue = ActionQueue(config.decision_period_s, config.merge, config.merge_weight,
                                 config.align)
        self.counters = Counters()
        self.latency = RollingSamples(200)
        self.decision_rate = RateMeter(10.0)
        self.tick_intervals = RollingSamples(500)
        self.enabled = False
        self._image_stamp: Optional[float] = None
        self._image_arrival: Optional[float] = -math.inf
        self._image_payload: Any = None
        self._last_requested_stamp = -math.inf
        self._pose: Optional[PoseSample] = None
        self._ticket_seq = 0
        self._in_flight: Dict[int, RequestTicket] = {}
        self._abandoned: set = set()
        self._last_request_at = -math.inf
        self._latency_p90: Optional[float] = None
        self._last_failure_at = -math.inf
        self._actuating = False
        self._stop_left = 0
        self._halting_left = 0
        self._last_tick: Optional[float] = None
        self._stalled_at: Optional[float] = None
        self._last_step_id: Optional[Tuple[int, int]] = None
        self._last_gripper: Optional[float] = None
        self._pose_target: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._terminated_event: Optional[bool] = None
        self.last_preview: Optional[SafeCommand] = None
        self.last_result: Optional[PolicyResult] = None
        self.last_step: Optional[Step] = None

    # -- configuration -----------------------------------------------------------------------
    def set_auto_resume(self, value: bool) -> None:
        with self._lock:
            self.machine.auto_resume = bool(value)

    def update_config(self, config: CoreConfig) -> None:
        """Apply live settings (watchdogs, thresholds, merge rule); periods need a reconfigure."""
        with self._lock:
            self.config = config
            self.machine.auto_resume = config.auto_resume
            self.queue.merge = config.merge
            self.queue.weight = config.merge_weight
            self.queue.align = config.align

    # -- inputs ------------------------------------------------------------------------------
    def on_image(self, stamp: float, now: float, payload: Any = None) -> None:
        """Record a frame's camera stamp; payload (the message) rides along to the request."""
        with self._lock:
            self.counters.frames_received += 1
            self._image_stamp = stamp
            # Before the first /clock message a sim-time clock reads 0: the arrival time is
            # unknown then (taking it as 0 would make the camera look silent for decades).
            self._image_arrival = now if now > 0.0 else None
            self._image_payload = payload

    def _image_problem(self, now: float) -> str:
        """
        Say why the newest image may not be acted on ('' when it is fresh).

        The stamp must lie within image_timeout_s of the clock on *both* sides: a camera whose
        clock runs far ahead would otherwise look fresh for as long as it is ahead, blinding the
        watchdog (and a decision on such a frame would block every later, correctly stamped
        one). Arrival time bounds the rest: a camera that stops is stale after image_timeout_s
        whatever its stamps said.
        """
        if self._image_stamp is None:
            return 'no image received'
        timeout = self.config.image_timeout_s
        age = now - self._image_stamp
        if age > timeout:
            return f'image age {age:.3f} s > {timeout:.3f} s'
        if -age > timeout:
            return (f'image stamp {-age:.3f} s ahead of the clock > {timeout:.3f} s '
                    '(camera clock wrong?)')
        silence = 0.0 if self._image_arrival is None else now - self._image_arrival
        if silence > timeout:
            return f'no image for {silence:.3f} s > {timeout:.3f} s'
        return ''

    def image_age(self, now: float) -> Optional[float]:
        with self._lock:
            return None if self._image_stamp is None else now - self._image_stamp

    def on_pose(self, pose: PoseSample) -> None:
        with self._lock:
            self._pose = pose

    @property
    def pose(self) -> Optional[PoseSample]:
        return self._pose

    def on_instruction(self, text: str, now: float) -> bool:
        """Start a new episode at once (or clear the task on an empty string)."""
        with self._lock:
            was_moving = self.machine.running
            self.queue.clear()
            self._pose_target = None
            self._last_step_id = None
            started = self.machine.on_instruction(text)
            if started:
                self._terminated_event = False
            elif was_moving and not self.machine.running:
                self._begin_stop()
            return started

    def on_estop(self, pressed: bool, now: float) -> Optional[SafeCommand]:
        """E-stop input; returns a stop command to publish immediately when it just latched."""
        with self._lock:
            latched = self.machine.estop(pressed)
            if not latched:
                return None
            self._count_halt('estop')
            self.queue.clear()
            immediate = self._actuating
            self._begin_stop()
            if immediate:
                return self.safety.stop_command()
            return None

    def shutdown_stop(self, now: float) -> TickOutput:
        """Stop for process exit: what to send now if the actuators were being driven."""
        with self._lock:
            moving = self._actuating
            self.enabled = False
            self._begin_stop()
            out = TickOutput()
            if moving:
                self._stop_left = max(self._stop_left, 1)
                self._stop_tick(now, out)
            return out

    def set_enabled(self, enabled: bool) -> None:
        """Dry run (False) or actuating (True); disabling while moving sends the stop cycles."""
        with self._lock:
            if self.enabled and not enabled:
                self._begin_stop()
            self.enabled = bool(enabled)

    def reset(self, now: float) -> Tuple[bool, str]:
        with self._lock:
            ok, message = self.machine.reset()
            if ok:
                self.queue.clear()
                self._pose_target = None
                self._last_step_id = None
                if self.machine.running:
                    self._terminated_event = False
            return ok, message

    def activate(self, now: float) -> None:
        with self._lock:
            self.machine.activate()

    def deactivate(self, now: float) -> None:
        with self._lock:
            was = self.machine.state
            self.machine.deactivate()
            if self.machine.state != was:
                self._count_halt('deactivated')
            self.queue.drop_pending()
            self._begin_stop()

    # -- requests and replies ----------------------------------------------------------------
    def _want_request(self, now: float) -> bool:
        machine = self.machine
        if not machine.active:
            return False
        if not machine.running and machine.stopped_for_fault and machine.cause in POLICY_CAUSES \
                and machine.can_resume():
            if now - self._last_failure_at < self.config.retry_interval_s:
                return False
        elif not machine.running:
            return False
        if self._image_problem(now):
            return False
        if self._image_stamp <= self._last_requested_stamp:
            return False  # never send the same frame twice
        in_flight = len(self._in_flight)
        if in_flight >= self.config.max_in_flight:
            return False
        if not machine.running:
            return in_flight == 0
        latency = self._latency_p90
        if in_flight:
            spacing = max(self.config.control_period_s,
                          (latency or 0.0) / self.config.max_in_flight)
            if now - self._last_request_at < spacing:
                return False
        if len(self.queue) == 0:
            return True
        threshold_s = self.config.request_threshold * self.queue.planned_horizon_s
        if self.config.latency_aware and latency is not None:
            threshold_s = max(threshold_s, latency + self.config.control_period_s)
        return self.queue.remaining_s(now) <= threshold_s

    def poll_request(self, now: float) -> Optional[RequestTicket]:
        """Return a ticket when a decision should be requested now (the node then submits it)."""
        with self._lock:
            if not self._want_request(now):
                return None
            self._ticket_seq += 1
            ticket = RequestTicket(self._ticket_seq, self.machine.episode, self._image_stamp,
                                   self.machine.instruction, now, self._image_payload)
            self._in_flight[ticket.ticket] = ticket
            self._last_requested_stamp = self._image_stamp
            self._last_request_at = now
            self.counters.requests += 1
            self.counters.frames_used += 1
            return ticket

    def cancel(self, ticket: RequestTicket) -> None:
        """Withdraw a ticket the node could not submit (all workers busy)."""
        with self._lock:
            self._in_flight.pop(ticket.ticket, None)
            self.counters.requests -= 1
            self.counters.frames_used -= 1

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def on_reply(self, reply: InferenceReply, now: float) -> ReplyOutcome:
        """Merge a finished decision, or halt on its failure."""
        request = reply.request
        with self._lock:
            self.counters.replies += 1
            self._in_flight.pop(request.ticket, None)
            if request.ticket in self._abandoned:
                self._abandoned.discard(request.ticket)
                return ReplyOutcome(False, 'abandoned', latency_s=reply.latency_s)
            if request.episode != self.machine.episode:
                self.counters.results_old_episode += 1
                return ReplyOutcome(False, 'old_episode', latency_s=reply.latency_s)
            if reply.error is not None:
                return self._on_failure(reply.error, reply.latency_s, now)
            self.latency.add(reply.latency_s)
            self._latency_p90 = self.latency.percentile(90)  # once per reply, not per tick
            machine = self.machine
            resumable = (machine.stopped_for_fault and machine.cause in POLICY_CAUSES
                         and machine.can_resume() and self._halt_reached_actuators())
            if not (machine.running or resumable):
                return ReplyOutcome(False, f'not running ({machine.state.value})',
                                    reply.result, reply.latency_s)
            age = now - request.stamp
            if self.config.max_result_age_s > 0 and age > self.config.max_result_age_s:
                self.counters.results_stale += 1
                return ReplyOutcome(False, f'too old ({age:.3f} s)', reply.result,
                                    reply.latency_s)
            result = reply.result
            actions = np.asarray(result.actions, dtype=np.float64)
            if actions.ndim != 2 or actions.shape[1] != self.mapper.space.size \
                    or not np.all(np.isfinite(actions)):
                return self._on_failure(PolicyInvalidAction(
                    f'policy returned actions of shape {actions.shape} with non-finite or '
                    f'wrong-width values'), reply.latency_s, now)
            outcome = self.queue.add_chunk(actions, result.terminate, request.stamp, now)
            if not outcome.accepted:
                self.counters.results_stale += 1
                return ReplyOutcome(False, outcome.reason, result, reply.latency_s, outcome)
            if resumable:
                machine.resume()
            self.counters.decisions += 1
            self.decision_rate.mark(now)
            self.last_result = result
            return ReplyOutcome(True, '', result, reply.latency_s, outcome)

    def _on_failure(self, error: Exception, latency: float, now: float) -> ReplyOutcome:
        cause = halt_cause_for(error)
        if isinstance(error, ImageConversionError):
            self.counters.frames_bad += 1
        else:
            key = getattr(error, 'cause', 'policy_error')
            self.counters.policy_failures[key] = self.counters.policy_failures.get(key, 0) + 1
        self._last_failure_at = now
        detail = redact(f'{type(error).__name__}: {error}')  # servers may echo credentials
        self._halt(cause, detail)
        return ReplyOutcome(False, cause, latency_s=latency, detail=detail)

    # -- halting -----------------------------------------------------------------------------
    def _count_halt(self, cause: str) -> None:
        self.counters.halts[cause] = self.counters.halts.get(cause, 0) + 1

    @property
    def stop_pending(self) -> bool:
        """Whether stop commands of the stop sequence remain to be sent."""
        return self._stop_left > 0

    def _begin_stop(self) -> None:
        """Start (or keep) the stop sequence: zero commands for halt_cycles, then silence."""
        if self._actuating:
            self._stop_left = max(self._stop_left, self.config.halt_cycles)
        self._halting_left = max(self._halting_left, self.config.halt_cycles)
        self._actuating = False
        self._last_gripper = None

    def _halt_reached_actuators(self) -> bool:
        """
        Whether the current fault halt has had at least one control tick of its stop sequence.

        With requests pipelined, a good reply can arrive milliseconds after a failed one, before
        any tick; resuming on it would make the halt invisible at the arm (no zero command at
        all). A fault halt always shows: the reply is refused until one stop tick has run.
        """
        return self.machine.state == State.HALTED or \
            self._halting_left < self.config.halt_cycles

    def _halt(self, cause: str, detail: str) -> None:
        if self.machine.halt(cause, detail):
            self._count_halt(cause)
            self.queue.drop_pending()
            self._pose_target = None
            self._last_step_id = None
            self._begin_stop()

    def _watchdogs(self, now: float) -> None:
        machine = self.machine
        if not (machine.running or machine.stopped_for_fault) or not machine.active:
            return
        config = self.config
        for ticket in list(self._in_flight.values()):
            if now - ticket.sent_at > config.policy_watchdog_s:
                del self._in_flight[ticket.ticket]
                self._abandoned.add(ticket.ticket)
                self.counters.policy_failures['watchdog'] = \
                    self.counters.policy_failures.get('watchdog', 0) + 1
                self._last_failure_at = now
                self._halt('policy_timeout',
                           f'no answer from the policy for {now - ticket.sent_at:.2f} s')
        problem = self._image_problem(now)
        if problem and machine.running:
            self._halt('stale_image', problem)
        elif not problem and machine.state == State.HALTED and machine.cause == 'stale_image':
            machine.resume()
        if machine.state == State.HALTED and machine.cause == 'clock' and \
                (self._stalled_at is None or now > self._stalled_at):
            self._stalled_at = None
            machine.resume()

    # -- the clock ---------------------------------------------------------------------------
    def clock_stalled(self, now: float, stalled_for: float) -> TickOutput:
        """
        Halt because the node clock stands still while the wall clock goes on (sim time paused).

        The node's wall-clock watchdog calls this instead of tick(): the control timer runs on
        the node clock and does not fire while it stands still, so without this the last
        (moving) command would be the last word. The stop sequence is paced by the watchdog.
        Motion resumes (auto_resume) once the clock moves again and a new decision arrives.
        """
        with self._lock:
            self._stalled_at = now
            self._halt('clock', f'node clock stood still for {stalled_for:.3f} s of wall time '
                       '(sim time paused?)')
            out = TickOutput()
            self._stop_tick(now, out)
            out.transitions, self._transitions[:] = list(self._transitions), []
            return out

    def _clock_jumped_back(self, now: float) -> None:
        """
        Start over on a new timeline: the node clock went backwards (a sim or bag restarted).

        Planned step times, the newest requested frame and the stale-result watermark belong
        to the old timeline and would block every new frame until the clock caught up again,
        and replies in flight answer frames of the old one: all forgotten, and the arm halts
        until a decision on a new frame arrives.
        """
        jump = self._last_tick - now
        self._halt('clock', f'node clock jumped back {jump:.3f} s')
        self.queue.clear()
        self._last_requested_stamp = -math.inf
        self._abandoned.update(self._in_flight)
        self._in_flight.clear()
        self._image_stamp = None
        self._image_arrival = -math.inf
        self._stalled_at = None

    # -- the control tick --------------------------------------------------------------------
    def tick(self, now: float) -> TickOutput:
        """One control period: watchdogs, then execute the plan through the safety stage."""
        with self._lock:
            self.counters.ticks += 1
            if self._last_tick is not None:
                if now < self._last_tick:
                    self._clock_jumped_back(now)
                else:
                    self.tick_intervals.add(now - self._last_tick)
            self._last_tick = now
            self._watchdogs(now)
            out = TickOutput()
            if self.machine.running:
                self._run_tick(now, out)
            else:
                self._stop_tick(now, out)
            out.terminated, self._terminated_event = self._terminated_event, None
            out.transitions, self._transitions[:] = list(self._transitions), []
            return out

    def _stop_tick(self, now: float, out: TickOutput) -> None:
        self.last_preview = None
        if self._stop_left > 0:
            self._stop_left -= 1
            out.command = self.safety.stop_command()
            if self.config.output_mode == 'pose':
                if self.safety.pose_is_fresh(self._pose, now):
                    try:
                        out.pose_target = self.safety.check_pose_target(
                            self._pose.position, self._pose.orientation, now, self._pose)
                    except CommandRejected:
                        out.pose_target = None
        if self._halting_left > 0:
            self._halting_left -= 1
            if self._halting_left == 0:
                self.machine.halting_done()

    def _run_tick(self, now: float, out: TickOutput) -> None:
        step = self.queue.advance(now)
        if step is not None and step.terminate:
            self.queue.clear()
            self.machine.terminate()
            self._terminated_event = True
            self._begin_stop()
            self._stop_tick(now, out)
            return
        period = self.config.control_period_s
        parts = [(s.values, w) for s, w in self.queue.segments(now, now + period)
                 if not s.terminate]
        if step is None:
            self.counters.ticks_starved += 1
        proposal = self.mapper.blend(parts) if parts else MotionCommand()
        try:
            command = self.safety.check(proposal, now, self._pose)
        except CommandRejected as exc:
            self.counters.policy_failures['non_finite_command'] = \
                self.counters.policy_failures.get('non_finite_command', 0) + 1
            self._halt('invalid_action', str(exc))
            self._stop_tick(now, out)
            return
        out.step = step
        out.preview = command
        self.last_preview = command
        self.last_step = step
        step_id = None if step is None else (step.chunk, step.index)
        new_step = step_id is not None and step_id != self._last_step_id
        self._last_step_id = step_id
        if not self.enabled:
            return
        if self.config.output_mode == 'pose':
            out.pose_target = self._pose_tick(command, now, new_step)
            if out.pose_target is None:
                return
        out.command = command
        self._actuating = True
        gripper = command.gripper
        if gripper is not None and (new_step or self._last_gripper is None
                                    or abs(gripper - self._last_gripper) > 1e-9):
            out.publish_gripper = True
            self._last_gripper = gripper

    def _pose_tick(self, command: SafeCommand, now: float,
                   new_step: bool) -> Optional[SafePoseTarget]:
        pose = self._pose
        if not self.safety.pose_is_fresh(pose, now):
            self.safety.count('no_pose')
            return None
        if self._pose_target is None or new_step:
            self._pose_target = (np.asarray(pose.position, dtype=np.float64).copy(),
                                 np.asarray(pose.orientation, dtype=np.float64).copy())
        position, orientation = self._pose_target
        position = position + command.linear * self.config.control_period_s
        orientation = integrate_orientation(orientation, command.angular,
                                            self.config.control_period_s)
        try:
            target = self.safety.check_pose_target(position, orientation, now, pose)
        except CommandRejected as exc:
            self._halt('invalid_action', str(exc))
            return None
        self._pose_target = (target.position, target.orientation)
        return target

    # -- reporting ---------------------------------------------------------------------------
    def snapshot(self, now: float) -> Dict[str, object]:
        """Everything diagnostics, markers and the annotated image show, as plain values."""
        with self._lock:
            p50, p95 = self.latency.percentiles(50, 95)
            jitter = self.tick_intervals.percentiles(50, 99)
            machine = self.machine
            return {
                'state': machine.state.value,
                'cause': machine.cause,
                'detail': machine.detail,
                'episode': machine.episode,
                'instruction': machine.instruction,
                'enabled': self.enabled,
                'active': machine.active,
                'estop_pressed': machine.estop_pressed,
                'decision_rate_hz': self.decision_rate.rate(now),
                'latency_p50_s': p50,
                'latency_p95_s': p95,
                'tick_interval_p50_s': jitter[0],
                'tick_interval_p99_s': jitter[1],
                'image_age_s': None if self._image_stamp is None else now - self._image_stamp,
                'queue_steps': len(self.queue),
                'queue_remaining_s': self.queue.remaining_s(now),
                'in_flight': len(self._in_flight),
                'counters': self.counters,
                'queue_counters': self.queue.counters,
                'interventions': self.safety.counts(),
                'preview': self.last_preview,
                'result': self.last_result,
                'step': self.last_step,
                'pose': self._pose,
            }

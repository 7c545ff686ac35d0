"""
The action queue: decisions (single steps or chunks) laid out on the control clock.

Why a queue and not "the latest action": a VLA answers in 0.1-1 s while the arm wants a command
every 10-20 ms. Each action step is a displacement over one decision period T, so it is executed
as the constant velocity delta / T for exactly T seconds of the control clock (never applied in
one jump, never repeated). Steps carry their own start times; the active step is never cut short,
so motion is continuous while the next decision is computed in the background.

When a new decision arrives while older steps are still queued, the two overlap. Each future slot
is merged per step with a selectable rule - `latest` (the newest decision wins), `average` (mean
of every decision that covered the slot, ACT-style temporal ensembling) or `weighted`
(w * new + (1 - w) * old, LeRobot's default with w = 0.7). Where the new chunk is placed depends
on `align`: `arrival` puts its first step in the first free slot (right for single-step RT-2 /
OpenVLA policies, whose step is "the next T seconds"); `observation` places step j at
observation time + j T and drops the steps whose time has already gone (right for time-indexed
openpi chunks). `auto` picks arrival for horizon 1 and observation for longer chunks.

A result whose observation is not newer than the newest one already merged is stale (it was
overtaken, e.g. by a request sent later that came back first) and is dropped.
"""
from collections import deque
from dataclasses import dataclass, field
import math
from typing import Deque, List, Optional, Sequence, Tuple

import numpy as np

MERGE_RULES = ('latest', 'average', 'weighted')
ALIGNMENTS = ('auto', 'arrival', 'observation')


@dataclass
class Step:
    """One action step: values in the action space's units, executed over [start, start + T)."""

    values: np.ndarray
    terminate: bool
    obs_stamp: float
    chunk: int
    index: int
    start: float = math.nan
    merged: int = 1


@dataclass
class ChunkOutcome:
    """What add_chunk did with a decision; reason is '' when accepted."""

    accepted: bool
    reason: str = ''
    merged: int = 0
    appended: int = 0
    skipped: int = 0


@dataclass
class QueueCounters:
    chunks_accepted: int = 0
    chunks_stale: int = 0
    steps_executed: int = 0
    steps_merged: int = 0
    steps_skipped: int = 0


@dataclass
class _Plan:
    active: Optional[Step] = None
    pending: Deque[Step] = field(default_factory=deque)


class ActionQueue:
    """Single-threaded; the controller core serializes access."""

    def __init__(self, period_s: float, merge: str = 'latest', weight: float = 0.7,
                 align: str = 'auto') -> None:
        if not period_s > 0.0:
            raise ValueError(f'decision period must be positive, got {period_s}')
        if merge not in MERGE_RULES:
            raise ValueError(f'merge rule {merge!r} is not one of {", ".join(MERGE_RULES)}')
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f'merge weight must be in [0, 1], got {weight}')
        if align not in ALIGNMENTS:
            raise ValueError(f'alignment {align!r} is not one of {", ".join(ALIGNMENTS)}')
        self.period = float(period_s)
        self.merge = merge
        self.weight = float(weight)
        self.align = align
        self.counters = QueueCounters()
        self._plan = _Plan()
        self._chunk_seq = 0
        self._last_obs_stamp = -math.inf
        self._last_horizon = 1

    # -- state -------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every queued step and the stale-result watermark (a new episode)."""
        self._plan = _Plan()
        self._last_obs_stamp = -math.inf

    def drop_pending(self) -> None:
        """Forget queued steps (a halt) but keep the watermark so late results stay stale."""
        self._plan = _Plan()

    @property
    def active(self) -> Optional[Step]:
        return self._plan.active

    @property
    def last_obs_stamp(self) -> float:
        return self._last_obs_stamp

    def __len__(self) -> int:
        return (self._plan.active is not None) + len(self._plan.pending)

    def schedule(self) -> List[Tuple[float, Step]]:
        """(start time, step) of the active and every pending step, in order."""
        plan = self._plan
        if plan.active is None:
            return []
        out = [(plan.active.start, plan.active)]
        for k, step in enumerate(plan.pending, start=1):
            out.append((plan.active.start + k * self.period, step))
        return out

    def remaining_s(self, now: float) -> float:
        """Seconds of planned motion left from now."""
        plan = self._plan
        if plan.active is None:
            return 0.0
        left = plan.active.start + self.period - now
        return max(0.0, left) + len(plan.pending) * self.period

    @property
    def planned_horizon_s(self) -> float:
        """Duration of the last accepted chunk (one period for single-step policies)."""
        return self._last_horizon * self.period

    def remaining_fraction(self, now: float) -> float:
        """Planned time left over the length of the last accepted chunk (LeRobot's ratio)."""
        return self.remaining_s(now) / (self._last_horizon * self.period)

    # -- time --------------------------------------------------------------------------------
    def advance(self, now: float) -> Optional[Step]:
        """Retire finished steps; return the step executing at now (None when starved)."""
        plan = self._plan
        while plan.active is not None and plan.active.start + self.period <= now:
            finished = plan.active
            self.counters.steps_executed += 1
            if plan.pending:
                nxt = plan.pending.popleft()
                nxt.start = finished.start + self.period
                plan.active = nxt
            else:
                plan.active = None
        return plan.active

    def segments(self, t0: float, t1: float) -> List[Tuple[Step, float]]:
        """
        Return the steps overlapping [t0, t1) and the fraction of the interval each covers.

        The fractions sum to less than 1 when the plan runs out inside the interval (the rest is
        standing still). The caller turns each step into a velocity and mixes them, so the
        displacement commanded over a control tick matches the plan exactly even where a step
        boundary falls between two ticks.
        """
        if t1 <= t0:
            return []
        out = []
        span = t1 - t0
        for start, step in self.schedule():
            end = start + self.period
            overlap = min(end, t1) - max(start, t0)
            if overlap > 0.0:
                out.append((step, overlap / span))
            if end >= t1:
                break
        return out

    # -- decisions ---------------------------------------------------------------------------
    def add_chunk(self, actions: np.ndarray, terminate: Optional[Sequence[bool]],
                  obs_stamp: float, now: float) -> ChunkOutcome:
        """Merge a decision of shape (horizon, dims) observed at obs_stamp, arriving at now."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim == 1:
            actions = actions[None, :]
        horizon = actions.shape[0]
        if horizon == 0:
            return ChunkOutcome(False, 'empty')
        if obs_stamp <= self._last_obs_stamp:
            self.counters.chunks_stale += 1
            return ChunkOutcome(False, 'stale')
        flags = list(terminate) if terminate is not None else [False] * horizon
        plan = self._plan
        self.advance(now)
        starved = plan.active is None
        slot0 = now if starved else plan.active.start + self.period
        align = self.align
        if align == 'auto':
            align = 'arrival' if horizon == 1 else 'observation'
        first = 0
        offset = 0
        if align == 'observation':
            # Slot of step j: round((obs + j T - slot0) / T); negative = its time has gone.
            shift = int(round((obs_stamp - slot0) / self.period))
            first = max(0, -shift)
            offset = min(max(0, shift), len(plan.pending))
        if first >= horizon:
            self.counters.chunks_stale += 1
            self.counters.steps_skipped += horizon
            return ChunkOutcome(False, 'elapsed', skipped=horizon)
        self._chunk_seq += 1
        self._last_obs_stamp = obs_stamp
        self._last_horizon = horizon
        self.counters.chunks_accepted += 1
        self.counters.steps_skipped += first
        merged = appended = 0
        pending = list(plan.pending)
        for j in range(first, horizon):
            slot = offset + (j - first)
            new = Step(actions[j].copy(), bool(flags[j]), obs_stamp, self._chunk_seq, j)
            if slot < len(pending):
                pending[slot] = self._merge(pending[slot], new)
                merged += 1
            else:
                pending.append(new)
                appended += 1
        plan.pending = deque(pending)
        if starved:
            step = plan.pending.popleft()
            step.start = now
            plan.active = step
        self.counters.steps_merged += merged
        return ChunkOutcome(True, '', merged=merged, appended=appended, skipped=first)

    def _merge(self, old: Step, new: Step) -> Step:
        if self.merge == 'latest':
            return new
        if self.merge == 'average':
            values = (old.values * old.merged + new.values) / (old.merged + 1)
        else:
            values = self.weight * new.values + (1.0 - self.weight) * old.values
        return Step(values, new.terminate, new.obs_stamp, new.chunk, new.index,
                    merged=old.merged + 1)

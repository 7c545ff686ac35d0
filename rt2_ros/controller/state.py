"""
The controller's state machine (pure; the node and the core drive it, nothing here moves).

States: idle (no instruction), running (an episode is executing), halting (stopping: zero
commands are being sent), halted (stopped on a fault, holding), terminated (the policy ended the
episode), estopped (latched emergency stop).

Recovery rules, chosen so that nothing resumes on its own that an operator would not expect:
- e-stop latches: it ends only when the e-stop is released *and* ~/reset is called.
- stale image and policy faults (error, timeout, invalid action) resume by themselves when the
  cause clears - a fresh image again, a valid decision again - unless auto_resume is off, in
  which case ~/reset is needed. Motion after a resume always comes from a new decision made on a
  fresh image.
- deactivation halts; activation resumes the episode.
- terminate waits for a new instruction; a new instruction starts a new episode at once from any
  state but estopped (where it is kept for after the reset).
"""
from dataclasses import dataclass
from enum import Enum
from typing import Callable, List, Optional, Tuple


class State(str, Enum):
    IDLE = 'idle'
    RUNNING = 'running'
    HALTING = 'halting'
    HALTED = 'halted'
    TERMINATED = 'terminated'
    ESTOPPED = 'estopped'


HALT_CAUSES = (
    'stale_image', 'policy_error', 'policy_timeout', 'invalid_action', 'estop', 'deactivated',
)
POLICY_CAUSES = ('policy_error', 'policy_timeout', 'invalid_action')


@dataclass(frozen=True)
class Transition:
    """One state change, for logs, the ~/state topic and tests."""

    previous: State
    state: State
    cause: str
    detail: str
    episode: int


class StateMachine:
    """Not thread-safe on its own; the controller core holds a lock around it."""

    def __init__(self, auto_resume: bool = True,
                 listener: Optional[Callable[[Transition], None]] = None) -> None:
        self.auto_resume = auto_resume
        self.state = State.IDLE
        self.cause = ''
        self.detail = ''
        self.episode = 0
        self.instruction = ''
        self.estop_pressed = False
        self.active = False
        self.history: List[Transition] = []
        self._listener = listener

    def _go(self, state: State, cause: str = '', detail: str = '') -> None:
        previous = self.state
        if previous == state and cause == self.cause:
            return
        self.state, self.cause, self.detail = state, cause, detail
        transition = Transition(previous, state, cause, detail, self.episode)
        self.history.append(transition)
        del self.history[:-100]
        if self._listener is not None:
            self._listener(transition)

    @property
    def running(self) -> bool:
        return self.state == State.RUNNING

    @property
    def stopped_for_fault(self) -> bool:
        return self.state in (State.HALTING, State.HALTED)

    def _start_episode(self) -> None:
        self.episode += 1
        if not self.active:
            self._go(State.HALTED, 'deactivated', 'node is not active')
        else:
            self._go(State.RUNNING, '', f'episode {self.episode}')

    # -- events ------------------------------------------------------------------------------
    def on_instruction(self, text: str) -> bool:
        """Take a new instruction; return True when it started a new episode now."""
        text = text.strip()
        self.instruction = text
        if self.state == State.ESTOPPED:
            return False
        if not text:
            self.episode += 1
            self._go(State.IDLE, 'cleared', 'empty instruction')
            return False
        self._start_episode()
        return self.state == State.RUNNING

    def halt(self, cause: str, detail: str = '') -> bool:
        """Fault halt; return True when this changed the state (first report of a fault)."""
        if cause not in HALT_CAUSES:
            raise ValueError(f'unknown halt cause {cause!r}')
        if self.state in (State.ESTOPPED, State.IDLE, State.TERMINATED):
            return False
        if self.stopped_for_fault and self.cause == cause:
            return False
        if self.stopped_for_fault and self.cause == 'deactivated':
            return False
        self._go(State.HALTING, cause, detail)
        return True

    def halting_done(self) -> None:
        if self.state == State.HALTING:
            self._go(State.HALTED, self.cause, self.detail)

    def terminate(self, detail: str = 'policy ended the episode') -> bool:
        if self.state != State.RUNNING:
            return False
        self._go(State.TERMINATED, 'terminate', detail)
        return True

    def estop(self, pressed: bool) -> bool:
        """E-stop input; return True when it latched now."""
        self.estop_pressed = bool(pressed)
        if pressed and self.state != State.ESTOPPED:
            self._go(State.ESTOPPED, 'estop', 'e-stop pressed')
            return True
        if not pressed and self.state == State.ESTOPPED:
            self.detail = 'e-stop released; call ~/reset to resume'
        return False

    def reset(self) -> Tuple[bool, str]:
        """Operator reset: clear a latch or a halt and restart the episode if there is one."""
        if self.estop_pressed:
            return False, 'e-stop is still engaged; release it first'
        if self.instruction:
            self._start_episode()
            return True, f'episode {self.episode} started: {self.instruction!r}'
        self._go(State.IDLE, 'reset', 'no instruction')
        return True, 'reset; waiting for an instruction'

    def activate(self) -> None:
        self.active = True
        if self.state in (State.HALTING, State.HALTED) and self.cause == 'deactivated':
            if self.instruction:
                self._go(State.RUNNING)
            else:
                self._go(State.IDLE)

    def deactivate(self) -> None:
        self.active = False
        if self.state == State.RUNNING or self.stopped_for_fault:
            self._go(State.HALTING, 'deactivated', 'node deactivated')

    def can_resume(self) -> bool:
        """Whether a fault halt may end by itself (its cause is recoverable, auto_resume on)."""
        return (self.auto_resume and self.stopped_for_fault and self.active
                and self.cause in ('stale_image',) + POLICY_CAUSES)

    def resume(self) -> bool:
        if not self.can_resume():
            return False
        self._go(State.RUNNING, 'resumed', f'recovered from {self.cause}')
        return True

"""
A controller under attack: node, scripted policy server, harness, checks on what the arm got.

FaultRig wraps what test_hostile_node.py, test_hostile_sim_time.py and
scripts/hostile_campaign.py share: recorders for every actuator topic and ~/state, bringing the
node to a moving state, and the two checks every fault must pass -

- check_commands(): every command ever published is finite and within the limits (the count
  of violations must be 0), with a fresh stamp;
- assert_halt(): the node reported `halting:<cause>` and the arm got its last non-zero command
  no later than one control period plus 100 ms after the cause, both measured on arrival in
  this process against the cause's wall time.
"""
import math
import time
from typing import Any, Callable, Dict, List, Optional

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64MultiArray, String
from support.ros_harness import Received
from support.stall_probe import StallProbe


def speed(msg: Any) -> float:
    t = msg.twist.linear
    return math.sqrt(t.x ** 2 + t.y ** 2 + t.z ** 2)


def turn(msg: Any) -> float:
    t = msg.twist.angular
    return math.sqrt(t.x ** 2 + t.y ** 2 + t.z ** 2)


def is_zero(msg: Any) -> bool:
    return speed(msg) == 0.0 and turn(msg) == 0.0


def is_moving(msg: Any) -> bool:
    return speed(msg) > 0.0


def stamp_of(msg: Any) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class FaultRig:
    """The module's server, node and harness plus recorders of everything the arm could get."""

    def __init__(self, server: Any, node: Any, harness: Any, params: Dict[str, Any],
                 move: List[float]) -> None:
        self.server, self.node, self.h = server, node, harness
        self.params = params
        self.move = move  # the default reply while a test wants the arm moving
        self.period = 1.0 / params.get('control_rate_hz', 50.0)
        self.budget = self.period + 0.1  # the halt bound: one control period plus 100 ms
        self.max_linear = params.get('limits.max_linear_speed', 0.1)
        self.max_angular = params.get('limits.max_angular_speed', 0.5)
        self.gripper_range = sorted((params.get('gripper.open_position', 1.0),
                                     params.get('gripper.closed_position', 0.0)))
        self.twists = harness.record('servo/delta_twist_cmds', TwistStamped)
        self.gripper = harness.record('gripper/commands', Float64MultiArray)
        self.state = harness.record_latched('~/state', String)
        self.actions = harness.record('~/action', Float64MultiArray)
        self.diagnostics = harness.record('/diagnostics', DiagnosticArray)
        self.episode = 0
        # how moving() starts the harness camera; None: the test runs its own camera
        self.camera_args: Optional[Dict[str, Any]] = {'rate_hz': 30.0}
        self.stalls = StallProbe().start()  # the machine's own pauses, allowed for in budgets
        # what else a failure message should tell (the sim-time module reports its clock)
        self.describe_inputs: Callable[[], str] = lambda: ''

    def close(self) -> None:
        self.stalls.stop()

    # -- bringing the node to a known state -------------------------------------------------
    def instruct(self, text: Optional[str] = None) -> str:
        self.episode += 1
        text = text or f'pick up the red block ({self.episode})'
        self.h.publish_instruction(text)
        return text

    def moving(self, default_reply: Optional[Dict] = None, timeout: float = 15.0) -> int:
        """Bring the node to: active, released, enabled, camera on, moving; return twist mark."""
        from support.scripted_policy_server import action
        if not self.server.alive():
            self.server.restart()
        self.server.reset()
        self.server.set_default(default_reply or action(self.move))
        if self.camera_args is not None:
            self.h.start_camera(**self.camera_args)
        self.h.publish_estop(False)
        if self.h.lifecycle_state() != 'active':
            assert self.h.lifecycle_transition('activate')
        self.h.call_reset()
        self.instruct()
        assert self.h.call_enable(True).success
        marks = self.marks()
        try:
            self.twists.wait_for(is_moving, since=marks['twists'], timeout=timeout)
        except TimeoutError:
            raise AssertionError(f'the node did not move within {timeout} s of being enabled; '
                                 f'{self.describe_inputs()}{self.explain(marks)}') from None
        return self.twists.mark()

    def marks(self) -> Dict[str, int]:
        return {'twists': self.twists.mark(), 'state': self.state.mark(),
                'actions': self.actions.mark()}

    # -- checks ------------------------------------------------------------------------------
    def wait_halting(self, cause: str, marks: Dict[str, int], timeout: float = 5.0) -> Received:
        """Return the ~/state message that reported the halt (estopped:estop for the e-stop)."""
        label = 'estopped:estop' if cause == 'estop' else f'halting:{cause}'
        return self.state.wait_for(lambda m: m.data == label, since=marks['state'],
                                   timeout=timeout)

    def assert_halt(self, cause: str, cause_wall: float, marks: Dict[str, int],
                    timeout: float = 5.0, label: str = '') -> Dict[str, float]:
        """
        Check the halt for `cause` that happened at cause_wall; return the measured latencies.

        ~/state must say halting:<cause> within the budget; no motion command may arrive later
        than the budget after the cause until the node reports running again; and if the node
        was driving the arm, a zero command must have arrived within the budget.
        """
        halting = self.wait_halting(cause, marks, timeout)
        state_latency = halting.wall - cause_wall
        first_zero = self._first_zero_after(cause_wall - self.period, marks['twists'], timeout)
        # a pause of the whole machine in the window delays the node through no fault of its own
        stall = self.stalls.worst(cause_wall - self.budget, cause_wall + self.budget)
        budget = self.budget + stall
        # watch a little longer: a motion command delivered late must be seen to be counted
        self._observe_until(max(halting.wall, cause_wall + budget) + 0.1)
        resumed = self._resumed_after(halting)
        end = resumed.wall if resumed is not None else math.inf
        late = [item for item in self.twists.items(marks['twists'])
                if cause_wall + budget < item.wall < end and not is_zero(item.msg)]
        stop_latency = (first_zero.wall - cause_wall) if first_zero else math.nan
        context = f'{label or cause}: {self.stalls.describe(stall)}; {self.explain(marks)}'
        assert state_latency <= budget, \
            f'~/state said halting {state_latency * 1000:.1f} ms after the cause; {context}'
        assert not late, f'{len(late)} motion commands after the budget; {context}'
        if self.twists.items(marks['twists']):
            assert first_zero is not None and stop_latency <= budget, \
                f'first zero command {stop_latency * 1000:.1f} ms after the cause; {context}'
        return {'state_ms': state_latency * 1000.0, 'stop_ms': stop_latency * 1000.0}

    def _first_zero_after(self, wall: float, since: int, timeout: float) -> Optional[Received]:
        """Return the first zero command that arrived after wall (None: the arm was not driven)."""
        if not self.twists.items(since):
            return None
        index = since
        deadline = time.monotonic() + timeout
        while True:
            item = self.twists.wait_for(is_zero, since=index,
                                        timeout=max(0.0, deadline - time.monotonic()))
            if item.wall >= wall:
                return item
            index = self.twists.items().index(item) + 1

    def _observe_until(self, wall: float) -> None:
        """Keep recording until the wall clock reaches wall (an observation window)."""
        remaining = wall - time.time()
        if remaining > 0:
            self.twists.quiet_for(remaining)

    def _resumed_after(self, halting: Received) -> Optional[Received]:
        items = self.state.items()
        index = next(k for k, item in enumerate(items) if item is halting)
        return next((item for item in items[index + 1:]
                     if item.msg.data.startswith('running')), None)

    def still_for(self, seconds: float) -> bool:
        """Watch for `seconds`; True when no motion command arrived meanwhile (zeros may)."""
        try:
            self.twists.wait_for(is_moving, since=self.twists.mark(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    def wait_moving(self, timeout: float = 10.0) -> Received:
        return self.twists.wait_for(is_moving, since=self.twists.mark(), timeout=timeout)

    def check_commands(self, since_twists: int = 0, since_gripper: int = 0) -> Dict[str, int]:
        """Count commands beyond the limits (must be 0) among everything received since."""
        twists = self.twists.items(since_twists)
        counts = {'twists': len(twists), 'non_finite': 0, 'linear_beyond': 0,
                  'angular_beyond': 0, 'gripper_beyond': 0, 'gripper': 0,
                  'stamp_older_than_0.1s': 0, 'wrong_frame': 0}
        for item in twists:
            msg = item.msg
            values = [msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
                      msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z]
            if not all(math.isfinite(v) for v in values):
                counts['non_finite'] += 1
                continue
            if speed(msg) > self.max_linear * (1 + 1e-9):
                counts['linear_beyond'] += 1
            if turn(msg) > self.max_angular * (1 + 1e-9):
                counts['angular_beyond'] += 1
            if item.wall - stamp_of(msg) > 0.1:
                counts['stamp_older_than_0.1s'] += 1
            if msg.header.frame_id != self.params.get('output.frame_id', 'base_link'):
                counts['wrong_frame'] += 1
        low, high = self.gripper_range
        for msg in self.gripper.messages(since_gripper):
            counts['gripper'] += 1
            if len(msg.data) != 1 or not math.isfinite(msg.data[0]) or \
                    not low - 1e-12 <= msg.data[0] <= high + 1e-12:
                counts['gripper_beyond'] += 1
        return counts

    def violations(self, counts: Dict[str, int]) -> int:
        return sum(counts[k] for k in ('non_finite', 'linear_beyond', 'angular_beyond',
                                       'gripper_beyond', 'wrong_frame'))

    def halts_by_cause(self, since: int = 0) -> Dict[str, int]:
        halts: Dict[str, int] = {}
        for msg in self.state.messages(since):
            if msg.data.startswith(('halting:', 'estopped:')):
                cause = msg.data.split(':', 1)[1]
                halts[cause] = halts.get(cause, 0) + 1
        return halts

    def explain(self, marks: Dict[str, int]) -> str:
        items = self.twists.items(marks['twists'])
        t0 = items[0].wall if items else 0.0
        speeds = ' '.join(f'{item.wall - t0:.3f}:{speed(item.msg):.3f}' for item in items[-60:])
        states = [(f'{item.wall - t0:.3f}', item.msg.data)
                  for item in self.state.items(marks['state'])][-10:]
        return f'\nspeeds: {speeds}\nstates: {states}\nlog: {self.node.log()[-2500:]}'

    def wait_state(self, predicate: Any, since: int, timeout: float = 5.0) -> Received:
        return self.state.wait_for(predicate, since=since, timeout=timeout)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    """Poll a condition another process decides (no event to wait on); raise on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f'{what} not within {timeout} s')
        time.sleep(0.01)


def last_request_before(server: Any, wall: float, after: float) -> Dict[str, Any]:
    """Return the scripted server's last request in [after, wall): when a fault was served."""
    entries = [e for e in server.requests() if after <= e['time'] < wall]
    assert entries, 'no policy request between the fault and the halt'
    return entries[-1]


def summarize_latencies(samples: List[float]) -> Dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}
    return {'n': len(ordered), 'median_ms': ordered[len(ordered) // 2],
            'max_ms': ordered[-1]}

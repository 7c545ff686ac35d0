"""
rt2_controller on sim time: the simulator pauses, and the simulation restarts (time jumps back).

With use_sim_time the control timer follows /clock, so when a simulator pauses the node's own
loop stops with it - and without a wall-clock watchdog the last command it sent (motion) would
be the last word. Here the test process plays the simulator: it publishes /clock at 100 Hz and
camera frames stamped in sim time (none while paused, as a paused simulator renders nothing),
and checks that the node halts within one control period plus 100 ms of the last clock tick,
then drives again once sim time moves. Every test starts its own node process, so a test that
pauses or rewinds time leaves nothing behind for the next one.
"""
import threading
import time

import pytest
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from support.fault_rig import FaultRig
from support.ros_harness import NodeProcess, RosHarness
from support.scripted_policy_server import ScriptedPolicyServer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MOVE = [1, 0.01, 0.0, 0.0, 0.0, 0.0, 0.02, 1.0]
PARAMS = {
    'use_sim_time': True, 'policy.backend': 'openvla_http', 'policy.timeout_s': 0.5,
    'action_space': 'rt2', 'decision_period_s': 0.2, 'control_rate_hz': 50.0,
    'watchdog.image_timeout_s': 0.3,
    'inference.retry_interval_s': 0.1, 'limits.max_linear_speed': 0.1,
    'viz.annotated_image': False, 'diagnostics.period_s': 0.5,
}


class SimClock:
    """A simulator's clock and camera: /clock at 100 Hz, a frame every third tick."""

    def __init__(self, harness: RosHarness) -> None:
        self.h = harness
        self.publisher = harness.node.create_publisher(Clock, '/clock', QoSProfile(depth=10))
        self._lock = threading.Lock()
        self.sim = time.time()  # starts at the wall clock so stamps can be compared
        self.running = threading.Event()
        self.last_tick_wall = 0.0
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> 'SimClock':
        self.running.set()
        self._thread.start()
        return self

    def _run(self) -> None:
        period, tick = 0.01, 0
        next_wall = time.monotonic()
        while not self._stop.is_set():
            if self.running.is_set():
                with self._lock:
                    self.sim += period
                    now = self.sim
                    msg = Clock()
                    msg.clock = self.h.stamp(now)
                    self.publisher.publish(msg)
                    self.last_tick_wall = time.time()
                    self.ticks += 1
                if tick % 3 == 0:
                    self.h.publish_image(stamp=now)
                tick += 1
            next_wall += period
            self._stop.wait(max(0.0, next_wall - time.monotonic()))

    def pause(self) -> float:
        """Stop sim time; return the wall time of the last clock tick."""
        with self._lock:
            self.running.clear()
            return self.last_tick_wall

    def resume(self) -> None:
        self.running.set()

    def jump(self, seconds: float) -> float:
        """Move sim time by seconds (negative: a restart); return the wall time it happened."""
        with self._lock:
            self.sim += seconds
            return time.time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def describe(self) -> str:
        """Say whether this simulator kept publishing (for a failure message)."""
        ago = time.time() - self.last_tick_wall
        return (f'sim clock: {self.ticks} ticks published, the last {ago:.3f} s ago, '
                f'{"running" if self.running.is_set() else "paused"}, thread '
                f'{"alive" if self._thread.is_alive() else "dead"}; ')


@pytest.fixture
def rig():
    with ScriptedPolicyServer() as server, RosHarness() as h:
        clock = SimClock(h).start()
        params = dict(PARAMS, **{'policy.url': server.url})
        with NodeProcess(params=params) as node:
            node.wait_for_log('active', timeout=60)
            rig = FaultRig(server, node, h, params, MOVE)
            rig.camera_args = None  # frames come from the sim clock
            rig.clock = clock
            rig.describe_inputs = clock.describe
            yield rig
            clock.stop()
            rig.close()
            counts = rig.check_commands()
            assert rig.violations(counts) == 0, counts


def test_sim_time_paused_halts_within_a_period_and_resumes(rig):
    rig.moving()
    marks = rig.marks()
    paused = rig.clock.pause()
    result = rig.assert_halt('clock', paused, marks)
    print(f'sim time paused: ~/state halting {result["state_ms"]:.1f} ms, first zero command '
          f'{result["stop_ms"]:.1f} ms after the last clock tick')
    assert rig.still_for(0.5)
    rig.clock.resume()
    rig.wait_moving()


def test_sim_time_jumping_back_halts_and_drives_on_the_new_timeline(rig):
    rig.moving()
    marks = rig.marks()
    jumped = rig.clock.jump(-60.0)
    result = rig.assert_halt('clock', jumped, marks)
    print(f'sim time jumped back 60 s: ~/state halting {result["state_ms"]:.1f} ms after')
    rig.wait_moving()


def test_held_time_is_no_fault_with_the_watchdog_off(rig):
    """Lockstep harnesses (rt2 bag replay-test) hold sim time during a policy call on purpose."""
    assert rig.h.set_parameters({'watchdog.clock_timeout_s': 0.0})[0].successful
    try:
        rig.moving()
        marks = rig.marks()
        rig.clock.pause()
        with pytest.raises(TimeoutError):
            rig.state.wait_for(lambda m: m.data.startswith('halting'), since=marks['state'],
                               timeout=0.5)
        rig.clock.resume()
        rig.wait_moving()
        assert not [m for m in rig.state.messages(marks['state']) if 'halting' in m.data]
    finally:
        assert rig.h.set_parameters({'watchdog.clock_timeout_s': 0.06})[0].successful

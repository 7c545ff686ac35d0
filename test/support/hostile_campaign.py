"""
A randomized campaign of hostile policy replies through the real rt2_controller node.

The scripted server answers each request with the next reply of a long random list (valid
actions, actions at the bounds, NaN, infinities, huge values, wrong lengths, garbage bytes,
HTTP errors, hangs, ...); the node decides, halts and recovers at full speed; the harness
records every command the arm would have received. The report counts commands beyond the
limits (must be 0) and halts by cause (the node's own counters, from /diagnostics).

Used by test_hostile_node.py (a few hundred replies) and scripts/hostile_campaign.py (10,000+).
"""
from collections import Counter
from dataclasses import dataclass, field
import json
import time
from typing import Any, Dict, List, Sequence

from support.fault_rig import FaultRig, is_moving
from support.hostile_replies import Hostile

# Fast settings: one 20 ms step per decision, retries at once, a 100 Hz camera of small frames,
# so the node asks for a new decision about every control tick.
SPEED_PARAMS = {
    'decision_period_s': 0.02, 'inference.retry_interval_s': 0.0, 'viz.annotated_image': False,
    'viz.rate_hz': 0.0,
}
SPEED_CAMERA = {'rate_hz': 100.0, 'width': 32, 'height': 24}


def configure_for_speed(rig: FaultRig) -> None:
    """Apply SPEED_PARAMS through the lifecycle (non-live ones apply at configure)."""
    results = rig.h.set_parameters(SPEED_PARAMS)
    assert all(r.successful for r in results), [r.reason for r in results]
    if rig.h.lifecycle_state() == 'active':
        assert rig.h.lifecycle_transition('deactivate')
    assert rig.h.lifecycle_transition('cleanup')
    assert rig.h.lifecycle_transition('configure')
    assert rig.h.lifecycle_transition('activate')
    rig.camera_args = dict(SPEED_CAMERA)


def diagnostics_counters(rig: FaultRig, timeout: float = 5.0) -> Dict[str, int]:
    """Return the node's cumulative halt, failure and clamp counters from a fresh /diagnostics."""
    mark = rig.diagnostics.mark()
    mine = rig.h.target  # /diagnostics is global: other nodes on the domain publish there too
    msg = rig.diagnostics.wait_for(lambda m: any(s.hardware_id == mine for s in m.status),
                                   since=mark, timeout=timeout).msg
    status = next(s for s in msg.status if s.hardware_id == mine)
    out = {}
    for kv in status.values:
        if kv.key.startswith(('halts: ', 'policy failures: ', 'safety interventions: ')) or \
                kv.key in ('decisions', 'frames used'):
            out[kv.key] = int(kv.value)
    return out


@dataclass
class CampaignReport:
    replies: int
    seconds: float
    sent_by_kind: Dict[str, int]
    expected_by_cause: Dict[str, int]
    halts: Dict[str, int]
    policy_failures: Dict[str, int]
    interventions: Dict[str, int]
    decisions: int
    commands: Dict[str, int]
    violations: int
    moving_commands: int
    state_halts: Dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)

    def table(self) -> str:
        lines = [f'{self.replies} policy replies (hostile and valid) through rt2_controller in '
                 f'{self.seconds:.1f} s ({self.replies / max(self.seconds, 1e-9):.1f}/s)',
                 f'actuator commands: {self.commands["twists"]} twists '
                 f'({self.moving_commands} moving), {self.commands["gripper"]} gripper; '
                 f'beyond limits or non-finite: {self.violations}',
                 f'accepted decisions: {self.decisions}',
                 'halts by cause (node counters):']
        for cause, count in sorted(self.halts.items()):
            lines.append(f'  {cause:16s} {count:7d}')
        lines.append('policy failures by cause (node counters):')
        for cause, count in sorted(self.policy_failures.items()):
            lines.append(f'  {cause:16s} {count:7d}')
        lines.append('safety interventions (clamps):')
        for cause, count in sorted(self.interventions.items()):
            if count:
                lines.append(f'  {cause:16s} {count:7d}')
        lines.append('replies sent by kind:')
        for kind, count in sorted(self.sent_by_kind.items(), key=lambda kv: -kv[1]):
            lines.append(f'  {kind:24s} {count:7d}')
        return '\n'.join(lines)


def _delta(after: Dict[str, int], before: Dict[str, int], prefix: str) -> Dict[str, int]:
    return {k[len(prefix):]: after[k] - before.get(k, 0) for k in after
            if k.startswith(prefix) and after[k] - before.get(k, 0)}


def run_campaign(rig: FaultRig, replies: Sequence[Hostile], chunk: int = 500,
                 progress: Any = None) -> CampaignReport:
    """Serve replies to the running node, in order; return what reached the actuators."""
    rig.moving()
    since_twists, since_gripper = rig.twists.mark(), rig.gripper.mark()
    since_state = rig.state.mark()
    before = diagnostics_counters(rig)
    started = time.monotonic()
    replies = list(replies)
    served = 0  # requests the server answered (a restart in progress() resets its log)
    for offset in range(0, len(replies), chunk):
        batch = replies[offset:offset + chunk]
        start_requests = rig.server.counts()['requests']
        rig.server.push(*[r.reply for r in batch])
        _wait_served(rig, len(batch))
        served += rig.server.counts()['requests'] - start_requests
        if progress is not None:
            progress(offset + len(batch), time.monotonic() - started)
    seconds = time.monotonic() - started
    rig.wait_moving(timeout=15)  # valid default replies again: the node recovers
    after = diagnostics_counters(rig)
    commands = rig.check_commands(since_twists, since_gripper)
    expected: Counter = Counter(r.expected or 'none (valid)' for r in replies)
    return CampaignReport(
        replies=served, seconds=seconds,
        sent_by_kind=dict(Counter(r.name for r in replies)),
        expected_by_cause=dict(expected),
        halts=_delta(after, before, 'halts: '),
        policy_failures=_delta(after, before, 'policy failures: '),
        interventions=_delta(after, before, 'safety interventions: '),
        decisions=after.get('decisions', 0) - before.get('decisions', 0),
        commands=commands, violations=rig.violations(commands),
        moving_commands=sum(is_moving(m) for m in rig.twists.messages(since_twists)),
        state_halts=rig.halts_by_cause(since_state))


def _wait_served(rig: FaultRig, count: int) -> None:
    """Wait until the queued replies were all taken (a stall longer than 30 s fails)."""
    last, last_change = None, time.monotonic()
    while True:
        queued = rig.server.counts()['act']
        if queued == 0:
            return
        if queued != last:
            last, last_change = queued, time.monotonic()
        if time.monotonic() - last_change > 30:
            raise TimeoutError(f'the node stopped asking: {queued} of {count} replies left\n'
                               f'{rig.node.log()[-3000:]}')
        if not rig.node.alive():
            raise RuntimeError(f'the node died:\n{rig.node.log()[-3000:]}')
        time.sleep(0.2)  # polling another process's queue


def all_names(replies: List[Hostile]) -> List[str]:
    return sorted({r.name for r in replies})

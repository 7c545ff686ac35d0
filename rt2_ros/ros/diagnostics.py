"""
The controller's /diagnostics message: one DiagnosticStatus with what an operator checks first.

diagnostic_updater has no PyPI wheel, so the message is built here.

Level: ERROR when e-stopped or halted on a fault, WARN while halting, terminated or idle, and
OK when running. Values are strings, as the message requires; durations in milliseconds.
"""
from typing import Any, Dict, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


def _ms(value: Optional[float]) -> str:
    return '-' if value is None else f'{value * 1000.0:.1f}'


def build_diagnostics(snapshot: Dict[str, Any], name: str, hardware_id: str,
                      stamp) -> DiagnosticArray:
    state = snapshot['state']
    cause = snapshot['cause']
    if state in ('estopped', 'halted', 'halting') and cause != 'deactivated':
        level = DiagnosticStatus.ERROR if state != 'halting' else DiagnosticStatus.WARN
    elif state == 'running':
        level = DiagnosticStatus.OK
    else:
        level = DiagnosticStatus.WARN
    message = state + (f' ({cause}: {snapshot["detail"]})' if cause else '')
    counters = snapshot['counters']
    queue = snapshot['queue_counters']
    values = {
        'state': state,
        'cause': cause,
        'enabled': str(snapshot['enabled']).lower(),
        'episode': str(snapshot['episode']),
        'instruction': snapshot['instruction'],
        'decision rate (Hz)': f'{snapshot["decision_rate_hz"]:.2f}',
        'policy latency p50 (ms)': _ms(snapshot['latency_p50_s']),
        'policy latency p95 (ms)': _ms(snapshot['latency_p95_s']),
        'image age (ms)': _ms(snapshot['image_age_s']),
        'control interval p50 (ms)': _ms(snapshot['tick_interval_p50_s']),
        'control interval p99 (ms)': _ms(snapshot['tick_interval_p99_s']),
        'frames received': str(counters.frames_received),
        'frames used': str(counters.frames_used),
        'frames dropped (not sent to the policy)': str(
            max(0, counters.frames_received - counters.frames_used)),
        'frames rejected (bad image)': str(counters.frames_bad),
        'decisions': str(counters.decisions),
        'results dropped (stale)': str(counters.results_stale + queue.chunks_stale),
        'results dropped (old episode)': str(counters.results_old_episode),
        'steps executed': str(queue.steps_executed),
        'steps merged': str(queue.steps_merged),
        'steps skipped (elapsed)': str(queue.steps_skipped),
        'control ticks starved': str(counters.ticks_starved),
        'requests in flight': str(snapshot['in_flight']),
        'queue remaining (ms)': _ms(snapshot['queue_remaining_s']),
    }
    for cause_name, count in sorted(counters.halts.items()):
        values[f'halts: {cause_name}'] = str(count)
    for cause_name, count in sorted(counters.policy_failures.items()):
        values[f'policy failures: {cause_name}'] = str(count)
    for cause_name, count in snapshot['interventions'].items():
        values[f'safety interventions: {cause_name}'] = str(count)
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array

"""
A short soak of the closed loop (rt2_sim + rt2_controller + `rt2 serve` with a tiny model).

scripts/soak.py is the tool (run it for 30 minutes before a release); this runs it for 20 s and
checks what a leak or a stall would break: after the warm-up no process grows by more than a
few MB, thread counts stay constant, and every sampling window has decisions at close to the
controller's nominal rate (3 Hz for the rt2 space).
"""
from cli_helpers import load_script
import pytest
from tiny_models import tiny_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _soak_module():
    return load_script('soak')


def test_short_soak_has_bounded_memory_constant_threads_and_a_steady_decision_rate():
    soak = _soak_module()
    report = soak.run_soak(duration=20.0, interval=2.0, warmup=6.0,
                           model=str(tiny_checkpoint('rt2')), image_size=64)
    soak.print_summary(report)
    summary = report.summary
    assert not summary['traceback_in_logs']
    for name in ('rt2 serve', 'rt2_sim', 'rt2_controller'):
        process = summary[name]
        assert process['anon_growth_mb'] < 15.0, (name, process)
        assert process['threads_max'] - process['threads_min'] <= 2, (name, process)
    steady = [s for s in report.samples if s.t >= report.warmup_s]
    assert len(steady) >= 5
    rates = [s.rate_hz for s in steady]
    assert min(rates) >= 1.0, rates  # nominal 3 Hz; a stall or a halt loop shows here
    assert summary['rate_hz']['median'] >= 2.0, rates
    assert not summary['halts'] or set(summary['halts']) <= {'stale_image'}, summary['halts']

#!/usr/bin/env python3
"""
Soak the closed loop: rt2_sim + rt2_controller + `rt2 serve`, for as long as you like.

Starts the policy server (the bundled demo model when it is installed, else a tiny random
checkpoint built with `rt2 make-tiny-vla`), the simulator and the controller (enabled, the arm
moves), restarts an episode with a new seed whenever the policy terminates one, and samples
every few seconds: resident memory (VmRSS) and thread count of each process, the controller's
decision rate (~/action messages per second in the window), its halts by cause and the load
average. Prints a table as it goes and a summary at the end; writes everything as JSON.

    ROS_DOMAIN_ID=42 .venv/bin/python scripts/soak.py --duration 1800 --out soak.json
    ROS_DOMAIN_ID=42 .venv/bin/python scripts/soak.py --duration 60 --model /path/to/ckpt

Growth is measured on each process's anonymous memory (RssAnon: heap and stacks; VmRSS is
reported too) from the end of the warm-up (first-use allocations: model, buffers, DDS
discovery) to the end of the run. test_soak.py runs it for ~25 s and bounds growth and the
decision rate.
"""
import argparse
from dataclasses import asdict, dataclass, field
import functools
import json
import os
from pathlib import Path
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'test'))
NAMESPACE = '/rt2_soak'  # its own, so tests on the same ROS domain do not mix with it


def proc_status(pid: int) -> Dict[str, float]:
    """
    Return memory and threads of a process from /proc (NaN when it is gone).

    rss_mb is VmRSS; anon_mb is RssAnon, the process's own heap and stacks - the figure a leak
    grows. VmRSS also counts shared-library pages, which the kernel drops and reloads as other
    processes need memory (a 25 MB step down in every process on a busy machine), so growth is
    judged on anon_mb.
    """
    out = {'rss_mb': float('nan'), 'anon_mb': float('nan'), 'threads': float('nan')}
    fields = {'VmRSS:': 'rss_mb', 'RssAnon:': 'anon_mb'}
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            key = line.split(':', 1)[0] + ':'
            if key in fields:
                out[fields[key]] = int(line.split()[1]) / 1024.0
            elif key == 'Threads:':
                out['threads'] = int(line.split()[1])
    except OSError:
        pass
    return out


@dataclass
class Sample:
    t: float
    load1: float
    rss_mb: Dict[str, float]
    anon_mb: Dict[str, float]
    threads: Dict[str, float]
    decisions: int
    rate_hz: float
    episodes: int
    halts: Dict[str, int]
    state: str


@dataclass
class SoakReport:
    duration_s: float
    warmup_s: float
    model: str
    samples: List[Sample] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _make_model(folder: Path) -> Path:
    from rt2_ros.models.bundled import bundled_model_path
    bundled = bundled_model_path()
    if bundled is not None:
        return bundled
    out = folder / 'tiny-rt2'
    subprocess.run([str(Path(sys.executable).parent / 'rt2'), 'make-tiny-vla', str(out),
                    '--space', 'rt2', '--seed', '0'], check=True, capture_output=True,
                   timeout=600)
    return out


class DecisionCounter:
    """Arrival times of ~/action messages (the controller's decisions), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.times: List[float] = []

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.times.append(time.monotonic())

    def count_since(self, t: float) -> int:
        with self._lock:
            return sum(1 for x in self.times if x >= t)

    def total(self) -> int:
        with self._lock:
            return len(self.times)


def _halts(diagnostics: Any) -> Dict[str, int]:
    for msg in reversed(diagnostics.messages()[-20:]):
        for status in msg.status:
            if status.hardware_id == f'{NAMESPACE}/rt2_controller':
                return {kv.key[len('halts: '):]: int(kv.value) for kv in status.values
                        if kv.key.startswith('halts: ')}
    return {}


def run_soak(duration: float, interval: float = 5.0, warmup: float = 20.0,
             model: Optional[str] = None, image_size: int = 96,
             printer: Any = functools.partial(print, flush=True)) -> SoakReport:
    """Run the closed loop for duration seconds; return the samples and a summary."""
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile
    from rt2_ros.sim.episode_client_node import SimEpisodeClient
    from rt2_ros.sim.limits import SIM_PROPRIOCEPTION_PARAMS
    from std_msgs.msg import Bool, Float64MultiArray, String
    from support.ros_harness import NodeProcess, RosHarness
    from support.scripted_policy_server import wait_for_health, wait_for_url

    folder = Path(tempfile.mkdtemp(prefix='rt2-soak-'))
    model_dir = Path(model) if model else _make_model(folder)
    report = SoakReport(duration_s=duration, warmup_s=warmup, model=str(model_dir))
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / 'rt2'), 'serve', '--model', str(model_dir),
         '--port', '0', '--device', 'cpu'], stdout=subprocess.PIPE,
        stderr=open(folder / 'serve.log', 'w'), text=True)
    sim_params = {'image_width': image_size, 'image_height': image_size,
                  'camera_rate_hz': 15.0, 'split': 'train', 'seed': 0}
    sim = NodeProcess('rt2_sim', namespace=NAMESPACE, params=sim_params,
                      node_name='rt2_sim').start()  # starts while the model loads
    try:
        url = wait_for_url(serve, timeout=300, prefix='rt2 serve: listening on ')
        wait_for_health(url, timeout=60)
        controller_params = {
            'policy.backend': 'openvla_http', 'policy.url': url, 'policy.timeout_s': 5.0,
            'action_space': 'rt2', 'enabled_on_start': True, 'watchdog.image_timeout_s': 1.0,
            'viz.annotated_image': False, **SIM_PROPRIOCEPTION_PARAMS,
        }
        with NodeProcess(namespace=NAMESPACE, params=controller_params) as controller, \
                RosHarness(namespace=NAMESPACE, harness_name='rt2_soak') as h:
            controller.wait_for_log('active', timeout=120)
            counter = DecisionCounter()
            h.node.create_subscription(Float64MultiArray, h.topic('~/action'), counter,
                                       QoSProfile(depth=50))
            terminated = h.record_latched('~/terminated', Bool)
            state = h.record_latched('~/state', String)
            diagnostics = h.record('/diagnostics', DiagnosticArray)
            episodes = SimEpisodeClient(h.node, f'{NAMESPACE}/rt2_sim')
            if not episodes.wait_ready(60):
                raise RuntimeError('rt2_sim services did not come up')
            seed = [0]
            episodes.start(seed=seed[0])
            processes = {'rt2 serve': serve.pid, 'rt2_sim': sim.process.pid,
                         'rt2_controller': controller.process.pid}
            started = time.monotonic()
            next_sample = started + interval
            window_start = started
            printer(f'{"t (s)":>7} {"load":>5} ' + ' '.join(
                f'{name + " anon/RSS MB":>24} {"thr":>4}' for name in processes) +
                f' {"decisions/s":>11} {"episodes":>8}  state')
            seen_terminations = terminated.mark()
            while time.monotonic() - started < duration:
                if any(m.data for m in terminated.messages(seen_terminations)):
                    seen_terminations = terminated.mark()
                    seed[0] += 1
                    episodes.start(seed=seed[0])
                if time.monotonic() >= next_sample:
                    now = time.monotonic()
                    decisions = counter.count_since(window_start)
                    status = {n: proc_status(pid) for n, pid in processes.items()}
                    sample = Sample(
                        t=round(now - started, 2), load1=os.getloadavg()[0],
                        rss_mb={n: s['rss_mb'] for n, s in status.items()},
                        anon_mb={n: s['anon_mb'] for n, s in status.items()},
                        threads={n: s['threads'] for n, s in status.items()},
                        decisions=decisions, rate_hz=decisions / (now - window_start),
                        episodes=seed[0] + 1, halts=_halts(diagnostics),
                        state=state.last().data if state.last() else '')
                    report.samples.append(sample)
                    printer(f'{sample.t:7.0f} {sample.load1:5.2f} ' + ' '.join(
                        f'{sample.anon_mb[n]:15.1f}/{sample.rss_mb[n]:8.1f} '
                        f'{sample.threads[n]:4.0f}' for n in processes) +
                        f' {sample.rate_hz:11.2f} {sample.episodes:8d}  {sample.state}')
                    window_start = now
                    next_sample += interval
                    for name, pid in processes.items():
                        if not Path(f'/proc/{pid}').exists():
                            raise RuntimeError(f'{name} exited during the soak')
                try:  # until the policy ends an episode, or the next check
                    terminated.wait_for(lambda m: m.data, since=seen_terminations, timeout=0.1)
                except TimeoutError:
                    pass
            report.summary = summarize(report, list(processes), counter.total())
            report.summary['traceback_in_logs'] = any(
                'Traceback' in p.log() for p in (sim, controller))
    finally:
        sim.__exit__(None, None, None)
        serve.terminate()
        try:
            serve.wait(15)
        except subprocess.TimeoutExpired:
            serve.kill()
        serve.stdout.close()
    return report


def summarize(report: SoakReport, names: List[str], total_decisions: int) -> Dict[str, Any]:
    """Growth after warm-up per process, thread counts and decision-rate spread."""
    steady = [s for s in report.samples if s.t >= report.warmup_s] or report.samples[-1:]
    out: Dict[str, Any] = {'decisions': total_decisions, 'samples': len(report.samples)}
    for name in names:
        first, last = steady[0].anon_mb[name], steady[-1].anon_mb[name]
        span_h = max(steady[-1].t - steady[0].t, 1e-9) / 3600.0
        out[name] = {
            'anon_start_mb': first, 'anon_end_mb': last, 'anon_growth_mb': last - first,
            'anon_growth_mb_per_hour': (last - first) / span_h if len(steady) > 1 else 0.0,
            'anon_max_mb': max(s.anon_mb[name] for s in report.samples),
            'rss_start_mb': steady[0].rss_mb[name], 'rss_end_mb': steady[-1].rss_mb[name],
            'rss_max_mb': max(s.rss_mb[name] for s in report.samples),
            'threads_min': min(s.threads[name] for s in steady),
            'threads_max': max(s.threads[name] for s in steady),
        }
    rates = [s.rate_hz for s in steady]
    out['rate_hz'] = {'median': statistics.median(rates), 'min': min(rates), 'max': max(rates)}
    out['load1'] = {'min': min(s.load1 for s in report.samples),
                    'max': max(s.load1 for s in report.samples),
                    'mean': statistics.fmean(s.load1 for s in report.samples)}
    out['halts'] = report.samples[-1].halts
    out['episodes'] = report.samples[-1].episodes
    return out


def print_summary(report: SoakReport, printer: Any = print) -> None:
    s = report.summary
    printer(f'\nsoak {report.duration_s:.0f} s (growth measured after {report.warmup_s:.0f} s '
            f'of warm-up), model {report.model}')
    printer(f'{"process":16} {"anon start":>10} {"anon end":>9} {"growth":>8} {"MB/h":>8} '
            f'{"RSS start":>10} {"RSS end":>8} {"threads":>9}  (MB)')
    for name in ('rt2 serve', 'rt2_sim', 'rt2_controller'):
        p = s[name]
        printer(f'{name:16} {p["anon_start_mb"]:10.1f} {p["anon_end_mb"]:9.1f} '
                f'{p["anon_growth_mb"]:+8.1f} {p["anon_growth_mb_per_hour"]:+8.1f} '
                f'{p["rss_start_mb"]:10.1f} {p["rss_end_mb"]:8.1f} '
                f'{p["threads_min"]:4.0f}-{p["threads_max"]:<4.0f}')
    r = s['rate_hz']
    printer(f'decision rate: median {r["median"]:.2f} Hz, min {r["min"]:.2f}, max {r["max"]:.2f}'
            f' ({s["decisions"]} decisions, {s["episodes"]} episodes); halts {s["halts"]}')
    printer(f'load average (1 min): mean {s["load1"]["mean"]:.2f}, min {s["load1"]["min"]:.2f}, '
            f'max {s["load1"]["max"]:.2f} on {os.cpu_count()} CPUs')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--duration', type=float, default=60.0, help='seconds (default 60)')
    parser.add_argument('--interval', type=float, default=0.0,
                        help='seconds between samples (default: duration / 30, 2..60)')
    parser.add_argument('--warmup', type=float, default=-1.0,
                        help='seconds before growth is measured (default: 10 %%, 10..120)')
    parser.add_argument('--model', help='checkpoint directory (default: bundled or tiny)')
    parser.add_argument('--image-size', type=int, default=96, help='sim camera size (square)')
    parser.add_argument('--out', type=Path, help='write the JSON report here')
    args = parser.parse_args(argv)
    interval = args.interval or min(60.0, max(2.0, args.duration / 30.0))
    warmup = args.warmup if args.warmup >= 0 else min(120.0, max(10.0, args.duration / 10.0))
    report = run_soak(args.duration, interval, warmup, args.model, args.image_size)
    print_summary(report)
    if args.out:
        args.out.write_text(report.to_json())
        print(f'report written to {args.out}')
    return 1 if report.summary.get('traceback_in_logs') else 0


if __name__ == '__main__':
    sys.exit(main())

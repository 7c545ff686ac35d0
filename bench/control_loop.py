"""
The real rt2_controller under a 300 ms policy: control-timer jitter, image-to-command latency.

Run: .venv/bin/python -m bench.control_loop [--seconds 10]
     [--settings auto:50 auto:0 multi_threaded:0]   (executor:realtime_priority, side by side)

A last scenario runs the node with the local backend on a tiny random checkpoint instead (about
25 ms of CPU per decision, in the node's own process): jitter only, as nothing traces frames.

Set-up: the scripted policy server of the tests (test/support, OpenVLA /act over loopback)
answers every request after exactly 300 ms - asyncio sleeps, so the "model" costs no CPU and
the figures show the node, not two processes fighting over the machine's cores - with an
action whose dx encodes which camera frame it saw (the frame number is written into the first
pixel; the server's `echo` reply reads it back). rt2_controller runs as its own process with
its default settings (50 Hz control, rt2 space at 3 Hz, asynchronous latency-aware requests,
annotated images on), enabled; this process publishes a 30 Hz camera and records every
TwistStamped on servo/delta_twist_cmds with its arrival time.

- Jitter: |interval - 20 ms| between consecutive commands, from the commands' header stamps
  (when the node's timer ran) and from their arrival here (adds DDS and this process). Beside
  it, measured at the same time, a bare Python loop sleeping to 20 ms deadlines in its own
  process: the scheduling jitter this machine gives any process at that moment.
- Image to command: for each decision, the first command that moves at its frame's velocity,
  header stamp minus the frame's camera stamp, minus the model's 300 ms. Split into the time to
  the request reaching the server (frame age when the node asked + conversion + encoding +
  transfer + the server's decoding) and from the answer to that first command (reply transfer,
  merge, and waiting for the running step to end: each decision is one step of 1/3 s, executed
  after the one before it).
"""
import argparse
import json
import os
import random
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

from bench.common import camera_like, percentile, print_table, summary_ms, test_support_path

MODEL_S = 0.3
DEFAULT_SETTING = {'executor': 'auto', 'realtime_priority': 50}  # the node's defaults
# what `make bench` runs side by side: the defaults; the default executor without the real-time
# priority (a machine without CAP_SYS_NICE or an rtprio limit); the node as it was before the
# executor parameter (multi-threaded, normal priority)
BENCH_SETTINGS = ('auto:50', 'auto:0', 'multi_threaded:0')
RATE_HZ = 50.0
PERIOD_S = 1.0 / RATE_HZ
DECISION_S = 1.0 / 3.0
SCALE = 4e-5  # dx per frame number: tags 0..1023 stay inside rt2's +-0.05 m
BASE_ACTION = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def _environment() -> None:
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(101, 200)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if test_support_path() not in sys.path:
        sys.path.insert(0, test_support_path())


class TaggedCamera:
    """Publish camera frames at 30 Hz whose top-left pixels carry the frame number."""

    def __init__(self, harness: Any, width: int, height: int, rate_hz: float = 30.0,
                 compressed: bool = False) -> None:
        self.harness = harness
        self.width, self.height = width, height
        self.compressed = compressed
        self.period = 1.0 / rate_hz
        self.base = camera_like(height, width)
        self.stamps: Dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        import cv2
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image
        from support.scripted_policy_server import tag_image
        if self.compressed:
            publisher = self.harness.publisher('camera/image_raw/compressed', CompressedImage,
                                               qos_profile_sensor_data)
        else:
            publisher = self.harness.publisher('camera/image_raw', Image,
                                               qos_profile_sensor_data)
        frame = 0
        next_time = time.monotonic()
        while not self._stop.is_set():
            frame += 1
            pixels = self.base.copy()
            tag_image(pixels, frame % 1024)  # survives the node's resize and JPEG
            stamp = time.time()
            if self.compressed:
                ok, data = cv2.imencode('.jpg', pixels[:, :, ::-1],
                                        [cv2.IMWRITE_JPEG_QUALITY, 90])
                msg = CompressedImage(format='jpeg', data=data.tobytes())
            else:
                msg = Image(height=self.height, width=self.width, encoding='rgb8',
                            is_bigendian=0, step=self.width * 3, data=pixels.tobytes())
            msg.header.stamp = self.harness.stamp(stamp)
            msg.header.frame_id = 'camera'
            self.stamps[frame % 1024] = stamp
            publisher.publish(msg)
            next_time += self.period
            self._stop.wait(max(0.0, next_time - time.monotonic()))


BASELINE = """
import json, sys, time
period, count = float(sys.argv[1]), int(sys.argv[2])
start = time.monotonic()
wakes = []
for k in range(1, count + 1):
    delay = start + k * period - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    wakes.append(time.monotonic())
print(json.dumps(wakes))
"""


def start_baseline(seconds: float) -> Any:
    """
    Start a bare Python loop sleeping to 20 ms deadlines in its own process (no ROS, no work).

    Run during the measurement, its jitter is what this machine's scheduler gives any process
    at that moment: the floor under the node's figure.
    """
    import subprocess
    return subprocess.Popen([sys.executable, '-c', BASELINE, str(PERIOD_S),
                             str(int(seconds / PERIOD_S))], stdout=subprocess.PIPE, text=True)


def _stamp(msg: Any) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _node_intervals(msg: Any) -> Dict[str, float]:
    """
    Read the node's control-interval percentiles (its last 500 ticks) and policy latency.

    The stamp figures come from the commands this process received: a command lost between the
    processes (a 640x480 raw camera stream flooded Fast DDS on a 2-core VM) shows up there as
    a long interval. The node's figure counts every tick it ran, lost or not.
    """
    values = {kv.key: kv.value for kv in msg.status[0].values}
    return {'p50': float(values['control interval p50 (ms)']),
            'p99': float(values['control interval p99 (ms)']),
            'policy_latency_p50': float(values['policy latency p50 (ms)'])}


def jitter(times: List[float]) -> Dict[str, float]:
    intervals = [b - a for a, b in zip(times, times[1:])]
    out = summary_ms([abs(i - PERIOD_S) for i in intervals])
    out['mean_interval_ms'] = round(1000 * sum(intervals) / max(1, len(intervals)), 3)
    return out


def latencies(twists: List[Any], frames: Dict[int, float],
              requests: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Match each decision (a frame the server saw) to the first command moving at its speed."""
    commands = [(_stamp(item.msg), item.msg.twist.linear.x) for item in twists]
    tags = [(r['image_tag'], r['time']) for r in requests if r.get('image_tag')]
    total, to_server, to_command = [], [], []
    start = 0
    for (previous, _), (tag, received) in zip(tags, tags[1:]):
        if tag <= previous or tag not in frames:
            continue
        old_speed = SCALE * previous / DECISION_S
        for index in range(start, len(commands)):
            stamp, speed = commands[index]
            if stamp > received and speed > old_speed + 1e-7:
                total.append(stamp - frames[tag] - MODEL_S)
                to_server.append(received - frames[tag])
                to_command.append(stamp - received - MODEL_S)
                start = index
                break
    return {'camera_to_command_minus_model': summary_ms(total),
            'camera_to_server_p50_ms': round(1000 * percentile(to_server, 50), 3),
            'answer_to_command_p50_ms': round(1000 * percentile(to_command, 50), 3),
            'decisions': len(total)}


def run_scenario(width: int, height: int, seconds: float, resize: Optional[int] = None,
                 compressed: bool = False, local_model: Optional[str] = None,
                 setting: Dict[str, Any] = DEFAULT_SETTING) -> Dict[str, Any]:
    """
    Run the node with the scripted 300 ms server, or with local_model in its own process.

    With the local backend there is no server to trace frames through: only the jitter (and
    the CPU-bound model now shares the node's process and its GIL).
    """
    _environment()
    from contextlib import ExitStack
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TwistStamped
    from support.ros_harness import NodeProcess, RosHarness
    from support.scripted_policy_server import echo, hang, ScriptedPolicyServer
    params = {'policy.backend': 'openvla_http', 'policy.timeout_s': 2.0,
              'action_space': 'rt2', 'control_rate_hz': RATE_HZ, 'enabled_on_start': True,
              'limits.max_linear_speed': 1.0,
              'control.realtime_priority': setting['realtime_priority'],
              'executor': setting['executor']}
    if resize:
        params['image.width'] = params['image.height'] = resize
    if compressed:
        params['image.compressed'] = True
    namespace = f'/bench{os.getpid()}'
    with ExitStack() as stack:
        server = None
        if local_model:
            params.update({'policy.backend': 'local', 'policy.model_path': local_model,
                           'policy.device': 'cpu'})
        else:
            server = stack.enter_context(ScriptedPolicyServer())
            server.set_default(hang(MODEL_S, then=echo(BASE_ACTION, 1, SCALE)))
            params['policy.url'] = server.url
        with NodeProcess(params=params, namespace=namespace) as node, \
                RosHarness(namespace=namespace) as harness:
            node.wait_for_log('active', timeout=60)
            twists = harness.record('servo/delta_twist_cmds', TwistStamped)
            diagnostics = harness.record('/diagnostics', DiagnosticArray)
            camera = TaggedCamera(harness, width, height, compressed=compressed)
            camera.start()
            try:
                harness.publish_instruction('push the red block to the left')
                first = twists.wait_for(lambda m: local_model or m.twist.linear.x > 0,
                                        timeout=60)
                mark = twists.mark()
                baseline = start_baseline(seconds)
                time.sleep(seconds)  # measuring a steady state over a fixed time
                items = twists.items(mark)
                inside = _node_intervals(diagnostics.wait_for(since=diagnostics.mark(),
                                                              timeout=5).msg)
                wakes = json.loads(baseline.communicate(timeout=60)[0])
            finally:
                camera.stop()
            requests = server.requests() if server else []
            del first
    out = {'camera': f'{width}x{height}' + (' JPEG' if compressed else ' raw')
           + (f' -> {resize}x{resize}' if resize else '')
           + (', local tiny model in the node' if local_model else ''),
           'realtime_priority': setting['realtime_priority'],
           'executor': setting['executor'],
           'commands': len(items),
           'node_interval_ms': inside,
           'jitter_stamp': jitter([_stamp(i.msg) for i in items]),
           'jitter_arrival': jitter([i.wall for i in items]),
           'jitter_bare_loop': jitter(wakes),
           'stopped_ticks': None if local_model else
           sum(1 for i in items if i.msg.twist.linear.x <= 0)}
    out.update(latencies(items, camera.stamps, requests))
    return out


def run_local(seconds: float, setting: Dict[str, Any] = DEFAULT_SETTING) -> Dict[str, Any]:
    """Run the node with the local backend on a tiny random checkpoint (~25 ms CPU each)."""
    import tempfile
    from rt2_ros.models.tiny_vla import save_tiny_vla, spec_from_args
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, 'tiny-rt2')
        save_tiny_vla(path, spec_from_args('rt2', 0))
        return run_scenario(224, 224, seconds, local_model=path, setting=setting)


def parse_setting(text: str) -> Dict[str, Any]:
    """Read EXECUTOR:PRIORITY (e.g. auto:50) into the node parameters it stands for."""
    from rt2_ros.ros.executors import EXECUTOR_KINDS
    executor, _, priority = text.partition(':')
    if executor not in EXECUTOR_KINDS or not priority.isdigit() or int(priority) > 99:
        raise argparse.ArgumentTypeError(
            f'{text!r}: expected EXECUTOR:PRIORITY with EXECUTOR one of '
            f'{", ".join(EXECUTOR_KINDS)} and PRIORITY 0..99')
    return {'executor': executor, 'realtime_priority': int(priority)}


def run(seconds: float = 10.0, quick: bool = False,
        settings: Sequence[Dict[str, Any]] = (DEFAULT_SETTING,)) -> Dict[str, Any]:
    """
    Run every scenario once per node setting (executor, control-thread priority), back to back.

    Each scenario's settings run in an order that rotates from one scenario to the next, so no
    setting always gets the machine's quieter or busier moment.
    """
    if quick:
        return {'scenarios': [run_scenario(224, 224, 1.5, setting=settings[0])]}
    scenarios = [lambda v: run_scenario(224, 224, seconds, setting=v),
                 lambda v: run_scenario(640, 480, seconds, resize=224, setting=v),
                 lambda v: run_scenario(640, 480, seconds, resize=224, compressed=True,
                                        setting=v),
                 lambda v: run_local(seconds, setting=v)]
    results = []
    count = len(settings)
    for index, scenario in enumerate(scenarios):
        order = [(index + k) % count for k in range(count)]
        done = {k: scenario(settings[k]) for k in order}
        results.extend(done[k] for k in range(count))
    return {'scenarios': results}


def scenario_setting(scenario: Dict[str, Any]) -> Dict[str, Any]:
    """Return the node setting a scenario ran with (results from before had neither key)."""
    return {'executor': scenario.get('executor', 'multi_threaded'),
            'realtime_priority': scenario.get('realtime_priority', 0)}


def print_results(results: Dict[str, Any]) -> None:
    header = ['camera', 'executor', 'prio', 'commands', 'jitter p50', 'jitter p99', 'arrival p99',
              'node interval p99', 'bare loop p99', 'stopped', 'img->cmd -model p50', 'p99',
              'to server', 'answer->cmd']
    rows = []
    for s in results['scenarios']:
        latency = s['camera_to_command_minus_model']
        setting = scenario_setting(s)
        rows.append([s['camera'], setting['executor'], setting['realtime_priority'],
                     s['commands'],
                     s['jitter_stamp']['p50_ms'],
                     s['jitter_stamp']['p99_ms'], s['jitter_arrival']['p99_ms'],
                     s['node_interval_ms']['p99'],
                     s['jitter_bare_loop']['p99_ms'], s['stopped_ticks'], latency['p50_ms'],
                     latency['p99_ms'], s['camera_to_server_p50_ms'],
                     s['answer_to_command_p50_ms']])
    print_table('rt2_controller at 50 Hz, 300 ms remote policy (last row: local tiny model in '
                'the node) - ms; jitter = |interval - 20 ms|', header, rows)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--json', action='store_true')
    parser.add_argument('--settings', nargs='+', type=parse_setting, metavar='EXECUTOR:PRIORITY',
                        default=[DEFAULT_SETTING],
                        help='node settings to run every scenario with, side by side: the '
                             'parameters executor and control.realtime_priority (default '
                             'auto:50, the node defaults)')
    args = parser.parse_args(argv)
    results = run(args.seconds, args.quick, args.settings)
    print(json.dumps(results) if args.json else '', end='')
    if not args.json:
        print_results(results)
    return 0


if __name__ == '__main__':
    sys.exit(main())

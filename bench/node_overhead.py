"""
Node overhead per decision, the model excluded: what rt2_controller adds to a policy's latency.

Run: .venv/bin/python -m bench.node_overhead [--decisions 200]

Each decision takes the node's own path with the node's own parts: a real sensor_msgs Image
(or CompressedImage) is handed to ControllerCore, the request goes to an InferencePool worker,
which builds the Observation (rt2_ros.ros.convert.build_observation: zero-copy view, conversion,
resize when asked), calls the policy, and the reply is merged by the core and turned into the
~/action message. The clock runs from the hand-off to the worker until the merged decision is
ready; the model's own time is subtracted:

- in-process, no model: a Policy that answers a fixed action at once (the node's pure cost);
- local tiny model: the local backend on a tiny random checkpoint, minus its reported model
  time (generation); the processor (tokenizer, image normalization) counts as overhead;
- remote over loopback: the openai (JPEG data URL), openpi (msgpack-numpy) and openvla_http
  (json_numpy) clients against bench.instant_server, which has no model and answers a canned
  reply as soon as a request's body has arrived, so the whole round trip - encoding, the
  HTTP/websocket exchange over loopback, reply decoding and validation - counts as overhead.
  One reference row uses the scripted policy server of the tests (FastAPI/uvicorn) instead, to
  show what a Python server framework adds on its side.

`worker CPU` is the inference worker thread's own CPU time for the decision (model excluded):
unlike wall time it hardly depends on what else the machine runs, and it leaves out the
server's side of the round trip.

Frames are camera-like (smooth + noise) so JPEG sizes are realistic; no resize is configured,
so the policy gets the frame at its camera size. `jpeg passthrough` feeds a CompressedImage
(the camera's own JPEG) to the openai client, which sends it without decoding-and-encoding.
"""
import argparse
import math
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from bench.common import camera_like, emit, print_table, summary_ms, test_support_path
from bench.instant_server import InstantServer
import numpy as np
from rt2_ros.actions import load_action_space
from rt2_ros.policy.base import Observation, Policy, PolicyResult, PolicyTiming
from rt2_ros.policy.openvla_http import check_image

SIZES = ((224, 224), (640, 480))
T = 1.0 / 3.0


class InstantPolicy(Policy):
    """A policy with no model: answers a fixed, valid rt2 action at once."""

    name = 'instant'

    def __init__(self) -> None:
        super().__init__(load_action_space('rt2'))
        self.values = np.array([[1.0, 0.01, 0, 0, 0, 0, 0, 1.0]])

    def infer(self, observation: Observation) -> PolicyResult:
        start = time.perf_counter()
        check_image(observation.image)  # what every backend does first
        return PolicyResult(self.values.copy(), self.space.names, 'instant',
                            PolicyTiming(time.perf_counter() - start, 0.0), [False])


def image_message(width: int, height: int, compressed: bool = False) -> Any:
    """Return a real sensor_msgs Image (rgb8) or CompressedImage (JPEG q90) of a camera frame."""
    import cv2
    from sensor_msgs.msg import CompressedImage, Image
    rgb = camera_like(height, width)
    if compressed:
        ok, data = cv2.imencode('.jpg', rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        return CompressedImage(format='jpeg', data=data.tobytes())
    return Image(height=height, width=width, encoding='rgb8', is_bigendian=0, step=width * 3,
                 data=rgb.tobytes())


class DecisionPath:
    """ControllerCore + one InferencePool worker wired as the node wires them."""

    def __init__(self, policy: Any, model_time: Callable[[Any], float]) -> None:
        from rt2_ros.actions import load_action_space
        from rt2_ros.controller.core import ControllerCore, CoreConfig
        from rt2_ros.controller.inference import InferencePool
        from rt2_ros.controller.mapping import ActionMapper, GripperMap
        from rt2_ros.controller.safety import SafetyLimits, SafetyStage
        space = load_action_space('rt2')
        config = CoreConfig(control_period_s=0.02, decision_period_s=T, image_timeout_s=60.0,
                            policy_watchdog_s=60.0)
        self.core = ControllerCore(ActionMapper(space, T, GripperMap(1.0, 0.0)),
                                   SafetyStage(SafetyLimits()), config)
        self.core.activate(time.monotonic())
        self.core.on_instruction('pick up the red block', time.monotonic())
        self.core.set_enabled(True)
        self.model_time = model_time
        self._done = threading.Event()  # set when the worker is free again, after the reply
        self.pool = InferencePool([policy], self._on_reply, self._done.set)
        self._finished = 0.0
        self._merge_s = 0.0
        self._last: Any = None

    def _on_reply(self, reply: Any) -> None:
        from rt2_ros.ros.convert import action_array
        start = time.perf_counter()
        outcome = self.core.on_reply(reply, time.monotonic())
        if outcome.accepted:
            action_array(outcome.result.actions, outcome.result.names)
        self._finished = time.perf_counter()
        self._cpu_end = time.thread_time()
        self._merge_s = self._finished - start
        self._last = (reply, outcome)

    def decide(self, message: Any, size: Optional[tuple] = None) -> Dict[str, float]:
        """Run one decision; return its timings in seconds (overhead = total - model)."""
        from rt2_ros.controller.inference import InferenceRequest
        from rt2_ros.ros.convert import build_observation
        core = self.core
        core.queue.clear()  # as if the last step were running out: a request is due
        now = time.monotonic()
        core.on_image(now, now, message)
        self._done.clear()
        start = time.perf_counter()
        ticket = core.poll_request(now)
        assert ticket is not None, 'the core did not ask for a decision'
        built = {}

        def build():
            built['cpu'] = time.thread_time()  # the worker's own CPU clock, from here to merged
            t0 = time.perf_counter()
            observation = build_observation(ticket.payload, size, ticket.instruction,
                                            ticket.stamp)
            built['s'] = time.perf_counter() - t0
            return observation

        request = InferenceRequest(ticket.ticket, ticket.episode, ticket.stamp, build,
                                   ticket.sent_at)
        assert self.pool.submit(request)
        if not self._done.wait(60.0):
            raise TimeoutError('no reply within 60 s')
        reply, outcome = self._last
        if reply.error is not None or not outcome.accepted:
            raise RuntimeError(f'decision failed: {reply.error or outcome.reason}')
        total = self._finished - start
        timing = reply.result.timing
        model = self.model_time(reply.result)
        return {'total': total, 'model': model, 'overhead': total - model,
                'convert': built.get('s', 0.0), 'encode': timing.encode_s or 0.0,
                'call': timing.request_s - (timing.encode_s or 0.0) - model,
                'merge': self._merge_s,
                # a model's threads are not the worker's: its CPU cannot be told apart here
                'cpu': self._cpu_end - built['cpu'] if model == 0.0 else math.nan}

    def close(self) -> None:
        self.pool.close()


def measure(policy: Any, message: Any, decisions: int, warmup: int = 5,
            model_time: Callable[[Any], float] = lambda result: 0.0) -> Dict[str, Any]:
    path = DecisionPath(policy, model_time)
    try:
        for _ in range(warmup):
            path.decide(message)
        runs = [path.decide(message) for _ in range(decisions)]
    finally:
        path.close()
    out = summary_ms([r['overhead'] for r in runs])
    for part in ('convert', 'encode', 'call', 'merge', 'model', 'cpu'):
        out[f'{part}_p50_ms'] = summary_ms([r[part] for r in runs])['p50_ms']
    return out


def tick_cost(ticks: int) -> Dict[str, Any]:
    """Cost of one control tick while a step executes (the core's share of every 20 ms)."""
    path = DecisionPath(InstantPolicy(), lambda result: 0.0)
    try:
        path.decide(image_message(224, 224))
        core = path.core
        samples = []
        for _ in range(ticks):
            now = time.monotonic()
            start = time.perf_counter()
            core.tick(now)
            samples.append(time.perf_counter() - start)
    finally:
        path.close()
    return summary_ms(samples)


def _local_policy(scratch: str) -> Any:
    import os
    from rt2_ros.models.tiny_vla import save_tiny_vla, spec_from_args
    from rt2_ros.policy.base import PolicyConfig
    from rt2_ros.policy.factory import make_policy
    path = os.path.join(scratch, 'tiny-rt2')
    save_tiny_vla(path, spec_from_args('rt2', 0))
    return make_policy(PolicyConfig(backend='local', model_path=path, device='cpu'))


def run(decisions: int = 200, quick: bool = False, local: bool = True) -> Dict[str, Any]:
    """Measure every row; return {'rows': [...], 'tick': {...}}."""
    import tempfile
    sys.path.insert(0, test_support_path())
    from rt2_ros.policy.base import PolicyConfig
    from rt2_ros.policy.factory import make_policy
    from support.scripted_policy_server import ScriptedPolicyServer
    if quick:
        decisions = min(decisions, 5)
    rows: List[Dict[str, Any]] = []

    def add(label: str, transport: str, size: tuple, result: Dict[str, Any]) -> None:
        rows.append({'path': label, 'wire': transport, 'image': f'{size[0]}x{size[1]}',
                     **result})

    for size in SIZES:
        add('in-process, no model', '-', size,
            measure(InstantPolicy(), image_message(*size), decisions))
    if local and not quick:
        with tempfile.TemporaryDirectory() as scratch:
            policy = _local_policy(scratch)
            add('local tiny model, minus model time', '-', (224, 224),
                measure(policy, image_message(224, 224), max(20, decisions // 4),
                        model_time=lambda result: result.timing.inference_s or 0.0))
    with InstantServer() as server:
        remotes = [
            ('remote openai', 'JPEG q90 data URL',
             PolicyConfig(backend='openai', url=server.url + '/v1', model_name='instant')),
            ('remote openpi', 'msgpack-numpy', PolicyConfig(backend='openpi', url=server.ws_url)),
            ('remote openvla_http', 'json_numpy',
             PolicyConfig(backend='openvla_http', url=server.url)),
        ]
        for label, transport, config in remotes:
            for size in SIZES:
                with make_policy(config) as policy:
                    add(label, transport, size, measure(policy, image_message(*size), decisions))
        with make_policy(remotes[0][2]) as policy:
            add('remote openai, camera JPEG passed on', 'camera JPEG data URL', SIZES[1],
                measure(policy, image_message(*SIZES[1], compressed=True), decisions))
    if not quick:
        with ScriptedPolicyServer() as server:  # the same client against a FastAPI server
            config = PolicyConfig(backend='openai', url=server.url + '/v1',
                                  model_name='scripted')
            with make_policy(config) as policy:
                add('remote openai, FastAPI server (its time included)', 'JPEG q90 data URL',
                    SIZES[0], measure(policy, image_message(*SIZES[0]), decisions))
    return {'rows': rows, 'tick': tick_cost(50 if quick else 2000)}


def print_results(results: Dict[str, Any]) -> None:
    header = ['path', 'wire', 'image', 'p50 ms', 'p99 ms', 'convert', 'encode', 'call',
              'merge', 'worker CPU']
    rows = [[r['path'], r['wire'], r['image'], r['p50_ms'], r['p99_ms'], r['convert_p50_ms'],
             r['encode_p50_ms'], r['call_p50_ms'], r['merge_p50_ms'], r['cpu_p50_ms']]
            for r in results['rows']]
    print_table('Node overhead per decision, model excluded (parts: p50 ms)', header, rows)
    tick = results['tick']
    print(f'  control tick compute (core.tick): p50 {tick["p50_ms"] * 1000:.0f} us, '
          f'p99 {tick["p99_ms"] * 1000:.0f} us')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--decisions', type=int, default=200)
    parser.add_argument('--quick', action='store_true', help='a few decisions (smoke test)')
    parser.add_argument('--no-local', action='store_true', help='skip the local tiny model')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
    args = parser.parse_args(argv)
    results = run(args.decisions, args.quick, not args.no_local)
    return emit(results, args.json, print_results)


if __name__ == '__main__':
    sys.exit(main())

"""
Throughput of `rt2 serve` with concurrent robots, with and without server-side batching.

Run: .venv/bin/python -m bench.serve_throughput [--model DIR | --hidden 64 --layers 2 ...]
     [--clients 8] [--requests 6] [--rounds 3]

Without --model a tiny random checkpoint is built (`rt2 make-tiny-vla` recipe; sizes are
options), so the figures show serving and batching, not a real model's speed. Two servers run
side by side - `--max-batch 1` (one request at a time) and `--max-batch N` - and rounds alternate
between them so load from other processes hits both alike; medians over rounds are reported.

The robots are threads posting OpenVLA /act requests (a 224x224 frame as json_numpy) over
kept-alive loopback connections. Each request body is serialized once up front: on a real fleet
every robot encodes its own frames on its own CPU, and here the clients share this machine's
cores with the server, so encoding in the loop would bill the robots' work to the server.
Everything the server does - HTTP, json_numpy decoding, image preprocessing, generation,
decoding and validating the action, the reply - is measured.
"""
import argparse
from concurrent.futures import ThreadPoolExecutor
import http.client
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

from bench.common import camera_like, emit, print_table, test_support_path
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.factory import make_policy

RT2 = str(Path(sys.executable).parent / 'rt2')


def start_server(model: str, device: str, max_batch: int,
                 extra: List[str]) -> Tuple[subprocess.Popen, str]:
    if test_support_path() not in sys.path:
        sys.path.insert(0, test_support_path())
    from support.scripted_policy_server import wait_for_health, wait_for_url
    process = subprocess.Popen(
        [RT2, 'serve', '--model', model, '--port', '0', '--device', device,
         '--max-batch', str(max_batch), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = wait_for_url(process, 600)
    wait_for_health(url, 60)
    return process, url


def request_body(seed: int) -> bytes:
    """Return a real openvla_http request body (what OpenVLAHttpPolicy sends) for a frame."""
    policy = make_policy(PolicyConfig(backend='openvla_http', url='http://127.0.0.1:1'))
    body = policy.build_body(Observation(image=camera_like(224, 224, seed),
                                         instruction='pick up the red block'))
    policy.close()
    return body


class Robot:
    """One client: a kept-alive connection posting its pre-serialized frame."""

    def __init__(self, url: str, body: bytes) -> None:
        host, port = url.split('://', 1)[1].rsplit(':', 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)
        self.body = body

    def step(self) -> None:
        self.conn.request('POST', '/act', body=self.body,
                          headers={'Content-Type': 'application/json'})
        response = self.conn.getresponse()
        reply = response.read()
        if response.status != 200:
            raise RuntimeError(f'server answered {response.status}: {reply[:200]!r}')
        json.loads(reply)

    def close(self) -> None:
        self.conn.close()


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run_clients(url: str, pid: int, bodies: List[bytes], requests: int) -> Tuple[float, float]:
    """
    Run len(bodies) robots sending `requests` each; return (requests/s, server CPU s/request).

    The server's CPU time per request does not depend on what else the machine runs, so its
    ratio between the two servers is what the throughput ratio would be on an idle CPU.
    """
    robots = [Robot(url, body) for body in bodies]
    try:
        for robot in robots:
            robot.step()  # connect and warm up

        def loop(robot: Robot) -> None:
            for _ in range(requests):
                robot.step()

        cpu = cpu_seconds(pid)
        start = time.monotonic()
        with ThreadPoolExecutor(len(robots)) as pool:
            list(pool.map(loop, robots))
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(pid) - cpu
    finally:
        for robot in robots:
            robot.close()
    total = len(robots) * requests
    return total / elapsed, cpu / total


def build_model(folder: str, args: argparse.Namespace) -> Tuple[str, Dict[str, Any]]:
    from rt2_ros.models.tiny_vla import save_tiny_vla, spec_from_args
    spec = spec_from_args('rt2', 0, image_size=args.image_size, hidden=args.hidden,
                          layers=args.layers, heads=args.heads)
    path = os.path.join(folder, 'tiny')
    save_tiny_vla(path, spec)
    recipe = spec.to_json()
    recipe.pop('words', None)
    return path, recipe


def run(args: argparse.Namespace) -> Dict[str, Any]:
    clients = args.clients
    with tempfile.TemporaryDirectory() as scratch:
        model, recipe = (args.model, None) if args.model else build_model(scratch, args)
        extra = ['--batch-window-ms', str(args.window_ms)] if args.window_ms is not None else []
        settings = (1, clients)
        servers = {}
        samples: Dict[Tuple[int, int], List[float]] = {}
        cpu: Dict[Tuple[int, int], List[float]] = {}
        bodies = [request_body(seed) for seed in range(clients)]
        try:
            for batch in settings:
                servers[batch] = start_server(model, args.device, batch, extra)
            for _ in range(args.rounds):
                for batch in settings:
                    process, url = servers[batch]
                    for count in (1, clients):
                        requests = args.requests * (2 if count == 1 else 1)
                        rps, cpu_per_request = run_clients(url, process.pid, bodies[:count],
                                                           requests)
                        samples.setdefault((batch, count), []).append(rps)
                        cpu.setdefault((batch, count), []).append(cpu_per_request)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(30)
                process.stdout.close()
                process.stderr.close()
    rate = {key: statistics.median(values) for key, values in samples.items()}
    cpu_ms = {key: 1000 * statistics.median(values) for key, values in cpu.items()}
    return {
        'model': args.model or 'tiny random checkpoint', 'recipe': recipe,
        'clients': clients, 'rounds': args.rounds, 'requests_per_client': args.requests,
        'rows': [{'server': f'--max-batch {batch}', 'clients_1_rps': round(rate[batch, 1], 2),
                  f'clients_{clients}_rps': round(rate[batch, clients], 2),
                  'clients_1_cpu_ms': round(cpu_ms[batch, 1], 2),
                  f'clients_{clients}_cpu_ms': round(cpu_ms[batch, clients], 2)}
                 for batch in settings],
        'batched_over_one_at_a_time': round(rate[clients, clients] / rate[1, clients], 2),
        'cpu_ratio': round(cpu_ms[1, clients] / cpu_ms[clients, clients], 2),
        'load_average': [round(v, 2) for v in os.getloadavg()],
    }


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    out.add_argument('--model', help='checkpoint directory (default: build a tiny one)')
    out.add_argument('--hidden', type=int, default=None, help='tiny model width')
    out.add_argument('--layers', type=int, default=None, help='tiny model layers')
    out.add_argument('--heads', type=int, default=None, help='tiny model attention heads')
    out.add_argument('--image-size', type=int, default=None, help='tiny model image side')
    out.add_argument('--device', default='cpu')
    out.add_argument('--clients', type=int, default=8)
    out.add_argument('--requests', type=int, default=6, help='per client and round')
    out.add_argument('--rounds', type=int, default=3)
    out.add_argument('--window-ms', type=float, default=None, help='rt2 serve --batch-window-ms')
    out.add_argument('--json', action='store_true')
    return out


def print_results(results: Dict[str, Any]) -> None:
    clients = results['clients']
    rows = [[r['server'], r['clients_1_rps'], r[f'clients_{clients}_rps'],
             r['clients_1_cpu_ms'], r[f'clients_{clients}_cpu_ms']] for r in results['rows']]
    print_table(f'rt2 serve throughput ({results["model"]}, median of {results["rounds"]} '
                'rounds)', ['server', '1 client req/s', f'{clients} clients req/s',
                            'CPU ms/req (1)', f'CPU ms/req ({clients})'], rows)
    print(f'  {clients} clients: batching / one-at-a-time = '
          f'x{results["batched_over_one_at_a_time"]:.2f} in requests/s, '
          f'x{results["cpu_ratio"]:.2f} in server CPU per request')


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    results = run(args)
    return emit(results, args.json, print_results)


if __name__ == '__main__':
    sys.exit(main())

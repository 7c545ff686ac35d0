"""
Throughput of `rt2 serve` with concurrent robots, with and without server-side batching.

Run: .venv/bin/python -m bench.serve_throughput [--model DIR] [--clients 8] [--requests 10]
Without --model a tiny checkpoint is built with `rt2 make-tiny-vla` (random weights; the numbers
then show serving overhead and batching, not a real model's speed). Two servers run side by side
(--max-batch 1, i.e. one request at a time, and --max-batch N); rounds alternate between them so
load from other processes affects both alike. Reported: median requests per second for 1 client
and for N concurrent clients (openvla_http backend, 224x224 frames), and the N-client speed-up of
batching over one-at-a-time serving.
"""
import argparse
from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.factory import make_policy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'test'))
from support.scripted_policy_server import wait_for_health, wait_for_url  # noqa: E402, I100

RT2 = str(Path(sys.executable).parent / 'rt2')


def start(model: str, device: str, max_batch: int) -> Tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [RT2, 'serve', '--model', model, '--port', '0', '--device', device,
         '--max-batch', str(max_batch)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = wait_for_url(process, 600)
    wait_for_health(url, 60)
    return process, url


def run_clients(url: str, clients: int, requests: int) -> float:
    """Return requests per second with `clients` robots each sending `requests` in a loop."""
    rng = np.random.default_rng(0)
    policies = [make_policy(PolicyConfig(backend='openvla_http', url=url, timeout_s=300))
                for _ in range(clients)]
    observations = [Observation(image=rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
                                instruction='pick up the rock') for _ in range(clients)]
    for policy, observation in zip(policies, observations):
        policy.infer(observation)  # warm up connections and the model

    def loop(index: int) -> None:
        for _ in range(requests):
            policies[index].infer(observations[index])

    start_time = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    elapsed = time.monotonic() - start_time
    for policy in policies:
        policy.close()
    return clients * requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--model', help='checkpoint directory (default: build a tiny one)')
    parser.add_argument('--space', default='rt2', help='space for the tiny checkpoint')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--clients', type=int, default=8)
    parser.add_argument('--requests', type=int, default=5, help='per client and round')
    parser.add_argument('--rounds', type=int, default=3,
                        help='alternating rounds (medians are reported; fair on a busy host)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if not model:
            model = os.path.join(scratch, 'tiny')
            subprocess.run([RT2, 'make-tiny-vla', model, '--space', args.space], check=True)
        settings = (1, args.clients)
        servers = {batch: start(model, args.device, batch) for batch in settings}
        samples: Dict[Tuple[int, int], List[float]] = {}
        try:
            for _ in range(args.rounds):
                for batch in settings:
                    url = servers[batch][1]
                    for clients in (1, args.clients):
                        count = args.requests * (2 if clients == 1 else 1)
                        samples.setdefault((batch, clients), []).append(
                            run_clients(url, clients, count))
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(30)
    rate = {key: statistics.median(values) for key, values in samples.items()}
    for batch in settings:
        print(f'--max-batch {batch:<3} 1 client {rate[batch, 1]:7.2f} req/s   {args.clients} '
              f'clients {rate[batch, args.clients]:7.2f} req/s')
    one_at_a_time = rate[1, args.clients]
    print(f'{args.clients} clients, batching vs one-at-a-time: '
          f'x{rate[args.clients, args.clients] / one_at_a_time:.2f}')


if __name__ == '__main__':
    main()

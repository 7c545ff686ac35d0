"""
Throughput of `rt2 serve` with concurrent robots, with and without server-side batching.

Run: .venv/bin/python -m bench.serve_throughput [--model DIR] [--clients 8] [--requests 10]
Without --model a tiny checkpoint is built with `rt2 make-tiny-vla` (random weights; the numbers
then show serving overhead and batching, not a real model's speed). For each server setting
(--max-batch 1 and the default) it reports requests per second for 1 client and for N concurrent
clients (openvla_http backend, 224x224 frames), and the speed-up of N clients over one.
"""
import argparse
from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from typing import List, Tuple

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
    parser.add_argument('--requests', type=int, default=10, help='per client')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if not model:
            model = os.path.join(scratch, 'tiny')
            subprocess.run([RT2, 'make-tiny-vla', model, '--space', args.space], check=True)
        rows: List[str] = []
        for max_batch in (1, args.clients):
            process, url = start(model, args.device, max_batch)
            try:
                single = run_clients(url, 1, args.requests * 2)
                many = run_clients(url, args.clients, args.requests)
            finally:
                process.terminate()
                process.wait(30)
            rows.append(f'--max-batch {max_batch:<3} 1 client {single:7.2f} req/s   '
                        f'{args.clients} clients {many:7.2f} req/s   x{many / single:.2f}')
        print('\n'.join(rows))


if __name__ == '__main__':
    main()

"""
Latency of the local backend on this machine: model load, one decision, batched decisions.

Builds a tiny random checkpoint of the requested size (rt2 make-tiny-vla recipe) in a temporary
directory, then times LocalTransformersPolicy. Run:
    .venv/bin/python bench/bench_local_policy.py --space rt2 --hidden 128 --layers 4
Prints one JSON object; medians and 90th percentiles in milliseconds. `decision_cpu` is the
process CPU time per decision: with --threads 1 it is what the wall time would be on an idle
core, a figure that does not depend on what else the machine is running.
"""
import argparse
import json
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time


def _percentiles(samples):
    ordered = sorted(samples)
    return {'median_ms': round(1000 * statistics.median(ordered), 2),
            'p90_ms': round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--space', default='rt2')
    parser.add_argument('--model', help='existing checkpoint directory (skips building one)')
    parser.add_argument('--image-size', type=int, default=32)
    parser.add_argument('--patch-size', type=int, default=8)
    parser.add_argument('--hidden', type=int, default=64)
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--heads', type=int, default=2)
    parser.add_argument('--vision-hidden', type=int, default=32)
    parser.add_argument('--vision-layers', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from rt2_ros.models.tiny_vla import save_tiny_vla, spec_from_args
    from rt2_ros.policy.base import Observation, PolicyConfig
    from rt2_ros.policy.factory import make_policy
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.model) if args.model else Path(tmp) / 'model'
        recipe = None
        if not args.model:
            spec = spec_from_args(args.space, 0, image_size=args.image_size,
                                  patch_size=args.patch_size, hidden=args.hidden,
                                  layers=args.layers, heads=args.heads,
                                  vision_hidden=args.vision_hidden,
                                  vision_layers=args.vision_layers)
            save_tiny_vla(path, spec)
            recipe = spec.to_json()
            recipe.pop('words')
        start = time.perf_counter()
        policy = make_policy(PolicyConfig(backend='local', model_path=str(path)))
        load_s = time.perf_counter() - start
        params = sum(p.numel() for p in policy.model.parameters())
        rng = np.random.default_rng(0)
        observations = [Observation(image=rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
                                    instruction='pick up the red block and put it left',
                                    gripper=1.0)
                        for _ in range(args.batch)]
        for _ in range(3):
            policy.infer(observations[0])
        single, inference, tokens, cpu = [], [], [], []
        for i in range(args.repeats):
            cpu_start = time.process_time()
            result = policy.infer(observations[i % len(observations)])
            cpu.append(time.process_time() - cpu_start)
            single.append(result.timing.request_s)
            inference.append(result.timing.inference_s)
            raw = result.raw
            tokens.append(len(raw) if isinstance(raw, list) else len(
                policy.tokenizer.encode(raw, add_special_tokens=False)))
        batched = []
        for _ in range(max(3, args.repeats // 4)):
            start = time.perf_counter()
            policy.infer_batch(observations)
            batched.append(time.perf_counter() - start)
        report = {
            'space': policy.space.name, 'recipe': recipe, 'parameters': params,
            'checkpoint_mb': round(sum(f.stat().st_size for f in path.iterdir()) / 1e6, 2),
            'device': str(policy.device), 'torch_threads': torch.get_num_threads(),
            'decoder': policy.info()['decoder'], 'load_s': round(load_s, 3),
            'image_tokens': policy.processor.image_seq_length
            if hasattr(policy.processor, 'image_seq_length') else None,
            'decision': _percentiles(single), 'decision_cpu': _percentiles(cpu),
            'inference': _percentiles(inference),
            'action_tokens_median': statistics.median(tokens),
            f'batch_{args.batch}': _percentiles(batched),
            'batch_per_item_ms': round(1000 * statistics.median(batched) / args.batch, 2),
            'load_average': os.getloadavg()[0],
        }
    print(json.dumps(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())

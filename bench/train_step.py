"""
What one `rt2 train` optimizer step costs here, and how close it runs to the machine's peak.

The demo VLA's training budget (90 minutes) buys a number of steps; this says how many, in fp32
and with bf16 autocast, for the bundled recipe's model and a wider one, beside the GEMM rate the
same device reaches on the model's own matrix shapes (the ceiling a faster step could approach).
A step is `Trainer.train_step` itself (batch assembly, forward, backward, clipping, AdamW) on
robot examples in the robot data's layout (the RT-2 prompt, an 8-integer answer) with random
images.

Run: .venv/bin/python -m bench.train_step [--widths 128 256] [--device cuda] [--quick] [--json]
(on a GPU, scripts/gpu_check.sh runs it with the rest of the training path's check)
"""
import argparse
import json
import os
import statistics
import time
from typing import Any, Dict, List

from bench import common

RECIPE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'config',
                      'training', 'rt2_demo_vla.json')
EXAMPLES = 256


def _sync(device) -> None:
    import torch
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _trainer(width: int, precision: str, device_name: str, batch_size: int, threads: int,
             scratch: str):
    """
    Return the recipe's Trainer at `width`, fed robot examples instead of generated data.

    The examples are the robot data's layout - the RT-2 prompt of a sim instruction, the
    recipe's answer (its plan, then 8 integers) and the pointing questions asked about each
    frame - on random images and points, so `train_step` batches and steps exactly as in a run.
    """
    import numpy as np
    from rt2_ros.sim.rollout import POINT_ROWS
    from rt2_ros.training.batches import EncodedSet
    from rt2_ros.training.config import TrainConfig
    from rt2_ros.training.device import training_device
    from rt2_ros.training.examples import ExampleSet
    from rt2_ros.training.robot_data import (
        add_frame, bins_text, CAMERA_SIZE, grounding_questions, planned_answer)
    from rt2_ros.training.trainer import Trainer

    recipe = TrainConfig.load(RECIPE).to_dict()
    recipe['model'].update(vision_hidden=width, hidden=width)
    recipe.update(robot_fraction=1.0, batch_size=batch_size, threads=threads, dagger=[],
                  stages=[])
    trainer = Trainer(TrainConfig.from_dict(recipe), scratch, log=lambda _: None,
                      device=training_device(device_name, precision))
    rng = np.random.default_rng(0)
    size = trainer.config.model.image_size
    examples = ExampleSet(images=rng.integers(0, 256, (EXAMPLES, size, size, 3), np.uint8))
    instruction = 'put the red triangle in the near right corner of the table'
    for k in range(EXAMPLES):
        points = rng.uniform(0, CAMERA_SIZE, (len(POINT_ROWS), 2))
        answer = bins_text(rng.integers(0, 256, 8))
        if trainer.config.robot_plan != 'none':
            answer = planned_answer(points, answer, trainer.config.robot_plan,
                                    opening=rng.uniform())
        asked = grounding_questions(instruction, 'move_to', points) \
            if trainer.config.grounding_fraction > 0 else ()
        add_frame(examples, k, instruction, answer, 'move_to', asked)
    trainer.set_streams([EncodedSet(examples, trainer.encoder)])
    return trainer


def _gemm_rate(rows: int, inner: int, cols: int, dtype, device, repeats: int) -> float:
    """GFLOP/s of one (rows x inner) @ (inner x cols) product, median of `repeats`."""
    import torch
    a = torch.randn(rows, inner, dtype=dtype, device=device)
    b = torch.randn(inner, cols, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2.0 * rows * inner * cols / statistics.median(times) / 1e9


def measure(width: int, precision: str, device_name: str, steps: int, batch_size: int,
            threads: int = 1) -> Dict[str, Any]:
    """Time `steps` trainer steps of the recipe's model at `width` in `precision`."""
    import tempfile
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from rt2_ros.training.batches import make_batch
    from rt2_ros.training.model import parameter_count

    with tempfile.TemporaryDirectory() as scratch:
        trainer = _trainer(width, precision, device_name, batch_size, threads, scratch)
        device = trainer.device
        with FlopCounterMode(display=False) as counter:
            trainer.train_step(0)
        for step in (1, 2):
            trainer.train_step(step)
        times = []
        for step in range(3, 3 + steps):
            _sync(device.device)
            start = time.perf_counter()
            trainer.train_step(step)
            _sync(device.device)
            times.append(time.perf_counter() - start)
        tokens = make_batch(trainer.sets, trainer.batch_picks(0))['input_ids'].numel()
        parameters = parameter_count(trainer.model)
    median_s = statistics.median(times)
    flops = counter.get_total_flops()
    gemm_dtype = torch.bfloat16 if device.autocast_dtype is not None else torch.float32
    return {
        'width': width, 'precision': device.precision, 'device': str(device.device),
        'parameters_m': round(parameters / 1e6, 2), 'batch': batch_size,
        'step_ms': round(1000 * median_s, 1),
        'steps_in_90_min': int(90 * 60 / median_s),
        'gflop_per_step': round(flops / 1e9, 2),
        'gflop_per_s': round(flops / median_s / 1e9, 1),
        'gemm_gflop_per_s': round(_gemm_rate(tokens, width, 4 * width, gemm_dtype,
                                             device.device, max(5, steps)), 1),
    }


def run(widths: List[int], device: str = 'cpu', steps: int = 8, batch_size: int = 32,
        threads: int = 1) -> Dict[str, Any]:
    rows = []
    for width in widths:
        for precision in ('fp32', 'bf16'):
            rows.append(measure(width, precision, device, steps, batch_size, threads))
    for row in rows:
        fp32 = next(r for r in rows if r['width'] == row['width'] and r['precision'] == 'fp32')
        row['speed_vs_fp32'] = round(fp32['step_ms'] / row['step_ms'], 2)
        row['share_of_gemm_peak'] = round(row['gflop_per_s'] / row['gemm_gflop_per_s'], 2)
    return {'machine': common.machine(), 'threads': threads, 'rows': rows}


def print_results(results: Dict[str, Any]) -> None:
    header = ['width', 'precision', 'params M', 'step ms', 'x fp32', 'steps in 90 min',
              'GFLOP/step', 'GFLOP/s', 'GEMM GFLOP/s', 'share of GEMM']
    rows = [[r['width'], r['precision'], r['parameters_m'], r['step_ms'], r['speed_vs_fp32'],
             r['steps_in_90_min'], r['gflop_per_step'], r['gflop_per_s'],
             r['gemm_gflop_per_s'], r['share_of_gemm_peak']] for r in results['rows']]
    where = f"{results['rows'][0]['device']}, {results['threads']} thread(s)"
    common.print_table(f'rt2 train step, batch {results["rows"][0]["batch"]} ({where}; '
                       f'{results["machine"]["cpu"]})', header, rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--widths', type=int, nargs='+', default=[128, 256],
                        help='vision and decoder width (128 is the bundled recipe)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--steps', type=int, default=8, help='timed steps per row')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--quick', action='store_true', help='smoke test: tiny widths, 2 steps')
    parser.add_argument('--json', action='store_true', help='print the results as JSON')
    parser.add_argument('--json-out', metavar='FILE', help='also write the results here')
    args = parser.parse_args(argv)
    if args.quick:
        args.widths, args.steps, args.batch_size = [32], 2, 4
    results = run(args.widths, args.device, args.steps, args.batch_size, args.threads)
    if args.json_out:
        with open(args.json_out, 'w', encoding='utf-8') as out:
            json.dump(results, out, indent=2)
    return common.emit(results, args.json, print_results)


if __name__ == '__main__':
    raise SystemExit(main())

"""
Constrained decoding of the local backend: decision latency at 1 torch thread, and build cost.

Latency: the bundled models (rt2_demo_vla, rt2_staged_vla) answer the same observations; wall
time and process CPU time per decision (with 1 thread the CPU time is what the wall time would be
on an idle core), one observation at a time and in batches of 8. `guided` is model.generate with
llguidance (rt2_ros.decoding.guided). The hand-written KV-cache loop it replaced (`loop`) was
measured beside it, in interleaved rounds, by this module at commit 678a827, before its removal:
constrained_decoding_results.json beside this file is that run, and docs/decoding.md quotes it.
Build: llguidance's one-time work per model (reading the tokenizer) and per action space
(compiling the grammar, and the first mask, where its lazy lexer does its first work).

Run: .venv/bin/python -m bench.constrained_decoding [--rounds 12] [--decisions 8] [--json]
"""
import argparse
import json
import os
from pathlib import Path
import tempfile
import time
from typing import Any, Dict, List, Optional

from bench import common

MODELS = ('rt2_demo_vla', 'rt2_staged_vla')
BATCH = 8
# A user's own action space: mixed bin counts, so integers of 1 to 3 digits.
USER_SPACE_YAML = """\
name: my_arm
tokenization: text
bins: 256
dimensions:
  - {name: stop, role: terminate, type: discrete, labels: [terminate, go]}
  - {name: x, role: translation, axis: x, type: continuous, low: -0.1, high: 0.1, bins: 1000}
  - {name: yaw, role: rotation, axis: z, type: continuous, low: -1, high: 1, bins: 11}
  - {name: grip, role: gripper, type: continuous, low: 0, high: 1, bins: 3}
"""


def decoders() -> List[str]:
    """Return the decoders this checkout has (the old loop was removed after commit 678a827)."""
    return ['guided']


def _observations(count: int, seed: int = 0) -> List[Any]:
    import numpy as np
    from rt2_ros.policy.base import Observation
    rng = np.random.default_rng(seed)
    words = ('pick up the red block', 'push the blue cube left', 'put the green ball on the mat')
    # the gripper's opening: the bundled model's prompt states it (proprioception)
    return [Observation(image=rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
                        instruction=words[i % len(words)], gripper=float(i % 2))
            for i in range(count)]


def latency(rounds: int, decisions: int) -> List[Dict[str, Any]]:
    """Return per model and decoder the decision latency, single and batched."""
    from rt2_ros.policy.base import PolicyConfig
    from rt2_ros.policy.factory import make_policy
    from rt2_ros.resources import find_data

    observations = _observations(BATCH)
    rows = []
    for model in MODELS:
        path = str(find_data('models', model))
        policies = {name: make_policy(PolicyConfig(backend='local', model_path=path))
                    for name in decoders()}
        samples = {name: {'wall': [], 'cpu': [], 'batch': []} for name in policies}
        raws = {name: set() for name in policies}
        for round_index in range(rounds):
            for name, policy in policies.items():
                for k in range(decisions):
                    wall, cpu = time.perf_counter(), time.process_time()
                    result = policy.infer(observations[(round_index + k) % BATCH])
                    samples[name]['cpu'].append(time.process_time() - cpu)
                    samples[name]['wall'].append(time.perf_counter() - wall)
                    raws[name].add(str(result.raw))
                wall = time.perf_counter()
                policy.infer_batch(observations)
                samples[name]['batch'].append((time.perf_counter() - wall) / BATCH)
        for name, policy in policies.items():
            row = {'model': model, 'decoder': name, 'max_new_tokens': policy.max_new_tokens,
                   'distinct_actions': len(raws[name])}
            for key, values in samples[name].items():
                row[f'{key}_p50_ms'] = round(1000 * common.percentile(values, 50), 3)
                row[f'{key}_p90_ms'] = round(1000 * common.percentile(values, 90), 3)
            rows.append(row)
            policy.close()
    return rows


def build_times(repeats: int = 5) -> List[Dict[str, Any]]:
    """Return llguidance's one-time costs per action space."""
    import statistics
    from rt2_ros.actions import load_action_space, make_codec
    from rt2_ros.decoding.guided import action_grammar, Constraint, llguidance_tokenizer
    from rt2_ros.models.tiny_vla import save_tiny_vla, TinyVLASpec
    from rt2_ros.resources import find_data
    from transformers import AutoTokenizer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        user_yaml = Path(tmp) / 'my_arm.yaml'
        user_yaml.write_text(USER_SPACE_YAML)
        openvla_dir = save_tiny_vla(Path(tmp) / 'openvla', TinyVLASpec(space='openvla'))
        demo = str(find_data('models', 'rt2_demo_vla'))
        cases = [('rt2', demo, 'rt2', 'none'), ('rt2 plan optional', demo, 'rt2', 'optional'),
                 ('rt2 plan required', demo, 'rt2', 'required'),
                 ('rt1_mobile', demo, 'rt1_mobile', 'none'),
                 ('user YAML (1000/11/3 bins)', demo, str(user_yaml), 'none'),
                 ('openvla (vocabulary ids)', str(openvla_dir),
                  str(openvla_dir / 'action_space.yaml'), 'none')]
        tokenizers: Dict[str, Any] = {}
        for label, model_dir, space_spec, plan in cases:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            eos = [int(tokenizer.eos_token_id)]
            started = time.perf_counter()
            lltokenizer = llguidance_tokenizer(tokenizer, len(tokenizer), eos)
            tokenizer_ms = 1000 * (time.perf_counter() - started)
            tokenizers.setdefault(model_dir, lltokenizer)
            codec = make_codec(load_action_space(space_spec))
            compile_ms, first_mask_ms = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                constraint = Constraint(lltokenizer, action_grammar(codec, plan))
                compile_ms.append(1000 * (time.perf_counter() - started))
                matcher = constraint.matcher()
                started = time.perf_counter()
                matcher.compute_bitmask()
                first_mask_ms.append(1000 * (time.perf_counter() - started))
            row = {'space': label, 'vocab': len(tokenizer),
                   'tokenizer_ms': round(tokenizer_ms, 2),
                   'grammar_ms': round(statistics.median(compile_ms), 3),
                   'first_mask_ms': round(statistics.median(first_mask_ms), 3)}
            rows.append(row)
    return rows


def run(rounds: int = 12, decisions: int = 8) -> Dict[str, Any]:
    import torch
    torch.set_num_threads(1)
    before = common.machine()
    results = {'machine': before, 'torch_threads': torch.get_num_threads(),
               'decoders': decoders(), 'latency': latency(rounds, decisions),
               'build': build_times()}
    results['load_average_after'] = [round(v, 2) for v in os.getloadavg()]
    by_model: Dict[str, Dict[str, Any]] = {}
    for row in results['latency']:
        by_model.setdefault(row['model'], {})[row['decoder']] = row
    ratios = {}
    for model, rows in by_model.items():
        if 'loop' in rows and 'guided' in rows:
            ratios[model] = {key: round(rows['guided'][key] / rows['loop'][key], 3)
                             for key in ('wall_p50_ms', 'cpu_p50_ms', 'batch_p50_ms')}
    results['guided_over_loop'] = ratios
    return results


def print_results(results: Dict[str, Any]) -> None:
    common.print_table(
        'decision latency, 1 torch thread (ms)',
        ['model', 'decoder', 'wall p50', 'wall p90', 'cpu p50', f'batch {BATCH} p50 / item',
         'max_new_tokens'],
        [[r['model'], r['decoder'], r['wall_p50_ms'], r['wall_p90_ms'], r['cpu_p50_ms'],
          r['batch_p50_ms'], r['max_new_tokens']] for r in results['latency']])
    for model, ratio in results.get('guided_over_loop', {}).items():
        print(f'{model}: guided / loop = wall {ratio["wall_p50_ms"]}, cpu {ratio["cpu_p50_ms"]}, '
              f'batch {ratio["batch_p50_ms"]}')
    common.print_table(
        'llguidance one-time cost per action space (ms)',
        ['space', 'vocab', 'tokenizer', 'grammar', 'first mask', 'old automaton (678a827)'],
        [[r['space'], r['vocab'], r['tokenizer_ms'], r['grammar_ms'], r['first_mask_ms'],
          r.get('old_automaton_ms', '-')] for r in results['build']])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--rounds', type=int, default=12)
    parser.add_argument('--decisions', type=int, default=8)
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    results = run(args.rounds, args.decisions)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print_results(results)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

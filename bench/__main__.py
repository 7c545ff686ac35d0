"""
Run every benchmark, print one table per benchmark and a summary against the goals.

Run: make bench  (= .venv/bin/python -m bench [--quick] [--only NAME ...] [--out FILE])

Writes bench/results.json: the machine (CPU, cores, load average before and after - the
development VM is shared, so the load is part of every figure), the full results of each
benchmark and the summary. --quick runs each with a handful of iterations (a smoke test of the
whole harness, seconds; its figures mean nothing). Each benchmark also runs alone:
python -m bench.node_overhead, bench.wire_formats, bench.control_loop, bench.serve_throughput.
"""
import argparse
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional

from bench import common

BENCHMARKS = ('node_overhead', 'wire_formats', 'control_loop', 'serve_throughput')
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.json')


def _run(name: str, quick: bool) -> Dict[str, Any]:
    if name == 'node_overhead':
        from bench import node_overhead
        return node_overhead.run(quick=quick)
    if name == 'wire_formats':
        from bench import wire_formats
        return wire_formats.run(quick=quick)
    if name == 'control_loop':
        from bench import control_loop
        settings = [control_loop.parse_setting(text) for text in control_loop.BENCH_SETTINGS]
        return control_loop.run(quick=quick, settings=settings)
    from bench import serve_throughput
    argv = ['--rounds', '1', '--requests', '1', '--clients', '2'] if quick else []
    return serve_throughput.run(serve_throughput.parser().parse_args(argv))


def _print(name: str, results: Dict[str, Any]) -> None:
    import importlib
    importlib.import_module(f'bench.{name}').print_results(results)


def _overhead(results: Dict[str, Any], path: str, image: str) -> Optional[float]:
    for row in results.get('rows', []):
        if row['path'] == path and row['image'] == image:
            return row['p50_ms']
    return None


def summary(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Return the figures the goals name, each with its goal and whether it is met."""
    rows: List[Dict[str, Any]] = []

    def add(figure: str, value: Optional[float], goal_text: str, limit: Optional[float],
            higher: bool = False) -> None:
        verdict = '-' if limit is None else common.goal(value, limit, higher)
        rows.append({'figure': figure, 'value': math.nan if value is None else value,
                     'goal': goal_text, 'verdict': verdict})

    overhead = results.get('node_overhead', {})
    for path, label, goal in (('in-process, no model', 'in-process', True),
                              ('remote openai', 'remote, JPEG', True),
                              ('remote openpi', 'remote, msgpack (raw pixels)', False)):
        for image, limit in (('224x224', 1.0), ('640x480', 3.0)):
            add(f'node overhead p50 ms, {label}, {image}', _overhead(overhead, path, image),
                f'<= {limit:g}' if goal else '', limit if goal else None)
    from bench import control_loop
    loop = results.get('control_loop', {}).get('scenarios', [])
    for scenario in loop:
        policy = '' if 'local' in scenario['camera'] else '300 ms policy, '
        setting = control_loop.scenario_setting(scenario)
        default = setting == control_loop.DEFAULT_SETTING
        thread = '' if default else (f', executor {setting["executor"]}, '
                                     f'control.realtime_priority {setting["realtime_priority"]}')
        add(f'control jitter p99 ms (stamps), {policy}camera {scenario["camera"]}{thread}',
            scenario['jitter_stamp']['p99_ms'], '<= 2' if default else '',
            2.0 if default else None)
        latency = scenario['camera_to_command_minus_model']
        if latency['n'] and default:
            add(f'camera stamp -> command minus model, p50 ms, camera {scenario["camera"]}',
                latency['p50_ms'], '', None)
    wire = results.get('wire_formats')
    if wire:
        from bench.wire_formats import best_ratio
        for image, ratio in best_ratio(wire).items():
            add(f'wire: json_numpy cost / best format, {image}', ratio, '>= 3', 3.0, True)
    serve = results.get('serve_throughput')
    if serve:
        clients = serve['clients']
        add(f'rt2 serve, {clients} clients: batched / one-at-a-time (req/s)',
            serve['batched_over_one_at_a_time'], '>= 3', 3.0, True)
        add(f'rt2 serve, {clients} clients: one-at-a-time / batched (server CPU per request)',
            serve['cpu_ratio'], '', None)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--quick', action='store_true',
                        help='a few iterations each: checks the harness, figures mean nothing')
    parser.add_argument('--only', nargs='+', choices=BENCHMARKS, help='run only these')
    parser.add_argument('--out', default=DEFAULT_OUT, help='results file (JSON)')
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    results: Dict[str, Any] = {'command': 'python -m bench ' + ' '.join(argv or sys.argv[1:]),
                               'quick': args.quick, 'machine': common.machine()}
    started = time.monotonic()
    for name in names:
        print(f'== {name} ...', flush=True)
        begun = time.monotonic()
        results[name] = _run(name, args.quick)
        results[name]['seconds'] = round(time.monotonic() - begun, 1)
        _print(name, results[name])
    results['load_average_after'] = [round(v, 2) for v in os.getloadavg()]
    results['seconds'] = round(time.monotonic() - started, 1)
    results['summary'] = summary(results)
    common.print_table('Summary against the goals', ['figure', 'value', 'goal', ''],
                       [[r['figure'], r['value'], r['goal'], r['verdict']]
                        for r in results['summary']])
    machine = results['machine']
    print(f'\n{machine["cpu"]}, {machine["cores"]} cores; load average before '
          f'{machine["load_average"]}, after {results["load_average_after"]}; '
          f'{results["seconds"]:.0f} s')
    with open(args.out, 'w') as out:
        json.dump(results, out, indent=1, default=str)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

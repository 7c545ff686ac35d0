#!/usr/bin/env python3
"""
Randomized campaign: thousands of hostile policy replies through the real rt2_controller node.

Starts the scripted policy server (test/support), an rt2_controller process configured for speed
(20 ms decision steps, retries at once, a 100 Hz camera of 32x24 frames) and a harness that
records every command the arm would receive; serves the replies of a seeded random mix (see
test/support/hostile_replies.py) in order, optionally kills the policy server mid-inference a
few times and brings it back; prints a table and writes a JSON report: commands beyond the limits
(must be 0) and halts by cause.

    ROS_DOMAIN_ID=42 .venv/bin/python scripts/hostile_campaign.py --replies 10000 --kills 5
    ROS_DOMAIN_ID=42 .venv/bin/python scripts/hostile_campaign.py --out campaign.json

test_hostile_node.py runs the same campaign with 300 replies.
"""
import argparse
import json
import os
from pathlib import Path
import random
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'test'))

MOVE = [1, 0.01, 0.0, 0.0, 0.0, 0.0, 0.02, 1.0]
POLICY_TIMEOUT = 0.3
PARAMS = {
    'policy.backend': 'openvla_http', 'policy.timeout_s': POLICY_TIMEOUT, 'action_space': 'rt2',
    'control_rate_hz': 50.0, 'watchdog.image_timeout_s': 0.3, 'watchdog.policy_grace_s': 0.2,
    'halt.zero_cycles': 5, 'limits.max_linear_speed': 0.1, 'limits.max_angular_speed': 0.5,
    'gripper.open_position': 0.08, 'gripper.closed_position': 0.0,
    'diagnostics.period_s': 0.5, 'viz.annotated_image': False, 'viz.rate_hz': 0.0,
    'decision_period_s': 0.02, 'inference.retry_interval_s': 0.0,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--replies', type=int, default=10000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--kills', type=int, default=0,
                        help='kill the policy server mid-inference this many times (restarted)')
    parser.add_argument('--chunk', type=int, default=500, help='replies queued at a time')
    parser.add_argument('--out', type=Path, help='write the JSON report here')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')

    import numpy as np
    from support.fault_rig import FaultRig
    from support.hostile_campaign import run_campaign, SPEED_CAMERA
    from support.hostile_replies import random_replies
    from support.ros_harness import NodeProcess, RosHarness
    from support.scripted_policy_server import action, hang, ScriptedPolicyServer

    rng = np.random.default_rng(args.seed)
    replies = random_replies(rng, args.replies, POLICY_TIMEOUT)
    chunks = max(2, args.replies // args.chunk + 1)
    kill_after = {int(k) for k in rng.choice(np.arange(1, chunks), replace=False,
                                             size=min(args.kills, chunks - 1))}
    load_start = os.getloadavg()
    started = time.time()
    with ScriptedPolicyServer() as server:
        params = dict(PARAMS, **{'policy.url': server.url})
        with NodeProcess(params=params) as node, RosHarness() as h:
            node.wait_for_log('active', timeout=120)
            rig = FaultRig(server, node, h, params, MOVE)
            rig.camera_args = dict(SPEED_CAMERA)
            kills = []

            def progress(done, seconds):
                print(f'  {done:6d} replies served in {seconds:7.1f} s', flush=True)
                if done // args.chunk in kill_after and server.alive():
                    # mid-inference: the node is waiting on a hung request when the host dies
                    seen = server.counts()['requests']
                    server.push(hang(5.0))
                    server.wait_for_requests(seen + 1, timeout=10)
                    server.kill()
                    kills.append(time.time())
                    server.restart()
                    server.set_default(action(MOVE))

            report = run_campaign(rig, replies, chunk=args.chunk, progress=progress)
            h.stop_camera()
            traceback_in_log = 'Traceback' in node.log()
    result = json.loads(report.to_json())
    result.update({
        'seed': args.seed, 'server_kills': len(kills), 'wall_s': time.time() - started,
        'load_average_start': load_start, 'load_average_end': os.getloadavg(),
        'cpu_count': os.cpu_count(), 'traceback_in_node_log': traceback_in_log,
    })
    print(report.table())
    print(f'policy server killed mid-inference and restarted: {len(kills)} times')
    print(f'load average at start {load_start[0]:.2f}, at end {os.getloadavg()[0]:.2f} '
          f'({os.cpu_count()} CPUs)')
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True))
        print(f'report written to {args.out}')
    return 0 if report.violations == 0 and not traceback_in_log else 1


if __name__ == '__main__':
    sys.exit(main())

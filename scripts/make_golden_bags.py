#!/usr/bin/env python3
"""
Regenerate the replay-test golden bag pair in test/data/ (run from the repository root).

test/data/replay_input: a 3 s session as the robot would record it for the controller - an 8x8
camera at 10 Hz, the latched instruction, ee_pose - written by rt2_ros.bags.synthetic.
test/data/replay_golden: what rt2_controller publishes when replayed on it with the scripted
policy below (`rt2 bag replay-test ... --update-golden`).

The policy is the scripted OpenVLA-protocol server from test/support: its k-th answer is
SCRIPT[k] whatever the image, so the golden bag pins the controller - execution of
displacements as velocities, the speed clamp of the safety stage, gripper mapping, terminate -
and not the floating-point behaviour of a model on a particular CPU. The test runs the same
script against the committed golden bag.

    .venv/bin/python scripts/make_golden_bags.py
"""
from pathlib import Path
import shutil
import subprocess
import sys

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / 'test' / 'data'
INPUT = DATA / 'replay_input'
GOLDEN = DATA / 'replay_golden'

# rt2 space: terminate (0 = terminate), dx dy dz [m], droll dpitch dyaw [rad], gripper (1 open),
# each a displacement over one decision period (1/3 s).
SCRIPT = [
    [1, 0.010, 0.000, 0.000, 0.00, 0.00, 0.00, 1.0],   # 0.03 m/s forward, gripper open
    [1, 0.010, 0.010, -0.005, 0.00, 0.00, 0.05, 1.0],  # diagonal, down a little, yaw 0.15 rad/s
    [1, 0.050, 0.000, 0.000, 0.00, 0.00, 0.00, 1.0],   # 0.15 m/s: the safety stage clamps to 0.1
    [1, 0.000, 0.000, -0.010, 0.10, 0.00, 0.00, 0.0],  # close the gripper while rolling
    [1, 0.000, 0.000, 0.010, 0.00, 0.00, 0.00, 0.0],   # lift
    [0, 0.000, 0.000, 0.000, 0.00, 0.00, 0.00, 0.0],   # terminate the episode
]


def replay_args(server_url: str, golden: Path = GOLDEN) -> list:
    """Return the `rt2 bag replay-test` arguments the test and this script use."""
    return ['bag', 'replay-test', str(INPUT), '--golden', str(golden),
            '--policy', 'openvla_http', '--url', server_url, '--space', 'rt2']


def write_input_bag(path: Path = INPUT) -> None:
    from rt2_ros.bags.synthetic import SessionSpec, write_session
    if path.exists():
        shutil.rmtree(path)
    write_session(path, SessionSpec(
        duration_s=3.0, camera_hz=10.0, image_size=(8, 8),
        instructions=((0.0, 'pick up the red block'),),
        parts=('camera', 'instruction', 'ee_pose')), storage='mcap', distro='kilted')


def main() -> int:
    sys.path.insert(0, str(ROOT / 'test'))
    from support.scripted_policy_server import action, ScriptedPolicyServer
    write_input_bag()
    rt2 = Path(sys.executable).parent / 'rt2'
    with ScriptedPolicyServer() as server:
        server.push(*[action(values) for values in SCRIPT])
        result = subprocess.run([str(rt2), *replay_args(server.url), '--update-golden'],
                                text=True, capture_output=True, timeout=600)
    print(result.stdout, end='')
    print(result.stderr, end='', file=sys.stderr)
    for bag in (INPUT, GOLDEN):
        if bag.exists():
            size = sum(f.stat().st_size for f in bag.iterdir())
            print(f'{bag.relative_to(ROOT)}: {size / 1024:.1f} KB')
    return result.returncode


if __name__ == '__main__':
    sys.exit(main())

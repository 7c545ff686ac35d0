"""Placeholder for the rt2_sim node (built in the simulator issue)."""
import sys


def main() -> int:
    print('rt2_sim is not implemented yet', file=sys.stderr)
    return 1

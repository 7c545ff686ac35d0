"""Placeholder for the rt2_controller node (built in the controller issue)."""
import sys


def main() -> int:
    print('rt2_controller is not implemented yet', file=sys.stderr)
    return 1

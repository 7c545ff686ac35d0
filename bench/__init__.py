"""
rt2_ros benchmarks: `make bench` (python -m bench) runs them all; each also runs alone.

Speed is measured here, never asserted in tests. Every figure in docs/latency.md's tables comes
from `python -m bench`, which also writes bench/results.json.
"""

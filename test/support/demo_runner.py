"""
Run `rt2 demo` in a fresh process for tests and check that it leaves nothing behind.

    python test/support/demo_runner.py DEMO_ARGS...

The exit status is the command's, or 3 when a Python thread other than the main one is still
alive after the command returned (the demo must stop its executor, nodes and policy workers). A
fresh process keeps rclpy, DDS and torch state out of the pytest process, whose later forks
(flake8's worker pool) must not inherit it.
"""
import gc
import sys
import threading


def main(argv) -> int:
    from rt2_ros.cli.main import main as rt2_main
    code = rt2_main(['demo', *argv])
    gc.collect()  # rclpy reports callbacks that failed during shutdown when they are collected
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if left:
        print(f'threads still alive after rt2 demo returned: {left}', file=sys.stderr)
        return 3
    return code


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

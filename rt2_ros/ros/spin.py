"""
One way to run a simple node as a process, shared by the sim-side executables.

Ctrl-C and `ros2 launch` shutdowns end the spin quietly, the node is destroyed and the context
shut down whatever happened, and a ValueError raised while building the node (a bad parameter
given at start-up) becomes exit status 2 with one line on stderr instead of a traceback.
"""
import sys
from typing import Any, Callable, Optional, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException


def spin_node(name: str, factory: Callable[[], Any], args: Optional[Sequence[str]] = None) -> int:
    """Build the node with factory, spin it until shutdown; return the exit status."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:
        print(f'{name}: error: {exc}', file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0

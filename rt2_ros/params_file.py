"""
ROS 2 parameter files from flat, dotted parameter names.

Our nodes' parameters are named `policy.url`, `limits.max_linear_speed`, ...; a params file
nests them (`policy: {url: ...}`) under `/**/<node name>: ros__parameters`, the wildcard
matching the node in any namespace. The replay tool, the sim evaluator and the test harness all
start nodes from such a file, so the layout lives here once.
"""
from typing import Any, Dict

import yaml


def nest(flat: Dict[str, Any]) -> Dict[str, Any]:
    """Turn {'a.b': 1} into {'a': {'b': 1}}."""
    tree: Dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        parts = name.split('.')
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def params_file_text(node_name: str, flat: Dict[str, Any]) -> str:
    """Return the YAML of a params file giving node_name (in any namespace) these values."""
    return yaml.safe_dump({f'/**/{node_name}': {'ros__parameters': nest(flat)}},
                          sort_keys=False)

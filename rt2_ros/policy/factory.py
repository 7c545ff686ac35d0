"""
The backend registry: a backend name (`policy.backend`, `--backend`, `--policy`) to its class.

One registry for every entry point - the controller node, `rt2 demo`, `rt2 eval-sim`,
`rt2 bag eval` and `rt2 serve` - holding three kinds of names:
- the built-in backends below;
- backends other packages register under the entry-point group `rt2_ros.policy_backends`
  (`my_backend = my_package.module:MyPolicy` in that package's pyproject.toml or setup.py): adding
  one is one file in the user's own package, no change here (docs/ros_integration.md has a worked
  example, which test_policy_registry.py installs and runs);
- `module:Class`, a Policy subclass importable by that path, without registering anything.

Classes are imported on demand so a robot that only talks to a remote server never needs torch,
and one that runs a local model never needs websockets.
"""
import importlib
from importlib import metadata
from typing import Dict, Optional

from rt2_ros.policy.base import Policy, PolicyConfig

ENTRY_POINT_GROUP = 'rt2_ros.policy_backends'
BUILTIN_BACKENDS: Dict[str, str] = {
    'openvla_http': 'rt2_ros.policy.openvla_http:OpenVLAHttpPolicy',
    'openai': 'rt2_ros.policy.openai_compat:OpenAICompatPolicy',
    'openpi': 'rt2_ros.policy.openpi_ws:OpenPiPolicy',
    'local': 'rt2_ros.policy.local:LocalTransformersPolicy',
    'expert': 'rt2_ros.policy.expert:SimExpertPolicy',
}


class UnknownBackendError(ValueError):
    """The backend name is neither registered nor a module:Class path."""


def registered_backends() -> Dict[str, str]:
    """Return {name: 'module:Class'}: the built-in backends, then the installed plug-ins."""
    found = dict(BUILTIN_BACKENDS)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)  # a plug-in cannot replace a built-in
    return found


def backend_names() -> str:
    """Return the registered names for messages: 'a, b, c or module:Class'."""
    return ', '.join(registered_backends()) + ' or module:Class'


def backend_error(name: str) -> Optional[str]:
    """Return why name is not a usable backend name (None if it is), without importing it."""
    if name in registered_backends():
        return None
    module_name, _, class_name = name.partition(':')
    if module_name and class_name and ':' not in class_name:
        return None
    return f'unknown policy backend {name!r}; choose one of {backend_names()}'


def backend_class(name: str) -> type:
    """Import and return the Policy subclass for a registered name or a module:Class path."""
    error = backend_error(name)
    if error is not None:
        raise UnknownBackendError(error)
    target = registered_backends().get(name, name)
    module_name, class_name = target.split(':', 1)
    cls = importlib.import_module(module_name)
    for part in class_name.split('.'):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise UnknownBackendError(f'policy backend {name!r} ({target}) is not a subclass of '
                                  'rt2_ros.policy.base.Policy')
    return cls


def make_policy(config: PolicyConfig) -> Policy:
    """Instantiate the backend named by config.backend with that config."""
    return backend_class(config.backend)(config)

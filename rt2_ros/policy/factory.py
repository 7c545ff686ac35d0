"""
Backend registry: a backend name (the `policy.backend` parameter) to its class.

Classes are imported on demand so a robot that only talks to a remote server never needs torch,
and one that runs a local model never needs websockets.
"""
import importlib
from typing import Dict

from rt2_ros.policy.base import Policy, PolicyConfig

BACKENDS: Dict[str, str] = {
    'openvla_http': 'rt2_ros.policy.openvla_http:OpenVLAHttpPolicy',
    'openai': 'rt2_ros.policy.openai_compat:OpenAICompatPolicy',
    'openpi': 'rt2_ros.policy.openpi_ws:OpenPiPolicy',
    'local': 'rt2_ros.policy.local:LocalTransformersPolicy',
    'expert': 'rt2_ros.policy.expert:SimExpertPolicy',
}


class UnknownBackendError(ValueError):
    """The backend name is not registered."""


def make_policy(config: PolicyConfig) -> Policy:
    """Instantiate the backend named by config.backend with that config."""
    target = BACKENDS.get(config.backend)
    if target is None:
        raise UnknownBackendError(
            f'unknown policy backend {config.backend!r}; choose one of {", ".join(BACKENDS)}')
    module_name, class_name = target.split(':')
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(config)

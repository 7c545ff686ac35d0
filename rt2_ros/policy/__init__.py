"""Policy clients and local models behind one interface (pure Python; no rclpy)."""
from rt2_ros.policy.base import (
    Observation, Policy, PolicyConfig, PolicyError, PolicyInvalidAction, PolicyProtocolError,
    PolicyResult, PolicyTimeout, PolicyTiming, PolicyUnavailable, validate_actions,
)

__all__ = [
    'Observation', 'Policy', 'PolicyConfig', 'PolicyError', 'PolicyInvalidAction',
    'PolicyProtocolError', 'PolicyResult', 'PolicyTimeout', 'PolicyTiming', 'PolicyUnavailable',
    'validate_actions',
]

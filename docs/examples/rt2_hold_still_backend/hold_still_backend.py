"""
An example rt2_ros policy backend: it keeps the arm still and never ends the episode.

A real backend would call its model or server in infer(); everything around it - the action
space, validation, timing - is what rt2_ros expects of any backend.
"""
import time

import numpy as np
from rt2_ros.actions import load_action_space
from rt2_ros.policy.base import Observation, Policy, PolicyConfig, PolicyResult, PolicyTiming


class HoldStillPolicy(Policy):
    """Answer every observation with 'continue, no motion'."""

    name = 'hold_still'

    def __init__(self, config: PolicyConfig) -> None:
        # config carries the controller's policy.* parameters (url, timeout_s, extra, ...)
        super().__init__(load_action_space(config.action_space))

    def infer(self, observation: Observation) -> PolicyResult:
        start = time.perf_counter()
        space = self.space
        action = np.clip(np.zeros(space.size), space.lows, space.highs)
        if space.terminate_index is not None:
            action[space.terminate_index] = 1.0  # label 1 = continue (config/action_spaces)
        return PolicyResult(actions=action[None, :], names=tuple(space.names),
                            raw='hold still', timing=PolicyTiming(time.perf_counter() - start),
                            terminate=[False] if space.terminate_index is not None else None)

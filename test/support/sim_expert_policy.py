"""
A privileged policy for tests: the sim's scripted expert, answering from the simulator's state.

What cannot exist here is a trained model that reliably solves a task, yet the demo's success
path (sim reports success -> episode ends -> result card) must be exercised for real. This
Policy subclass (controller backend `support.sim_expert_policy:SimExpertPolicy`) reads the world
of the rt2_sim node running in the same process - the test registers it with `watch_sims`, which
wraps rt2_ros.demo.demo_node.SimNode - and answers with the noise-free expert's rt2 action, so
everything after the policy (controller, safety stage, twists, sim) is the real loop.
"""
import time
from typing import List

import numpy as np
from rt2_ros.actions import load_action_space
from rt2_ros.policy.base import (
    Observation, Policy, PolicyConfig, PolicyResult, PolicyTiming, PolicyUnavailable,
)
from rt2_ros.sim.expert import ExpertNoise, ScriptedExpert

SIMS: List = []


def watch_sims(monkeypatch) -> None:
    """Make every SimNode the demo builds register itself in SIMS."""
    import rt2_ros.demo.demo_node as demo_node

    class RegisteredSimNode(demo_node.SimNode):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            SIMS.append(self)

    monkeypatch.setattr(demo_node, 'SimNode', RegisteredSimNode)
    SIMS.clear()


class SimExpertPolicy(Policy):
    """The noise-free scripted expert on the newest in-process sim."""

    name = 'sim_expert'

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(load_action_space(config.action_space))
        self._episode = None
        self._expert = None

    def infer(self, observation: Observation) -> PolicyResult:
        start = time.perf_counter()
        if not SIMS:
            raise PolicyUnavailable('no simulator registered (call watch_sims first)')
        node = SIMS[-1]
        if node.episode_id != self._episode:
            self._episode = node.episode_id
            self._expert = ScriptedExpert(node.episode.task, ExpertNoise.none())
        action, _ = self._expert.act(node.sim)
        action = np.asarray(action, dtype=float)
        return PolicyResult(actions=action[None, :], names=tuple(self.space.names),
                            raw=' '.join(f'{v:.4f}' for v in action),
                            timing=PolicyTiming(time.perf_counter() - start),
                            terminate=[bool(action[0] == 0.0)])

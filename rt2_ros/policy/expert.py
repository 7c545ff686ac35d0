"""
The simulator's scripted expert as a policy backend (`policy.backend: expert`).

It answers each decision from rt2_sim's privileged world state - the state published with the
very camera frame the controller decided on - so it runs through everything a learned policy
runs through: the controller's decision loop, the rt2 codec, the action mapper and the safety
stage. Its success rate is therefore the ceiling of what imitating the training data can reach
in that setting, and a check that the execution path is right: the expert's demonstrations
were recorded through the same path.

The state comes from rt2_sim's `~/episode` and `~/state` topics; `rt2_controller` hands the
backend its node (attach_node) and rt2_ros.ros.sim_state subscribes there. Settings (`extra`):
`sim_node` (default `rt2_sim`, resolved in the controller's namespace). The action space must
be `rt2`, the expert's.
"""
import time
from typing import Any, Callable, Dict, Optional, Tuple

from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.policy.base import (
    decoded_to_result, Observation, Policy, PolicyConfig, PolicyResult, PolicyTiming,
    PolicyUnavailable,
)
from rt2_ros.policy.settings import extra_str, PolicyConfigError
from rt2_ros.sim.expert import ExpertNoise, ScriptedExpert
from rt2_ros.sim.tasks import Task
from rt2_ros.sim.world import sim_from_snapshot

# stamp, timeout -> (task dict, world state dict) of the frame with that stamp
StateSource = Callable[[float, float], Tuple[Dict[str, Any], Dict[str, Any]]]


class SimExpertPolicy(Policy):
    """Noise-free scripted expert acting on the simulator's state for each camera frame."""

    name = 'expert'

    def __init__(self, config: PolicyConfig) -> None:
        space = load_action_space(config.action_space)
        if space.name != 'rt2':
            raise PolicyConfigError(f'the expert acts in the rt2 action space, not {space.name}')
        super().__init__(space)
        self.codec = make_codec(space)
        self.timeout_s = float(config.timeout_s)
        self.sim_node = extra_str(config.extra, 'sim_node', 'rt2_sim')
        self._source: Optional[StateSource] = None
        self._feed: Any = None

    def attach_node(self, node: Any) -> None:
        """Subscribe to the simulator's state on the controller's node."""
        from rt2_ros.ros.sim_state import SimStateFeed

        self._feed = SimStateFeed(node, self.sim_node)
        self._source = self._feed.wait_for

    def attach_source(self, source: StateSource) -> None:
        """Read states from another source (a pure rollout, a test)."""
        self._source = source

    def infer(self, observation: Observation) -> PolicyResult:
        if self._source is None:
            raise PolicyUnavailable('the expert needs the simulator state: run it in '
                                    'rt2_controller next to rt2_sim')
        start = time.perf_counter()
        task, state = self._source(observation.stamp, self.timeout_s)
        expert = ScriptedExpert(Task(**task), ExpertNoise.none())
        _, intended = expert.act(sim_from_snapshot(state))
        bins = self.codec.values_to_bins(intended)
        text = ' '.join(str(int(b)) for b in bins)
        elapsed = time.perf_counter() - start
        return decoded_to_result([self.codec.from_bins(bins)], text,
                                 PolicyTiming(request_s=elapsed, inference_s=elapsed))

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        self._source = None

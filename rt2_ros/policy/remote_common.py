"""
What every remote backend does with a server's numbers before the controller may see them.

A server is outside our safety boundary: whatever it sends must be checked against the action
space the controller was configured with - width, finiteness, the range the space can express
(after OpenVLA-style un-normalization when statistics are configured) and valid terminate labels.
"""
from typing import Any, Optional

import numpy as np

from rt2_ros.actions import (
    ActionSpace, ActionSpaceError, load_action_space, load_dataset_statistics, make_codec,
    StatisticsError, unnormalizer_from_statistics,
)
from rt2_ros.actions.codec import Codec
from rt2_ros.policy.base import (
    PolicyConfig, PolicyResult, PolicyTiming, terminate_flags, validate_actions,
)
from rt2_ros.policy.settings import extra_bool, PolicyConfigError


def load_codec(config: PolicyConfig) -> Codec:
    """
    Build the codec for config.action_space, un-normalizing when statistics are configured.

    config.extra['statistics'] names an OpenVLA dataset_statistics.json; with it, the bounds an
    answer is checked against are those of the un-normalized (robot-unit) actions for
    config.unnorm_key.
    """
    try:
        space = load_action_space(config.action_space)
        unnormalizer = None
        stats_path = config.extra.get('statistics', '')
        if stats_path:
            stats = load_dataset_statistics(stats_path)
            unnormalizer = unnormalizer_from_statistics(stats, config.unnorm_key or None,
                                                        space.size)
        return make_codec(space, unnormalizer)
    except (ActionSpaceError, StatisticsError, ValueError) as exc:
        raise PolicyConfigError(str(exc)) from None


def declared_bounds(codec: Codec) -> np.ndarray:
    """Return the (2, dims) [low, high] of each dimension in output (robot) units."""
    space = codec.space
    raw = np.array([space.lows, space.highs], dtype=np.float64)
    if codec.unnormalizer is None:
        return raw
    mapped = codec.unnormalizer.unnormalize(raw)
    return np.stack([mapped.min(axis=0), mapped.max(axis=0)])


class ActionChecker:
    """
    Validate server actions against the space's bounds (unless extra check_bounds is false).

    Servers send continuous values (bin centres, un-normalized, or a diffusion policy's output),
    so the bounds are each dimension's declared [low, high] - mapped through the un-normalizer
    when statistics are configured - not the narrower range of decodable bin values.
    """

    def __init__(self, codec: Codec, config: PolicyConfig) -> None:
        self.codec = codec
        self.space: ActionSpace = codec.space
        self.bounds: Optional[np.ndarray] = None
        if extra_bool(config.extra, 'check_bounds', True):
            self.bounds = declared_bounds(codec)

    def result(self, values: Any, raw: Any, timing: PolicyTiming,
               plan: Optional[str] = None) -> PolicyResult:
        """Return a PolicyResult for values of shape (dims,) or (horizon, dims), or raise."""
        actions = validate_actions(self.space, values, self.bounds)
        terminate = terminate_flags(self.space, actions)
        return PolicyResult(actions=actions, names=self.space.names, raw=raw, timing=timing,
                            terminate=terminate, plan=plan)

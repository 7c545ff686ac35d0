"""
The one interface every policy backend implements, and its typed failures.

The controller treats a policy as an untrusted, slow, remote function: it may be unreachable,
time out, speak garbage, or produce an action that is not one. Each of those is a distinct
exception type so the node can halt and count the cause; a backend never returns an action it
did not validate.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from rt2_ros.actions import ActionSpace, DecodedAction


class PolicyError(Exception):
    """Base of all policy failures; `cause` is a short stable name used in counters."""

    cause = 'policy_error'


class PolicyUnavailable(PolicyError):
    """The policy cannot be reached (connection refused, DNS, server gone, model not loaded)."""

    cause = 'unavailable'


class PolicyTimeout(PolicyError):
    """The policy did not answer within its deadline."""

    cause = 'timeout'


class PolicyProtocolError(PolicyError):
    """The policy answered, but not in the protocol (bad status, bad body, OpenVLA's "error")."""

    cause = 'protocol'


class PolicyInvalidAction(PolicyError):
    """The answer was well-formed but is not a valid action (decode failed, NaN, wrong size)."""

    cause = 'invalid_action'


@dataclass
class Observation:
    """
    What a policy sees at one decision.

    image: HxWx3 uint8 RGB. stamp: the camera time of the image in seconds (ROS time), used to
    drop results that are older than what is already executing. state: optional proprioception
    (e.g. end-effector pose and gripper). gripper: the gripper's measured opening, 0 shut to 1
    fully open (from its joint state), which a prompt template with `{gripper}` states.
    extras: further named inputs (other cameras, ...).
    jpeg: the camera's own JPEG file of exactly this image (a CompressedImage used without
    resizing), or None; backends that send JPEG pass it on instead of encoding the image again.
    """

    image: np.ndarray
    instruction: str
    stamp: float = 0.0
    state: Optional[np.ndarray] = None
    gripper: Optional[float] = None
    extras: Dict[str, Any] = field(default_factory=dict)
    jpeg: Optional[bytes] = None


@dataclass
class PolicyTiming:
    """
    Seconds spent: request = whole call as the client saw it; inference = model only.

    inference is None when the backend cannot know it (a server that does not report it).
    """

    request_s: float
    inference_s: Optional[float] = None
    encode_s: float = 0.0


@dataclass
class PolicyResult:
    """
    A validated decision: one action or a chunk, in the action space's units.

    actions has shape (horizon, dims); horizon is 1 for RT-2/OpenVLA-style policies.
    terminate[i] is True where step i ends the episode (None when the space has no such dim).
    raw is what the model produced (text, ids or the server's array) for logging and debugging.
    """

    actions: np.ndarray
    names: tuple
    raw: Any
    timing: PolicyTiming
    terminate: Optional[List[bool]] = None
    plan: Optional[str] = None
    decoded: Optional[List[DecodedAction]] = None

    @property
    def action(self) -> np.ndarray:
        return self.actions[0]

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])


@dataclass
class PolicyConfig:
    """
    Backend-agnostic settings, mirroring the controller's `policy.*` parameters.

    Secrets are never stored here: api_key_env names an environment variable to read.
    """

    backend: str = 'local'
    url: str = ''
    timeout_s: float = 2.0
    connect_timeout_s: float = 1.0
    model_path: str = ''
    unnorm_key: str = ''
    action_space: str = 'rt2'
    api_key_env: str = ''
    prompt_template: str = ''
    model_name: str = ''
    verify_tls: bool = True
    ca_cert: str = ''
    max_response_bytes: int = 1 << 20
    device: str = 'auto'
    extra: Dict[str, Any] = field(default_factory=dict)


class Policy(ABC):
    """A vision-language-action policy. Implementations must be safe to call from one thread."""

    name = 'policy'

    def __init__(self, space: ActionSpace) -> None:
        self.space = space

    @abstractmethod
    def infer(self, observation: Observation) -> PolicyResult:
        """Return a validated decision or raise a PolicyError subclass."""

    def reset(self) -> None:
        """Forget per-episode state (called when a new instruction starts an episode)."""

    def close(self) -> None:
        """Release connections, sessions and models."""

    def __enter__(self) -> 'Policy':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def validate_actions(space: ActionSpace, actions: Any,
                     bounds: Optional[np.ndarray] = None,
                     tolerance: float = 1e-6) -> np.ndarray:
    """
    Turn a backend's raw numbers into a (horizon, dims) float64 array or raise.

    Accepts a flat vector of one action or a 2-D chunk. Rejects non-numeric, empty, wrong width,
    non-finite values and (when bounds, a (2, dims) array, are given) values outside them:
    a value far outside what the space can express means the model or server is broken, and
    the safe reaction is to halt, not to clamp it into a plausible command.
    """
    try:
        array = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError):
        raise PolicyInvalidAction('actions are not numeric') from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0:
        raise PolicyInvalidAction(f'expected (dims,) or (horizon, dims), got {array.shape}')
    if array.shape[1] != space.size:
        raise PolicyInvalidAction(
            f'expected {space.size} values per action ({" ".join(space.names)}), '
            f'got {array.shape[1]}')
    if not np.all(np.isfinite(array)):
        raise PolicyInvalidAction('action contains NaN or infinity')
    if bounds is not None:
        low = np.asarray(bounds[0], dtype=np.float64)
        high = np.asarray(bounds[1], dtype=np.float64)
        slack = tolerance * np.maximum(1.0, np.abs(high - low))
        outside = (array < low - slack) | (array > high + slack)
        if np.any(outside):
            step, dim = (int(i) for i in np.argwhere(outside)[0])
            raise PolicyInvalidAction(
                f'{space.names[dim]} = {array[step, dim]:.6g} at step {step} is outside '
                f'[{low[dim]:.6g}, {high[dim]:.6g}]')
    return array


def terminate_flags(space: ActionSpace, actions: np.ndarray) -> Optional[List[bool]]:
    """Per-step terminate flags from a continuous chunk, using the space's terminate labels."""
    index = space.terminate_index
    if index is None:
        return None
    dim = space.dimensions[index]
    flags = []
    for value in actions[:, index]:
        label_index = int(round(float(value)))
        if not math.isclose(value, label_index, abs_tol=1e-6) or \
                not 0 <= label_index < len(dim.labels):
            raise PolicyInvalidAction(
                f'{dim.name} = {value!r} is not one of 0..{len(dim.labels) - 1}')
        flags.append(dim.labels[label_index] == 'terminate')
    return flags


def decoded_to_result(decoded: Sequence[DecodedAction], raw: Any,
                      timing: PolicyTiming) -> PolicyResult:
    """Stack decoded token actions (one per chunk step) into a PolicyResult."""
    if not decoded:
        raise PolicyInvalidAction('no actions decoded')
    actions = np.stack([d.values for d in decoded]).astype(np.float64)
    terminate = None
    if decoded[0].terminate is not None:
        terminate = [bool(d.terminate) for d in decoded]
    return PolicyResult(actions=actions, names=decoded[0].names, raw=raw, timing=timing,
                        terminate=terminate, plan=decoded[0].plan, decoded=list(decoded))

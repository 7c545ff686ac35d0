"""
Hostile policy replies for the scripted server: a catalogue of named faults and a random mix.

Each entry says which halt cause the controller must show for it (the `rt2` action space,
openvla_http backend), so tests can check both that the arm stops and that it stops for the
right reason. `expected` is None for replies the controller may act on (valid, in bounds).

    from support.hostile_replies import CATALOGUE, random_replies
    server.push(CATALOGUE['nan'].reply)
    server.push(*[r.reply for r in random_replies(rng, 300)])
"""
import base64
import json
from typing import Dict, List, NamedTuple, Optional

import numpy as np
from support.scripted_policy_server import (
    action, error_200, hang, http_status, json_value, oversized, raw,
)

DIMS = 8  # rt2: terminate dx dy dz droll dpitch dyaw gripper
LOWS = np.array([0, -0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0])
HIGHS = np.array([1, 0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0])


class Hostile(NamedTuple):
    """A scripted reply and the halt cause it must produce (None: a valid action)."""

    name: str
    reply: Dict
    expected: Optional[str]


def _numpy_json(data: bytes, dtype: str, shape: List[int]) -> bytes:
    return json.dumps({'__numpy__': base64.b64encode(data).decode(), 'dtype': dtype,
                       'shape': shape}).encode()


def _continue(values):
    out = [1.0] + [float(v) for v in values]
    return out


def catalogue(timeout_s: float) -> Dict[str, Hostile]:
    """Every fault kind once; hangs last timeout_s + 0.2 s (the client gives up first)."""
    items = [
        Hostile('nan', action([1, float('nan'), 0, 0, 0, 0, 0, 1]), 'invalid_action'),
        Hostile('inf', action([1, 0, float('inf'), 0, 0, 0, 0, 1]), 'invalid_action'),
        Hostile('huge', action([1, 1e308, -1e308, 0, 0, 0, 0, 1]), 'invalid_action'),
        Hostile('beyond_bounds', action([1, 0.051, 0, 0, 0, 0, 0, 1]), 'invalid_action'),
        Hostile('gripper_beyond', action([1, 0, 0, 0, 0, 0, 0, 1.5]), 'invalid_action'),
        Hostile('terminate_not_a_label', action([0.5, 0, 0, 0, 0, 0, 0, 1]), 'invalid_action'),
        Hostile('too_short', action([1, 0, 0, 0, 0, 0, 1]), 'invalid_action'),
        Hostile('too_long', action([1, 0, 0, 0, 0, 0, 0, 1, 0]), 'invalid_action'),
        Hostile('empty_array', action([]), 'invalid_action'),
        Hostile('chunk_wrong_width', action([[1, 0, 0, 0, 0, 0, 0]] * 3), 'invalid_action'),
        Hostile('three_dims', action([[[1, 0, 0, 0, 0, 0, 0, 1]]]), 'invalid_action'),
        Hostile('error_200', error_200(), 'policy_error'),
        Hostile('garbage', raw(b'\x00\xff\xfe garbage \x81'), 'policy_error'),
        Hostile('truncated_json', raw(b'{"__numpy__": "AAAAAAAA", "dty'), 'policy_error'),
        Hostile('html', raw(b'<html>502 Bad Gateway</html>', 200, 'text/html'), 'policy_error'),
        Hostile('json_object', json_value({'action': 'left'}), 'policy_error'),
        Hostile('json_strings', json_value(['1', '0', '0', '0', '0', '0', '0', '1']),
                'policy_error'),
        Hostile('object_dtype', raw(_numpy_json(b'\0' * 64, '|O', [8])), 'policy_error'),
        Hostile('lying_shape', raw(_numpy_json(b'\0' * 64, '<f8', [10 ** 9])), 'policy_error'),
        Hostile('bad_base64', raw(b'{"__numpy__": "!!!!", "dtype": "<f8", "shape": [8]}'),
                'policy_error'),
        Hostile('deep_nesting', raw(b'[' * 100000 + b']' * 100000), 'policy_error'),
        Hostile('oversized', oversized(2 << 20), 'policy_error'),
        Hostile('http_500', http_status(500), 'policy_error'),
        Hostile('http_503', http_status(503), 'policy_error'),
        Hostile('http_404', http_status(404), 'policy_error'),
        Hostile('http_504', http_status(504), 'policy_timeout'),
        Hostile('hang', hang(timeout_s + 0.2), 'policy_timeout'),
    ]
    return {item.name: item for item in items}


def valid(rng: np.random.Generator, extreme: bool = False) -> Hostile:
    """Return a valid in-bounds action (at the bounds with extreme=True): the node may act."""
    if extreme:
        values = np.where(rng.random(DIMS - 1) < 0.5, LOWS[1:], HIGHS[1:])
    else:
        values = rng.uniform(LOWS[1:], HIGHS[1:])
    return Hostile('valid_extreme' if extreme else 'valid', action(_continue(values)), None)


def random_replies(rng: np.random.Generator, count: int, timeout_s: float,
                   hang_fraction: float = 0.01) -> List[Hostile]:
    """
    Mix of hostile and valid replies: about 40 % valid (half of them at the bounds).

    Hostile ones are the catalogue's plus random perturbations (random lengths, random bytes,
    random magnitudes, NaN in random places); hangs are kept rare because each costs the
    client's timeout.
    """
    fixed = [h for h in catalogue(timeout_s).values() if h.name != 'hang']
    out = []
    for _ in range(count):
        draw = rng.random()
        if draw < hang_fraction:
            out.append(Hostile('hang', hang(timeout_s + 0.2), 'policy_timeout'))
        elif draw < 0.2:
            out.append(valid(rng))
        elif draw < 0.4:
            out.append(valid(rng, extreme=True))
        elif draw < 0.6:
            out.append(fixed[int(rng.integers(len(fixed)))])
        elif draw < 0.7:
            n = int(rng.choice([0, 1, 7, 9, 16, 100]))
            out.append(Hostile('random_length', action(rng.uniform(-1, 1, n).tolist()),
                               'invalid_action'))
        elif draw < 0.8:
            body = rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
            out.append(Hostile('random_bytes', raw(body), 'policy_error'))
        elif draw < 0.9:
            values = rng.uniform(LOWS, HIGHS)
            values[0] = 1.0
            index = int(rng.integers(1, DIMS))
            values[index] = float(rng.choice([1.0, -1.0])) * 10.0 ** rng.uniform(0, 300)
            out.append(Hostile('random_magnitude', action(values.tolist()), 'invalid_action'))
        else:
            values = rng.uniform(LOWS, HIGHS)
            values[0] = 1.0
            values[int(rng.integers(1, DIMS))] = float(rng.choice([np.nan, np.inf, -np.inf]))
            out.append(Hostile('random_non_finite', action(values.tolist()), 'invalid_action'))
    return out

"""
Client for OpenVLA's REST server (vla-scripts/deploy.py) and servers compatible with it.

Wire format, as deploy.py defines it: `POST /act` with the JSON body
`{"image": <json_numpy uint8 HxWx3>, "instruction": str, "unnorm_key": str}`, or, for clients
without json_numpy, `{"encoded": "<that body as a JSON string>"}`. When the observation has the
gripper's measured opening, the body also has `"gripper": <0..1>`, an extension deploy.py
ignores and `rt2 serve` passes to a model whose prompt states the gripper. The reply is the
action as a json_numpy array (a JSON string holding json_numpy text in the encoded form). On any
exception
deploy.py replies HTTP 200 with the JSON string "error", so a 200 is not success by itself.

Settings (PolicyConfig): url (the server, `/act` is appended unless present), timeout_s,
connect_timeout_s, unnorm_key, action_space, api_key_env (sent as a bearer token), verify_tls,
ca_cert, max_response_bytes; extra: `encoded` (bool, send the double-encoded form),
`statistics` (dataset_statistics.json, to check answers against un-normalized bounds),
`check_bounds` (bool, default true).
"""
import json
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from rt2_ros.policy.base import (
    Observation, Policy, PolicyConfig, PolicyInvalidAction, PolicyProtocolError, PolicyResult,
    PolicyTiming,
)
from rt2_ros.policy.http_client import HttpPolicyTransport, json_headers, raise_for_status
from rt2_ros.policy.remote_common import ActionChecker, load_codec
from rt2_ros.policy.settings import extra_bool
from rt2_ros.policy.wire import (
    decode_json_numpy, json_numpy_array, WireFormatError, WireLimits,
)

ERROR_REPLY = 'error'


def act_url(url: str) -> str:
    """Return the /act endpoint for a server URL (kept as is when it already ends in /act)."""
    path = urlsplit(url).path
    if path.rstrip('/').endswith('/act'):
        return url
    return url.rstrip('/') + '/act'


def check_image(image: Any) -> np.ndarray:
    """Return image as a C-contiguous HxWx3 uint8 array, or raise ValueError."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or \
            array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f'observation image must be HxWx3 uint8, got {array.shape} '
                         f'{array.dtype}')
    return np.ascontiguousarray(array)


class OpenVLAHttpPolicy(Policy):
    """A policy served by OpenVLA's deploy.py or anything speaking its /act protocol."""

    name = 'openvla_http'

    def __init__(self, config: PolicyConfig) -> None:
        codec = load_codec(config)
        super().__init__(codec.space)
        self.config = config
        self.url = act_url(config.url)
        self.encoded = extra_bool(config.extra, 'encoded', False)
        self.checker = ActionChecker(codec, config)
        self.transport = HttpPolicyTransport(config, user_agent='rt2_ros openvla_http')
        self.limits = WireLimits(max_message_bytes=config.max_response_bytes)

    def close(self) -> None:
        self.transport.close()

    def build_body(self, observation: Observation) -> bytes:
        """Serialize an observation as deploy.py expects it."""
        payload = {
            'image': json_numpy_array(check_image(observation.image)),
            'instruction': str(observation.instruction),
        }
        if self.config.unnorm_key:
            payload['unnorm_key'] = self.config.unnorm_key
        if observation.gripper is not None:
            payload['gripper'] = float(observation.gripper)
        text = json.dumps(payload, separators=(',', ':'))
        if self.encoded:
            text = json.dumps({'encoded': text}, separators=(',', ':'))
        return text.encode('utf-8')

    def parse_reply(self, body: bytes) -> np.ndarray:
        """Turn a 200 reply body into a float array, or raise PolicyProtocolError."""
        try:
            value = json.loads(body)
        except RecursionError:
            raise PolicyProtocolError('reply nests too deeply') from None
        except ValueError:
            raise PolicyProtocolError(f'reply is not JSON: {_snippet(body)}') from None
        if value == ERROR_REPLY:
            raise PolicyProtocolError(
                'server replied "error" (OpenVLA deploy.py reports any server-side exception '
                'this way; see the server log)')
        if isinstance(value, str):
            # The double-encoded form: a JSON string holding json_numpy text.
            try:
                value = json.loads(value)
            except RecursionError:
                raise PolicyProtocolError('reply nests too deeply') from None
            except ValueError:
                raise PolicyProtocolError(
                    f'reply is a string but not encoded JSON: {_snippet(body)}') from None
        try:
            decoded = decode_json_numpy(value, self.limits)
        except WireFormatError as exc:
            raise PolicyProtocolError(f'reply is not a valid json_numpy array: {exc}') from None
        if isinstance(decoded, dict) and 'action' in decoded:
            decoded = decoded['action']
        if isinstance(decoded, np.ndarray):
            if decoded.dtype.kind not in 'fiu':
                raise PolicyInvalidAction(f'action array has dtype {decoded.dtype}')
            return decoded.astype(np.float64)
        if isinstance(decoded, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in decoded):
            return np.asarray(decoded, dtype=np.float64)
        raise PolicyProtocolError(f'reply is not an action array: {_snippet(body)}')

    def infer(self, observation: Observation) -> PolicyResult:
        start = time.monotonic()
        body = self.build_body(observation)
        encode_s = time.monotonic() - start
        reply = self.transport.request('POST', self.url, body, json_headers())
        raise_for_status(reply, self.url)
        values = self.parse_reply(reply.body)
        timing = PolicyTiming(request_s=time.monotonic() - start,
                              inference_s=reply.header_float('x-inference-seconds'),
                              encode_s=encode_s)
        return self.checker.result(values, values, timing)


def _snippet(body: bytes, limit: int = 120) -> str:
    text = body[:limit].decode('utf-8', errors='replace')
    return repr(text + ('...' if len(body) > limit else ''))

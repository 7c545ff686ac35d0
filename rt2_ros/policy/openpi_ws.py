"""
Client for openpi's websocket policy servers (pi0, pi0-FAST, ...) and `rt2 serve`.

Protocol (openpi's serving/websocket_policy_server.py): after the websocket opens, the server
sends one msgpack map of metadata; then each request is a msgpack observation map and each reply
a msgpack map with `actions` of shape (horizon, dims) and `server_timing.infer_ms`. Arrays use
msgpack-numpy maps (rt2_ros.policy.wire). A failure on the server comes back as a text frame
(a traceback), after which the server closes the connection.

Implemented on the `websockets` sync client rather than openpi-client's WebsocketClientPolicy,
because that one retries a refused connection forever and has no receive timeout; a controller
needs both failures typed and bounded. After any failure the connection is dropped (a late reply
to a timed-out request must never be read as the answer to the next one) and the next call
reconnects.

Settings (PolicyConfig): url (ws:// or wss://, or host:port), timeout_s, connect_timeout_s,
api_key_env (sent as `Authorization: Api-Key <key>`, openpi's header), verify_tls, ca_cert,
max_response_bytes, action_space; extra: `image_key` (default `observation/image`), `prompt_key`
(`prompt`), `state_key` (`observation/state`; empty to never send state), `resize` (square side
to resize-with-pad the image to, 0 = send as is), `max_horizon` (keep at most this many chunk
steps, 0 = all), `check_bounds`. A key containing dots nests: `images.cam_high` sends
`{"images": {"cam_high": image}}`. Observation.extras are sent as additional top-level keys.
"""
import functools
import socket
import ssl
import time
from typing import Any, Dict, Optional

import numpy as np

from rt2_ros.policy.base import (
    Observation, Policy, PolicyConfig, PolicyProtocolError, PolicyResult, PolicyTimeout,
    PolicyTiming, PolicyUnavailable,
)
from rt2_ros.policy.openvla_http import check_image
from rt2_ros.policy.remote_common import ActionChecker, load_codec
from rt2_ros.policy.settings import extra_int, extra_str, PolicyConfigError, read_api_key
from rt2_ros.policy.wire import (
    as_optional_float, describe, msgpack_numpy_dumps, msgpack_numpy_loads, WireFormatError,
    WireLimits,
)
import websockets.exceptions
from websockets.protocol import State
import websockets.sync.client


def ws_uri(url: str) -> str:
    """Return a ws:// or wss:// URI for a configured URL (host:port gets ws://)."""
    if url.startswith(('ws://', 'wss://')):
        return url
    if url.startswith('http://'):
        return 'ws://' + url[len('http://'):]
    if url.startswith('https://'):
        return 'wss://' + url[len('https://'):]
    if '://' in url:
        raise PolicyConfigError(f'policy.url {url!r} must be ws://, wss:// or host:port')
    return 'ws://' + url


class BoundedReadConnection(websockets.sync.client.ClientConnection):
    """
    A websockets connection whose socket reads and writes give up after read_timeout_s.

    websockets' reader thread calls a blocking recv once select says the socket is readable.
    Over TLS, readable bytes need not hold application data: a TLS 1.3 session ticket arrives
    right after the TLS handshake, and SSL read then waits for the next record. A server that
    completes TLS and then says nothing leaves that read blocked forever, and websockets'
    cleanup after the opening-handshake timeout joins the reader, so connect() never returns.
    With a socket timeout the blocked read raises, the reader ends, and the failure stays
    typed and bounded. Idle waits between requests are spent in select, which it does not
    touch, so a quiet connection is not dropped.
    """

    def __init__(self, sock: socket.socket, protocol: Any, *, read_timeout_s: float,
                 **kwargs: Any) -> None:
        sock.settimeout(read_timeout_s)
        super().__init__(sock, protocol, **kwargs)


def resize_with_pad(image: np.ndarray, side: int) -> np.ndarray:
    """Fit image into side x side keeping its aspect ratio, padding with black (openpi's way)."""
    import cv2
    height, width = image.shape[:2]
    scale = side / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    out = np.zeros((side, side, 3), dtype=np.uint8)
    top, left = (side - new_h) // 2, (side - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resized
    return out


def put_key(target: Dict[str, Any], key: str, value: Any) -> None:
    """Set target[key] where dots in key nest maps."""
    parts = key.split('.')
    for part in parts[:-1]:
        inner = target.setdefault(part, {})
        if not isinstance(inner, dict):
            raise PolicyConfigError(f'observation key {key!r} clashes with another key')
        target = inner
    target[parts[-1]] = value


class OpenPiPolicy(Policy):
    """An openpi websocket policy server; returns whole action chunks."""

    name = 'openpi'

    def __init__(self, config: PolicyConfig) -> None:
        codec = load_codec(config)
        super().__init__(codec.space)
        if not config.url:
            raise PolicyConfigError('policy.url is empty; set the server, e.g. ws://gpu-box:8000')
        if config.timeout_s <= 0 or config.connect_timeout_s <= 0:
            raise PolicyConfigError('policy timeouts must be positive')
        self.config = config
        self.uri = ws_uri(config.url)
        self.checker = ActionChecker(codec, config)
        extra = config.extra
        self.image_key = extra_str(extra, 'image_key', 'observation/image')
        self.prompt_key = extra_str(extra, 'prompt_key', 'prompt')
        self.state_key = extra_str(extra, 'state_key', 'observation/state')
        self.resize = extra_int(extra, 'resize', 0)
        self.max_horizon = extra_int(extra, 'max_horizon', 0)
        self.limits = WireLimits(max_message_bytes=config.max_response_bytes)
        api_key = read_api_key(config.api_key_env)
        self.headers = {'Authorization': f'Api-Key {api_key}'} if api_key else None
        self.ssl_context: Optional[ssl.SSLContext] = None
        if self.uri.startswith('wss://'):
            self.ssl_context = ssl.create_default_context(cafile=config.ca_cert or None)
            if not config.verify_tls:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
        self._ws: Optional[websockets.sync.client.ClientConnection] = None
        self.server_metadata: Dict[str, Any] = {}

    # -- connection

    def connect(self) -> Dict[str, Any]:
        """Open the websocket and read the server's metadata; return the metadata."""
        self._drop()
        try:
            ws = websockets.sync.client.connect(
                self.uri, additional_headers=self.headers, compression=None,
                max_size=self.config.max_response_bytes,
                open_timeout=self.config.connect_timeout_s,
                close_timeout=0.5, ssl=self.ssl_context, user_agent_header='rt2_ros openpi',
                proxy=None, legacy=True, create_connection=functools.partial(
                    BoundedReadConnection, read_timeout_s=max(self.config.timeout_s,
                                                              self.config.connect_timeout_s)))
        except websockets.exceptions.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (502, 503):
                raise PolicyUnavailable(f'{self.uri} refused the websocket: HTTP {status}') \
                    from None
            raise PolicyProtocolError(f'{self.uri} refused the websocket: HTTP {status}') \
                from None
        except (TimeoutError, websockets.exceptions.InvalidHandshake, OSError) as exc:
            raise PolicyUnavailable(f'cannot open {self.uri}: {_short(exc)}') from None
        except websockets.exceptions.WebSocketException as exc:
            raise PolicyUnavailable(f'cannot open {self.uri}: {_short(exc)}') from None
        self._ws = ws
        metadata = self._receive(self.config.connect_timeout_s, 'metadata')
        if not isinstance(metadata, dict):
            self._drop()
            raise PolicyProtocolError(f'server metadata is not a map: {describe(metadata)}')
        self.server_metadata = metadata
        return metadata

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: B902 - closing a broken socket must not mask the cause
                pass

    def close(self) -> None:
        self._drop()

    def reset(self) -> None:
        """Nothing is kept per episode; the connection stays open."""

    def _receive(self, timeout: float, what: str) -> Any:
        assert self._ws is not None
        try:
            frame = self._ws.recv(timeout=timeout)
        except TimeoutError:
            self._drop()
            raise PolicyTimeout(f'{self.uri} sent no {what} within {timeout:g} s') from None
        except websockets.exceptions.ConnectionClosed as exc:
            self._drop()
            raise PolicyUnavailable(f'{self.uri} closed the connection ({_short(exc)})') from None
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            self._drop()
            raise PolicyUnavailable(f'{self.uri} connection failed: {_short(exc)}') from None
        if isinstance(frame, str):
            self._drop()
            raise PolicyProtocolError(f'server error: {_last_lines(frame)}')
        try:
            return msgpack_numpy_loads(frame, self.limits)
        except WireFormatError as exc:
            self._drop()
            raise PolicyProtocolError(f'{what} is not valid msgpack-numpy: {exc}') from None

    # -- inference

    def build_observation(self, observation: Observation) -> Dict[str, Any]:
        """Return the observation map sent to the server."""
        image = check_image(observation.image)
        if self.resize:
            image = resize_with_pad(image, self.resize)
        message: Dict[str, Any] = {}
        for key, value in observation.extras.items():
            message[str(key)] = value
        put_key(message, self.image_key, image)
        put_key(message, self.prompt_key, str(observation.instruction))
        if self.state_key and observation.state is not None:
            put_key(message, self.state_key, np.asarray(observation.state))
        return message

    def infer(self, observation: Observation) -> PolicyResult:
        start = time.monotonic()
        try:
            payload = msgpack_numpy_dumps(self.build_observation(observation))
        except (TypeError, WireFormatError) as exc:
            raise ValueError(f'observation cannot be sent to openpi: {exc}') from None
        encode_s = time.monotonic() - start
        if self._ws is not None and self._ws.state is not State.OPEN:
            self._drop()  # closed by the server while idle (restart, keepalive timeout)
        if self._ws is None:
            self.connect()
        try:
            self._ws.send(payload)
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            self._drop()
            raise PolicyUnavailable(f'{self.uri} connection lost: {_short(exc)}') from None
        reply = self._receive(self.config.timeout_s, 'reply')
        if not isinstance(reply, dict) or 'actions' not in reply:
            self._drop()
            raise PolicyProtocolError(f'reply has no "actions": {describe(reply)}')
        actions = reply['actions']
        if not isinstance(actions, np.ndarray) or actions.dtype.kind not in 'fiu':
            raise PolicyProtocolError(f'reply actions are not a numeric array: '
                                      f'{describe(actions)}')
        if actions.ndim == 2 and self.max_horizon:
            actions = actions[:self.max_horizon]
        timing_map = reply.get('server_timing')
        infer_ms = as_optional_float(timing_map.get('infer_ms')) \
            if isinstance(timing_map, dict) else None
        timing = PolicyTiming(request_s=time.monotonic() - start,
                              inference_s=None if infer_ms is None else infer_ms / 1000.0,
                              encode_s=encode_s)
        return self.checker.result(actions.astype(np.float64), reply, timing)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + '...'


def _last_lines(text: str, lines: int = 3, limit: int = 400) -> str:
    """Return the end of a server traceback: its exception line tells the user the cause."""
    tail = ' | '.join(line.strip() for line in text.strip().splitlines()[-lines:])
    return tail if len(tail) <= limit else tail[-limit:]

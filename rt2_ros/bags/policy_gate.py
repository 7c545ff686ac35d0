"""
A policy endpoint that replay-test puts between the controller and the policy under test.

It speaks OpenVLA's `POST /act` (so the controller talks to it with its ordinary openvla_http
client) and forwards each request to any Policy (a local model, a remote server, ...). Sitting
in the middle lets replay-test know what no ROS topic says: whether a policy call is in flight.
The replay holds simulated time still while one is, so the policy's latency - wall-clock time
that differs from run to run - takes no simulated time, and the controller's decisions land on
the same control tick in every run.
"""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import threading
import time
from typing import Any, Dict, List, Optional

import numpy as np

from rt2_ros.policy.base import Observation, Policy, PolicyError
from rt2_ros.policy.wire import (
    decode_json_numpy, json_numpy_dumps, json_numpy_loads, WireFormatError,
)

MAX_BODY_BYTES = 64 << 20


class PolicyGate:
    """An OpenVLA-protocol server on 127.0.0.1 (free port) in front of a Policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.condition = threading.Condition()
        self.started = 0
        self.finished = 0
        self.failures: List[str] = []
        self.calls: List[Dict[str, Any]] = []
        self._policy_lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.url = ''

    @property
    def in_flight(self) -> int:
        with self.condition:
            return self.started - self.finished

    def start(self) -> str:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args: Any) -> None:  # quiet: the replay prints a summary
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._reply(200 if self.path == '/healthz' else 404, b'"ok"')

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get('Content-Length') or 0)
                if not self.path.rstrip('/').endswith('/act') or length > MAX_BODY_BYTES:
                    self._reply(404 if length <= MAX_BODY_BYTES else 413, b'"bad request"')
                    return
                body = self.rfile.read(length)
                with gate.condition:
                    gate.started += 1
                try:
                    status, payload = gate.handle(body)
                finally:
                    with gate.condition:
                        gate.finished += 1
                        gate.condition.notify_all()
                self._reply(status, payload)

            def _reply(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f'http://{host}:{port}'
        self._thread = threading.Thread(target=self._server.serve_forever, name='policy-gate',
                                        daemon=True)
        self._thread.start()
        return self.url

    def handle(self, body: bytes) -> tuple:
        """Answer one /act body: (HTTP status, JSON bytes)."""
        try:
            outer = json.loads(body.decode('utf-8'))
            if isinstance(outer, dict) and 'encoded' in outer:
                payload = json_numpy_loads(outer['encoded'])
            else:
                payload = decode_json_numpy(outer)
            image = np.asarray(payload['image'])
            instruction = str(payload.get('instruction', ''))
            # the controller's reading of the gripper joint (an openvla_http extension)
            gripper = payload.get('gripper')
            gripper = None if gripper is None else float(gripper)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, WireFormatError) as exc:
            return 400, json.dumps({'detail': f'bad request: {exc}'}).encode()
        started = time.monotonic()
        try:
            with self._policy_lock:
                result = self.policy.infer(Observation(image=image, instruction=instruction,
                                                       gripper=gripper))
        except PolicyError as exc:
            self.failures.append(f'{exc.cause}: {exc}')
            return 500, json.dumps({'detail': f'{exc.cause}: {exc}'}).encode()
        actions = result.actions[0] if result.horizon == 1 else result.actions
        self.calls.append({'instruction': instruction, 'shape': list(image.shape),
                           'seconds': time.monotonic() - started})
        return 200, json_numpy_dumps(np.asarray(actions, dtype=np.float64)).encode()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while self.started != self.finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.condition.wait(remaining)
            return True

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.policy.close()

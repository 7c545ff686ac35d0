"""
A real policy server whose replies each test scripts: the way to provoke policy faults for real.

It is a FastAPI/uvicorn server in its own process, speaking OpenVLA's `POST /act` protocol
(json_numpy, both body forms), openpi's websocket protocol (at `/`, metadata first, then
msgpack-numpy) and OpenAI chat completions (`POST /v1/chat/completions`, `GET /v1/models`).
Every reply it sends comes from a queue the test fills; when the queue is empty it sends the
default reply (an all-zero motion that keeps the episode going, for the `rt2` space).

Usage from a test:

    from support.scripted_policy_server import ScriptedPolicyServer, action, die, hang

    with ScriptedPolicyServer() as server:            # starts, waits until it answers
        server.push(action([1, 0.01, 0, 0, 0, 0, 0, 1]), hang(5.0), die())
        config = PolicyConfig(backend='openvla_http', url=server.url, timeout_s=0.5)
        ...                                           # 1st call: that action; 2nd: times out;
        server.requests()                             # 3rd: the server process exits
        server.kill()                                 # or kill it yourself (SIGKILL)

Reply constructors (each returns a plain dict, usable for /act and, where it makes sense, for the
websocket; `server.push(..., protocol='ws')` queues websocket replies):
- action(values, dtype) - a json_numpy array; for the websocket an `actions` chunk (values may be
  a 2-D list). nan_action(dims), wrong_length(n) are shorthands; huge values are just values.
- json_value(value) - any JSON value as the body (e.g. a plain list, a dict).
- error_200() - OpenVLA deploy.py's HTTP 200 "error" reply.
- raw(body, status, content_type) - arbitrary bytes (garbage), any status.
- http_status(status, detail) - a JSON error with that status.
- oversized(n_bytes) - a valid-looking JSON body of n bytes (tests the client's size cap).
- hang(seconds, then=None) - wait, then send `then` (default: the default reply).
- echo(values, dim, scale) - /act only: values with values[dim] += scale * tag, where tag is
  read from the request image's top-left 8x8 pixels (see image_tag); lets a test or benchmark
  tell which camera frame a command came from. Logged requests carry `image_tag`.
- die() - the server process exits at once, without replying (server gone mid-episode).
- text(content) - the assistant text of a chat completion (`protocol='openai'` queue; the
  default there is the default action's values rounded to integers, i.e. bins, as text). raw,
  json_value, http_status, hang and die apply to that queue too.
- ws_text(text) - an openpi error text frame (then the server closes the connection).
- ws_bytes(data) - arbitrary binary frame; ws_map(value) - any msgpack map; ws_close() - close.

Command line (what ScriptedPolicyServer runs): `python scripted_policy_server.py [--port 0]
[--default-action 1,0,0,0,0,0,0,1] [--api-key-env VAR] [--tls-cert F --tls-key F]`; prints
`listening on http://...`.
Control endpoints under /_script/ (push, default, requests, counts, reset) are unauthenticated
and for tests only.
"""
import argparse
import asyncio
import base64
import json
import os
from pathlib import Path
import selectors
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

RT2_HOLD = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
OPENVLA_HOLD = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
READY_PREFIX = 'listening on '


# ---------------------------------------------------------------- reply constructors

def action(values: Sequence[Any], dtype: str = '<f8') -> Dict[str, Any]:
    """Reply with these action values (1-D for /act, 1-D or 2-D chunk for the websocket)."""
    return {'kind': 'action', 'values': _plain(values), 'dtype': dtype}


def nan_action(dims: int = 8) -> Dict[str, Any]:
    return action([float('nan')] * dims)


def wrong_length(n: int) -> Dict[str, Any]:
    return action([0.0] * n)


def json_value(value: Any) -> Dict[str, Any]:
    return {'kind': 'json', 'value': value}


def error_200() -> Dict[str, Any]:
    return json_value('error')


def raw(body: bytes, status: int = 200,
        content_type: str = 'application/json') -> Dict[str, Any]:
    return {'kind': 'raw', 'body_b64': base64.b64encode(body).decode(), 'status': status,
            'content_type': content_type}


def http_status(status: int, detail: str = 'scripted failure') -> Dict[str, Any]:
    return {'kind': 'status', 'status': status, 'detail': detail}


def oversized(n_bytes: int) -> Dict[str, Any]:
    return {'kind': 'oversized', 'bytes': int(n_bytes)}


def hang(seconds: float, then: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    return {'kind': 'hang', 'seconds': float(seconds), 'then': then}


def die() -> Dict[str, Any]:
    return {'kind': 'die'}


def echo(values: Sequence[float], dim: int, scale: float) -> Dict[str, Any]:
    return {'kind': 'echo', 'values': _plain(values), 'dim': int(dim), 'scale': float(scale)}


def image_tag(image: Any) -> int:
    """
    Return the number written into an HxWx3 image's top-left corner by tag_image().

    Mean red and green of the top-left 8x8 pixels in steps of 8 (tag = r / 8 + 32 * g / 8,
    0..1023): coarse enough to survive JPEG compression and resizing.
    """
    corner = image[:8, :8, :2].reshape(-1, 2).mean(axis=0)
    return int(round(float(corner[0]) / 8)) + 32 * int(round(float(corner[1]) / 8))


def tag_image(image: Any, tag: int, block: int = 32) -> None:
    """Write tag (0..1023) into the top-left block x block pixels of an RGB image, in place."""
    image[:block, :block, 0] = (tag % 32) * 8
    image[:block, :block, 1] = (tag // 32) * 8


def text(content: str) -> Dict[str, Any]:
    return {'kind': 'text', 'content': content}


def ws_text(text: str = 'Traceback (most recent call last):\nRuntimeError: scripted') \
        -> Dict[str, Any]:
    return {'kind': 'ws_text', 'text': text}


def ws_bytes(data: bytes) -> Dict[str, Any]:
    return {'kind': 'ws_bytes', 'b64': base64.b64encode(data).decode()}


def ws_map(value: Dict[str, Any]) -> Dict[str, Any]:
    return {'kind': 'ws_map', 'value': value}


def ws_close() -> Dict[str, Any]:
    return {'kind': 'ws_close'}


def _plain(values: Any) -> Any:
    if hasattr(values, 'tolist'):
        return values.tolist()
    if isinstance(values, (list, tuple)):
        return [_plain(v) for v in values]
    return float(values)


# ---------------------------------------------------------------- the Python API

class ScriptedPolicyServer:
    """
    Start, script and stop a scripted policy server process.

    default_action: what the server answers when nothing is queued (RT2_HOLD suits the rt2
    space: continue, no motion, gripper open; OPENVLA_HOLD the openvla space).
    api_key: when set, /act and the websocket require it (Bearer or Api-Key).
    tls: (certificate file, key file) to serve HTTPS/WSS instead of plain HTTP.
    port: 0 picks a free port; restart() comes back on the port of the previous start, so a
    client configured with the URL finds the server again (a policy host that rebooted).
    """

    def __init__(self, default_action: Sequence[float] = RT2_HOLD, host: str = '127.0.0.1',
                 api_key: Optional[str] = None, tls: Optional[Sequence[str]] = None,
                 port: int = 0) -> None:
        self.default_action = [float(v) for v in default_action]
        self.host = host
        self.api_key = api_key
        self.tls = tls
        self.process: Optional[subprocess.Popen] = None
        self.url = ''
        self.port = port

    @property
    def act_url(self) -> str:
        return self.url + '/act'

    @property
    def ws_url(self) -> str:
        scheme = 'wss://' if self.url.startswith('https') else 'ws://'
        return scheme + self.url.split('://', 1)[1]

    def start(self, timeout: float = 30.0) -> 'ScriptedPolicyServer':
        """Start the process and return once it answers /healthz."""
        env = dict(os.environ)
        args = [sys.executable, str(Path(__file__).resolve()), '--host', self.host,
                '--port', str(self.port),
                '--default-action', ','.join(repr(v) for v in self.default_action)]
        if self.api_key:
            env['SCRIPTED_POLICY_SERVER_KEY'] = self.api_key
            args += ['--api-key-env', 'SCRIPTED_POLICY_SERVER_KEY']
        if self.tls:
            args += ['--tls-cert', str(self.tls[0]), '--tls-key', str(self.tls[1])]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)
        self.url = wait_for_url(self.process, timeout)
        self.port = int(self.url.rsplit(':', 1)[1])
        wait_for_health(self.url, timeout)
        return self

    def restart(self, timeout: float = 30.0) -> 'ScriptedPolicyServer':
        """Start again on the same port after kill() or die() (queued replies are gone)."""
        self.stop()
        return self.start(timeout)

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        response = _unverified(method, self.url + '/_script/' + path,
                               data=None if payload is None else json.dumps(payload),
                               headers={'Content-Type': 'application/json'}, timeout=10)
        response.raise_for_status()
        return response.json()

    def push(self, *replies: Dict[str, Any], protocol: str = 'act') -> None:
        """Queue replies for the next /act requests (protocol='ws': websocket, 'openai': chat)."""
        self._control('POST', 'push', {'protocol': protocol, 'replies': list(replies)})

    def set_default(self, reply: Dict[str, Any]) -> None:
        """Set the reply used when the /act or websocket queue is empty."""
        self._control('POST', 'default', reply)

    def requests(self) -> List[Dict[str, Any]]:
        """
        Return what the server received, in order.

        /act and websocket entries have protocol ('act'/'ws'), instruction, image_shape,
        image_dtype, unnorm_key, encoded (the double-encoded form), authorization (the header as
        sent, or None) and keys; 'openai' entries have model, prompt, regex, guided_regex,
        max_tokens, image_url_prefix, authorization.
        """
        return self._control('GET', 'requests')

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        """Poll until at least count requests arrived; return them (raises TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests()
            if len(seen) >= count:
                return seen
            if time.monotonic() > deadline:
                raise TimeoutError(f'server saw {len(seen)} requests, expected {count}')
            time.sleep(0.02)  # polling another process; no event to wait on

    def counts(self) -> Dict[str, int]:
        """Return how many replies are queued per protocol and requests were logged (cheap)."""
        return self._control('GET', 'counts')

    def reset(self) -> None:
        """Clear queued replies and the request log."""
        self._control('POST', 'reset', {})

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float = 10.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the server: the policy host vanishes without closing anything."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> 'ScriptedPolicyServer':
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _unverified(method: str, url: str, **kwargs: Any) -> Any:
    """Send a control request; test servers may use self-signed certificates."""
    import warnings

    import requests
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return requests.request(method, url, verify=False, **kwargs)


def wait_for_url(process: subprocess.Popen, timeout: float, prefix: str = READY_PREFIX) -> str:
    """Read the process's stdout until a line contains `<prefix><url>`; return the URL."""
    deadline = time.monotonic() + timeout
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                raise TimeoutError(f'server printed no URL within {timeout} s')
            if not selector.select(remaining):
                continue
            line = process.stdout.readline()
            if not line:
                err = process.stderr.read() if process.stderr else ''
                raise RuntimeError(f'server exited before it was ready:\n{err[-3000:]}')
            if prefix in line:
                return line.split(prefix, 1)[1].strip()
    finally:
        selector.close()


def wait_for_health(url: str, timeout: float) -> None:
    """Poll GET /healthz until it answers 200."""
    import requests
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _unverified('GET', url + '/healthz', timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f'{url}/healthz did not answer within {timeout} s')
        time.sleep(0.02)  # polling another process; no event to wait on


# ---------------------------------------------------------------- the server process

def build_app(default_action: List[float], api_key: Optional[str]) -> Any:
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import JSONResponse, Response
    import hmac
    import numpy as np
    from rt2_ros.policy.wire import (
        json_numpy_dumps, json_numpy_loads, msgpack_numpy_dumps, msgpack_numpy_loads,
    )

    app = FastAPI()
    state: Dict[str, Any] = {
        'act': [], 'ws': [], 'openai': [], 'default': action(default_action), 'log': [],
        'openai_default': text(' '.join(str(int(round(v))) for v in default_action)),
    }

    def authorized(header: Optional[str]) -> bool:
        if not api_key:
            return True
        if not header or ' ' not in header:
            return False
        scheme, _, token = header.partition(' ')
        return scheme.lower() in ('bearer', 'api-key') and \
            hmac.compare_digest(token.strip().encode(), api_key.encode())

    def next_reply(protocol: str) -> Dict[str, Any]:
        queue = state[protocol]
        if queue:
            return queue.pop(0)
        return state['openai_default' if protocol == 'openai' else 'default']

    def summary(protocol: str, payload: Any, encoded: bool, auth: Optional[str]) -> Dict:
        entry = {'protocol': protocol, 'encoded': encoded, 'authorization': auth,
                 'time': time.time()}
        if isinstance(payload, dict):
            entry['keys'] = sorted(str(k) for k in payload)
            entry['instruction'] = payload.get('instruction', payload.get('prompt'))
            entry['unnorm_key'] = payload.get('unnorm_key')
            image = payload.get('image', payload.get('observation/image'))
            if isinstance(image, np.ndarray):
                entry['image_shape'] = list(image.shape)
                entry['image_dtype'] = image.dtype.str
                if image.ndim == 3 and image.shape[2] >= 2 and image.size:
                    entry['image_tag'] = image_tag(image)
        return entry

    @app.get('/healthz')
    async def healthz() -> Response:
        return Response('OK\n', media_type='text/plain')

    @app.post('/_script/push')
    async def push(request: Request) -> Dict[str, Any]:
        body = await request.json()
        state[body['protocol']].extend(body['replies'])
        return {'queued': len(state[body['protocol']])}

    @app.post('/_script/default')
    async def set_default(request: Request) -> Dict[str, Any]:
        state['default'] = await request.json()
        return {}

    @app.get('/_script/requests')
    async def log() -> List[Dict[str, Any]]:
        return state['log']

    @app.get('/_script/counts')
    async def counts() -> Dict[str, int]:
        return {'act': len(state['act']), 'ws': len(state['ws']),
                'openai': len(state['openai']), 'requests': len(state['log'])}

    @app.post('/_script/reset')
    async def reset() -> Dict[str, Any]:
        state['act'].clear()
        state['ws'].clear()
        state['openai'].clear()
        state['log'].clear()
        return {}

    def act_response(reply: Dict[str, Any], encoded: bool) -> Response:
        kind = reply['kind']
        if kind == 'action':
            array = np.asarray(reply['values'], dtype=np.dtype(reply['dtype']))
            text = json_numpy_dumps(array)
            if encoded:
                text = json.dumps(text)
            return Response(text, media_type='application/json')
        if kind == 'json':
            return Response(json.dumps(reply['value']), media_type='application/json')
        if kind == 'raw':
            return Response(base64.b64decode(reply['body_b64']), status_code=reply['status'],
                            media_type=reply['content_type'])
        if kind == 'status':
            return JSONResponse({'detail': reply['detail']}, status_code=reply['status'])
        if kind == 'oversized':
            filler = max(0, reply['bytes'] - 2)
            return Response('"' + 'x' * filler + '"', media_type='application/json')
        raise ValueError(f'reply kind {kind!r} does not apply to /act')

    @app.post('/act')
    async def act(request: Request) -> Response:
        auth = request.headers.get('authorization')
        body = await request.body()
        payload: Any = None
        encoded = False
        try:
            payload = json_numpy_loads(body)
            if isinstance(payload, dict) and 'encoded' in payload:
                encoded = True
                payload = json_numpy_loads(payload['encoded'])
        except ValueError:
            payload = None
        state['log'].append(summary('act', payload, encoded, auth))
        if not authorized(auth):
            return JSONResponse({'detail': 'missing or wrong API key'}, status_code=401)
        reply = next_reply('act')
        while reply['kind'] == 'hang':
            await asyncio.sleep(reply['seconds'])
            reply = reply['then'] or state['default']
        if reply['kind'] == 'die':
            os._exit(3)
        if reply['kind'] == 'echo':
            values = list(reply['values'])
            image = payload.get('image') if isinstance(payload, dict) else None
            if isinstance(image, np.ndarray) and image.ndim == 3 and image.size:
                values[reply['dim']] += reply['scale'] * image_tag(image)
            reply = action(values)
        return act_response(reply, encoded)

    @app.get('/v1/models')
    async def models() -> Dict[str, Any]:
        return {'object': 'list', 'data': [{'id': 'scripted-vla', 'object': 'model'}]}

    @app.post('/v1/chat/completions')
    async def chat(request: Request) -> Response:
        auth = request.headers.get('authorization')
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = {}
        entry = {'protocol': 'openai', 'authorization': auth, 'time': time.time(),
                 'model': body.get('model'), 'regex': (body.get('structured_outputs') or {})
                 .get('regex'), 'guided_regex': body.get('guided_regex'),
                 'max_tokens': body.get('max_tokens')}
        try:
            parts = body['messages'][-1]['content']
            entry['prompt'] = ' '.join(p['text'] for p in parts if p.get('type') == 'text')
            entry['image_url_prefix'] = next(p['image_url']['url'][:30] for p in parts
                                             if p.get('type') == 'image_url')
        except (KeyError, IndexError, TypeError, StopIteration):
            pass
        state['log'].append(entry)
        if not authorized(auth):
            return JSONResponse({'error': {'message': 'wrong API key'}}, status_code=401)
        reply = next_reply('openai')
        while reply['kind'] == 'hang':
            await asyncio.sleep(reply['seconds'])
            reply = reply['then'] or state['openai_default']
        if reply['kind'] == 'die':
            os._exit(3)
        if reply['kind'] == 'text':
            return JSONResponse({
                'id': 'chatcmpl-scripted', 'object': 'chat.completion', 'model': 'scripted-vla',
                'choices': [{'index': 0, 'finish_reason': 'stop',
                             'message': {'role': 'assistant', 'content': reply['content']}}]})
        return act_response(reply, False)

    @app.websocket('/')
    async def openpi(websocket: WebSocket) -> None:
        auth = websocket.headers.get('authorization')
        if not authorized(auth):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        await websocket.send_bytes(msgpack_numpy_dumps({'server': 'scripted_policy_server'}))
        try:
            while True:
                frame = await websocket.receive_bytes()
                try:
                    payload = msgpack_numpy_loads(frame)
                except ValueError:
                    payload = None
                state['log'].append(summary('ws', payload, False, auth))
                reply = next_reply('ws')
                while reply['kind'] == 'hang':
                    await asyncio.sleep(reply['seconds'])
                    reply = reply['then'] or state['default']
                kind = reply['kind']
                if kind == 'die':
                    os._exit(3)
                if kind == 'action':
                    chunk = np.asarray(reply['values'], dtype=np.dtype(reply['dtype']))
                    if chunk.ndim == 1:
                        chunk = chunk[None, :]
                    await websocket.send_bytes(msgpack_numpy_dumps(
                        {'actions': chunk, 'server_timing': {'infer_ms': 1.5}}))
                elif kind == 'ws_map':
                    await websocket.send_bytes(msgpack_numpy_dumps(reply['value']))
                elif kind == 'ws_bytes':
                    await websocket.send_bytes(base64.b64decode(reply['b64']))
                elif kind == 'ws_text':
                    await websocket.send_text(reply['text'])
                    await websocket.close(code=1011)
                    return
                elif kind == 'ws_close':
                    await websocket.close(code=1000)
                    return
                else:
                    await websocket.send_text(f'reply kind {kind!r} does not apply to ws')
                    await websocket.close(code=1011)
                    return
        except WebSocketDisconnect:
            return

    return app


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Scripted policy server for tests.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--default-action', default=','.join(str(v) for v in RT2_HOLD))
    parser.add_argument('--api-key-env', default='')
    parser.add_argument('--tls-cert')
    parser.add_argument('--tls-key')
    args = parser.parse_args(argv)
    from rt2_ros.serving.runner import bind_socket, print_url, serve
    default = [float(v) for v in args.default_action.split(',')]
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    app = build_app(default, api_key)
    sock = bind_socket(args.host, args.port)
    serve(app, sock, tls_cert=args.tls_cert, tls_key=args.tls_key,
          on_ready=lambda url: print_url(url, prefix=READY_PREFIX))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
A policy server with no model and no framework, for measuring what the client side costs.

Run: python -m bench.instant_server  (prints `listening on http://127.0.0.1:PORT` and
`websocket on ws://127.0.0.1:PORT`; loopback only, port 0).

It speaks just enough of the three protocols the controller's remote backends use - OpenAI chat
completions (POST /v1/chat/completions, GET /v1/models), OpenVLA's POST /act and openpi's
websocket (metadata, then one msgpack reply per frame) - and answers each request with a
pre-serialized reply the moment its body has arrived, without parsing it. The round trip it
allows is therefore the client's encoding, the loopback transfer and the client's reply decoding:
the node's overhead, not a server framework's (a FastAPI server adds 1-2 ms per request here).
"""
import asyncio
import json
import sys

ACTION = [1.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
CHAT_REPLY = json.dumps({
    'id': 'chatcmpl-instant', 'object': 'chat.completion', 'model': 'instant',
    'choices': [{'index': 0, 'finish_reason': 'stop',
                 'message': {'role': 'assistant', 'content': '1 128 128 128 128 128 128 255'}}],
}).encode()
MODELS_REPLY = json.dumps({'object': 'list', 'data': [{'id': 'instant', 'object': 'model'}]}
                          ).encode()


def _act_reply() -> bytes:
    import numpy as np
    from rt2_ros.policy.wire import json_numpy_dumps
    return json_numpy_dumps(np.array(ACTION)).encode()


def _response(body: bytes) -> bytes:
    return (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n'
            % len(body)) + body


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                replies: dict) -> None:
    try:
        while True:
            head = await reader.readuntil(b'\r\n\r\n')
            request_line, _, rest = head.partition(b'\r\n')
            length = 0
            for line in rest.split(b'\r\n'):
                name, _, value = line.partition(b':')
                if name.strip().lower() == b'content-length':
                    length = int(value)
            if length:
                await reader.readexactly(length)
            path = request_line.split(b' ')[1] if b' ' in request_line else b'/'
            writer.write(replies.get(path.split(b'?')[0], replies[b'/act']))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _main() -> None:
    import numpy as np
    from rt2_ros.policy.wire import msgpack_numpy_dumps
    from websockets.asyncio.server import serve
    replies = {b'/v1/chat/completions': _response(CHAT_REPLY),
               b'/v1/models': _response(MODELS_REPLY), b'/act': _response(_act_reply()),
               b'/healthz': _response(b'"OK"')}
    metadata = msgpack_numpy_dumps({'server': 'instant'})
    chunk = msgpack_numpy_dumps({'actions': np.array([ACTION]),
                                 'server_timing': {'infer_ms': 0.0}})

    async def websocket(connection) -> None:
        await connection.send(metadata)
        async for _ in connection:
            await connection.send(chunk)

    http_server = await asyncio.start_server(lambda r, w: _http(r, w, replies), '127.0.0.1', 0,
                                             limit=1 << 16)
    async with serve(websocket, '127.0.0.1', 0, compression=None, max_size=1 << 24) as ws:
        http_port = http_server.sockets[0].getsockname()[1]
        ws_port = list(ws.sockets)[0].getsockname()[1]
        print(f'listening on http://127.0.0.1:{http_port}', flush=True)
        print(f'websocket on ws://127.0.0.1:{ws_port}', flush=True)
        await http_server.serve_forever()


class InstantServer:
    """Start the server in its own process (context manager); .url and .ws_url."""

    def __enter__(self) -> 'InstantServer':
        import subprocess
        self.process = subprocess.Popen([sys.executable, '-m', 'bench.instant_server'],
                                        stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip().rsplit(' ', 1)[-1]
        self.ws_url = self.process.stdout.readline().strip().rsplit(' ', 1)[-1]
        if not self.url.startswith('http://') or not self.ws_url.startswith('ws://'):
            self.process.kill()
            raise RuntimeError('instant server did not start')
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


if __name__ == '__main__':
    try:
        asyncio.run(_main())
    except KeyboardInterrupt:
        pass

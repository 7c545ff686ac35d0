"""
API-key check for every request but the health probe, as a pure ASGI middleware.

A middleware (rather than a per-route dependency) cannot be forgotten on a new route, and it
covers websockets too: a websocket without the key is closed before the handshake completes, which
the client sees as HTTP 403. Keys are compared with hmac.compare_digest so the time taken does not
reveal how much of a guess was right. Accepted headers: `Authorization: Bearer <key>` (OpenAI and
requests clients) and `Authorization: Api-Key <key>` (openpi-client).
"""
import hmac
import json
from typing import Any, Awaitable, Callable, Iterable, Optional

OPEN_PATHS = frozenset({'/healthz'})
SCHEMES = ('bearer', 'api-key')

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def key_matches(header: Optional[str], key: bytes) -> bool:
    """Tell whether an Authorization header carries key, in time independent of the guess."""
    if not header:
        return False
    scheme, _, token = header.strip().partition(' ')
    if scheme.lower() not in SCHEMES:
        return False
    return hmac.compare_digest(token.strip().encode('utf-8', errors='replace'), key)


def _header(scope: Scope, name: bytes) -> Optional[str]:
    for key, value in scope.get('headers', ()):
        if key.lower() == name:
            return value.decode('latin-1')
    return None


class ApiKeyMiddleware:
    """Reject requests without the right key (401 for HTTP, 403 at websocket handshake)."""

    def __init__(self, app: Any, key: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        if not key:
            raise ValueError('an empty API key protects nothing')
        self.app = app
        self.key = key.encode('utf-8')
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get('type')
        if kind not in ('http', 'websocket') or scope.get('path') in self.open_paths or \
                key_matches(_header(scope, b'authorization'), self.key):
            await self.app(scope, receive, send)
            return
        if kind == 'websocket':
            await receive()  # the websocket.connect event
            await send({'type': 'websocket.close', 'code': 1008})
            return
        body = json.dumps({'detail': 'missing or wrong API key'}).encode()
        await send({'type': 'http.response.start', 'status': 401, 'headers': [
            (b'content-type', b'application/json'),
            (b'content-length', str(len(body)).encode()),
            (b'www-authenticate', b'Bearer')]})
        await send({'type': 'http.response.body', 'body': body})

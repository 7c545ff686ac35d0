"""
Run an ASGI app with uvicorn on a socket we bound ourselves.

Binding first lets a caller ask for port 0 and learn the real port before serving (tests and
scripts read it from the printed URL instead of guessing a free port), and lets the command
refuse an address before any model is loaded.
"""
import ipaddress
import socket
import sys
from typing import Any, Callable, Optional, TextIO


def is_loopback(host: str) -> bool:
    """Tell whether host names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on host:port (port 0 picks a free one)."""
    infos = socket.getaddrinfo(host.strip('[]'), port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def socket_url(sock: socket.socket, tls: bool = False) -> str:
    """Return the http(s) URL a bound socket serves."""
    host, port = sock.getsockname()[:2]
    if ':' in host:
        host = f'[{host}]'
    return f'{"https" if tls else "http"}://{host}:{port}'


def serve(app: Any, sock: socket.socket, *, tls_cert: Optional[str] = None,
          tls_key: Optional[str] = None, ws_max_size: int = 16 << 20,
          log_level: str = 'warning', on_ready: Optional[Callable[[str], None]] = None,
          access_log: bool = False) -> None:
    """
    Serve app on sock until interrupted.

    on_ready(url) is called once uvicorn has started accepting connections on the socket.
    """
    import uvicorn

    config = uvicorn.Config(
        app, log_level=log_level, access_log=access_log, http='h11', ws='websockets-sansio',
        ws_max_size=ws_max_size, ws_per_message_deflate=False, lifespan='on',
        ssl_certfile=tls_cert, ssl_keyfile=tls_key,
        ssl_context_factory=_without_tickets if tls_cert else None,  # a factory means TLS
        timeout_graceful_shutdown=2, server_header=False)
    server = uvicorn.Server(config)
    url = socket_url(sock, tls=bool(tls_cert))
    if on_ready is not None:
        _call_when_started(server, lambda: on_ready(url))
    server.run(sockets=[sock])


def _without_tickets(config: Any, default_factory: Callable[[], Any]) -> Any:
    """
    Return uvicorn's TLS context with TLS 1.3 session tickets turned off.

    A ticket arrives just after the TLS handshake, before the client's first request. A
    threaded client such as websockets' sync one (openpi's reference client) then reads it on
    its reader thread while the main thread writes the WebSocket upgrade over the same TLS
    connection, and concurrent reading and writing of one TLS connection is not safe: under
    load an opening handshake can stall until the client's timeout. Without tickets nothing
    arrives until the reply. Policy clients open few, long-lived connections, so session
    resumption buys nothing here.
    """
    context = default_factory()
    context.num_tickets = 0
    return context


def _call_when_started(server: Any, callback: Callable[[], None]) -> None:
    """Invoke callback from uvicorn's startup once it is listening."""
    original = server.startup

    async def startup(*args: Any, **kwargs: Any) -> None:
        await original(*args, **kwargs)
        if server.started:
            callback()

    server.startup = startup


def print_url(url: str, stream: TextIO = sys.stdout, prefix: str = 'listening on ') -> None:
    """Print the served URL on its own line and flush (tests and scripts read it)."""
    print(f'{prefix}{url}', file=stream, flush=True)

"""
One keep-alive HTTP connection to a policy server, with every failure mapped to a policy error.

A robot controller calls the same server several times a second for hours; what it needs from the
transport is a reused connection (no TCP/TLS handshake per step), a hard bound on how long and how
much it will read, credentials that never pass through a logged parameter, TLS verification on
unless someone turns it off, and one exception type per failure cause so the node can halt and
count.

Built on the standard library's http.client, not requests: the round trip is on every decision's
critical path, and requests' per-call machinery (settings merging, hooks, adapters, the urllib3
pool) cost about 1 ms of CPU per request on the development VM against 0.2 ms for http.client -
as much as the node's whole overhead budget (`python -m bench.node_overhead`). What requests
provided is done here: TLS verification (optionally against a CA file), no proxies from the
environment, no redirects, a bounded reply, and a keep-alive connection the server closed while
idle is noticed before it is reused.
"""
from dataclasses import dataclass
import http.client
import os
import select
import socket
import ssl
import time
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

from rt2_ros.policy.base import (
    PolicyConfig, PolicyError, PolicyProtocolError, PolicyTimeout, PolicyUnavailable,
)
from rt2_ros.policy.settings import PolicyConfigError, read_api_key


@dataclass
class HttpReply:
    """A fully read, size-checked HTTP response."""

    status: int
    body: bytes
    headers: Dict[str, str]
    elapsed_s: float

    def header_float(self, name: str) -> Optional[float]:
        value = self.headers.get(name.lower())
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number >= 0 and number != float('inf') else None

    def snippet(self, limit: int = 200) -> str:
        """Start of the body as text, for error messages."""
        text = self.body[:limit].decode('utf-8', errors='replace')
        return text + ('...' if len(self.body) > limit else '')


class HttpPolicyTransport:
    """
    Send requests to a policy server over one kept-alive connection and read bounded replies.

    timeouts: connect_timeout_s bounds the TCP (and TLS) handshake; timeout_s bounds each socket
    read, and the whole reply must also arrive within connect + read timeout (checked between
    reads), so a server that drips bytes cannot hold the controller for longer than that.
    Not thread-safe: one transport per policy, one policy per worker thread.
    """

    def __init__(self, config: PolicyConfig, user_agent: str = 'rt2_ros') -> None:
        if not config.url:
            raise PolicyConfigError('policy.url is empty; set the server URL, e.g. '
                                    'http://gpu-box:8000')
        if not config.url.startswith(('http://', 'https://')):
            raise PolicyConfigError(f'policy.url {config.url!r} must start with http:// or '
                                    'https://')
        if not urlsplit(config.url).hostname:
            raise PolicyConfigError(f'policy.url {config.url!r} names no host')
        if config.timeout_s <= 0 or config.connect_timeout_s <= 0:
            raise PolicyConfigError('policy timeouts must be positive')
        if config.max_response_bytes <= 0:
            raise PolicyConfigError('policy.max_response_bytes must be positive')
        if config.ca_cert and not os.path.isfile(config.ca_cert):
            raise PolicyConfigError(f'policy.ca_cert {config.ca_cert} does not exist')
        self.config = config
        self.timeouts: Tuple[float, float] = (config.connect_timeout_s, config.timeout_s)
        self.max_response_bytes = int(config.max_response_bytes)
        self.headers: Dict[str, str] = {'User-Agent': user_agent}
        api_key = read_api_key(config.api_key_env)
        if api_key:
            self.headers['Authorization'] = f'Bearer {api_key}'
        self._ssl_context: Optional[ssl.SSLContext] = None
        self._conn: Optional[http.client.HTTPConnection] = None
        self._conn_key: Optional[Tuple[str, str, int]] = None

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = ssl.create_default_context(cafile=self.config.ca_cert or None)
            if not self.config.ca_cert and not self.config.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context

    def _connection(self, url: str, scheme: str, host: str,
                    port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        if self._conn is not None and (self._conn_key != key or _closed_by_peer(self._conn)):
            self._drop()
        if self._conn is not None:
            return self._conn
        timeout = self.config.connect_timeout_s
        if scheme == 'https':
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._tls())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise PolicyUnavailable(
                f'could not connect to {url} within {timeout:g} s') from None
        except ssl.SSLError as exc:
            conn.close()
            raise PolicyUnavailable(f'TLS failure talking to {url}: {_short(exc)}') from None
        except OSError as exc:
            conn.close()
            raise PolicyUnavailable(f'cannot reach {url}: {connection_reason(exc)}') from None
        conn.sock.settimeout(self.config.timeout_s)
        self._conn, self._conn_key = conn, key
        return conn

    def request(self, method: str, url: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> HttpReply:
        """Send one request and return the whole reply, or raise a PolicyError subclass."""
        start = time.monotonic()
        deadline = start + self.config.connect_timeout_s + self.config.timeout_s
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ('http', 'https') or not parts.hostname:
            raise PolicyUnavailable(f'cannot reach {url}: not an http(s) URL with a host')
        port = parts.port or (443 if scheme == 'https' else 80)
        target = (parts.path or '/') + (f'?{parts.query}' if parts.query else '')
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        conn = self._connection(url, scheme, parts.hostname, port)
        try:
            conn.request(method, target, body=body, headers=all_headers)
            response = conn.getresponse()
            data = self._read_body(response, url, deadline)
            response.close()  # read to the end: marks the connection free for the next request
        except PolicyError:
            self._drop()
            raise
        except TimeoutError:
            self._drop()
            raise PolicyTimeout(
                f'{url} did not answer within {self.config.timeout_s:g} s') from None
        except http.client.RemoteDisconnected:
            self._drop()
            raise PolicyUnavailable(
                f'cannot reach {url}: server closed the connection without replying') from None
        except http.client.IncompleteRead:
            self._drop()
            raise PolicyUnavailable(f'{url} dropped the connection mid-reply') from None
        except ssl.SSLError as exc:
            self._drop()
            raise PolicyUnavailable(f'TLS failure talking to {url}: {_short(exc)}') from None
        except http.client.HTTPException as exc:
            self._drop()
            raise PolicyProtocolError(f'{url} did not answer in HTTP: {_short(exc)}') from None
        except OSError as exc:
            self._drop()
            raise PolicyUnavailable(f'cannot reach {url}: {connection_reason(exc)}') from None
        if response.will_close:
            self._drop()
        reply_headers = {k.lower(): v for k, v in response.getheaders()}
        return HttpReply(response.status, data, reply_headers, time.monotonic() - start)

    def _read_body(self, response: http.client.HTTPResponse, url: str, deadline: float) -> bytes:
        declared = response.getheader('Content-Length')
        if declared is not None and declared.isdigit() and \
                int(declared) > self.max_response_bytes:
            raise PolicyProtocolError(
                f'{url} announced a {declared}-byte reply, more than the '
                f'{self.max_response_bytes}-byte limit')
        chunks = []
        size = 0
        while True:
            chunk = response.read1(65536)  # at most one socket read: the deadline stays checked
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_response_bytes:
                raise PolicyProtocolError(
                    f'{url} sent more than the {self.max_response_bytes}-byte reply limit')
            if time.monotonic() > deadline:
                raise PolicyTimeout(f'{url} did not finish its reply in time')
            chunks.append(chunk)
        return b''.join(chunks)


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """
    Return True when an idle kept-alive connection can no longer be used.

    Between requests nothing may arrive on the socket; if it is readable, the server closed it
    (idle timeout, restart) or sent something unasked - either way it must not be reused.
    """
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def raise_for_status(reply: HttpReply, url: str) -> None:
    """Map a non-200 reply to the policy error a controller should count it as."""
    if reply.status == 200:
        return
    detail = reply.snippet()
    message = f'{url} replied HTTP {reply.status}: {detail}'
    if reply.status in (502, 503):
        raise PolicyUnavailable(message)
    if reply.status == 504:
        raise PolicyTimeout(message)
    raise PolicyProtocolError(message)


def json_headers() -> Dict[str, str]:
    return {'Content-Type': 'application/json', 'Accept': 'application/json'}


_REASONS = (
    ('Connection refused', 'connection refused (is the server running?)'),
    ('Name or service not known', 'host name not found (DNS)'),
    ('nodename nor servname', 'host name not found (DNS)'),
    ('Temporary failure in name resolution', 'host name not found (DNS)'),
    ('RemoteDisconnected', 'server closed the connection without replying'),
    ('Connection reset', 'connection reset by the server'),
    ('Network is unreachable', 'network unreachable'),
    ('No route to host', 'no route to host'),
)


def connection_reason(exc: BaseException) -> str:
    """Short cause of a connection failure, in words a robot operator can act on."""
    if isinstance(exc, ConnectionRefusedError):
        return 'connection refused (is the server running?)'
    if isinstance(exc, socket.gaierror):
        return 'host name not found (DNS)'
    if isinstance(exc, ConnectionResetError):
        return 'connection reset by the server'
    text = str(exc)
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    return _short(exc)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + '...'

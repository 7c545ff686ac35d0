"""
One keep-alive HTTP connection to a policy server, with every failure mapped to a policy error.

A robot controller calls the same server several times a second for hours; what it needs from the
transport is a reused connection (no TCP/TLS handshake per step), a hard bound on how long and how
much it will read, credentials that never pass through a logged parameter, TLS verification on
unless someone turns it off, and one exception type per failure cause so the node can halt and
count. requests gives the pooled session; the rest is here.
"""
from dataclasses import dataclass
import os
import time
from typing import Any, Dict, Optional, Tuple

import requests
from rt2_ros.policy.base import (
    PolicyConfig, PolicyProtocolError, PolicyTimeout, PolicyUnavailable,
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
    POST JSON to a policy server over one pooled session and read a bounded reply.

    timeouts: (connect, read) from the config; the read timeout applies to each socket read and
    the whole body must also arrive within it (checked while streaming), so a server that drips
    bytes cannot hold the controller for longer than about twice the timeout.
    """

    def __init__(self, config: PolicyConfig, user_agent: str = 'rt2_ros') -> None:
        if not config.url:
            raise PolicyConfigError('policy.url is empty; set the server URL, e.g. '
                                    'http://gpu-box:8000')
        if not config.url.startswith(('http://', 'https://')):
            raise PolicyConfigError(f'policy.url {config.url!r} must start with http:// or '
                                    'https://')
        if config.timeout_s <= 0 or config.connect_timeout_s <= 0:
            raise PolicyConfigError('policy timeouts must be positive')
        if config.max_response_bytes <= 0:
            raise PolicyConfigError('policy.max_response_bytes must be positive')
        self.config = config
        self.timeouts: Tuple[float, float] = (config.connect_timeout_s, config.timeout_s)
        self.max_response_bytes = int(config.max_response_bytes)
        self.session = requests.Session()
        # Proxies from the environment would silently route robot traffic elsewhere.
        self.session.trust_env = False
        self.session.headers['User-Agent'] = user_agent
        api_key = read_api_key(config.api_key_env)
        if api_key:
            self.session.headers['Authorization'] = f'Bearer {api_key}'
        if config.ca_cert:
            if not os.path.isfile(config.ca_cert):
                raise PolicyConfigError(f'policy.ca_cert {config.ca_cert} does not exist')
            self.session.verify = config.ca_cert
        else:
            self.session.verify = bool(config.verify_tls)

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, url: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> HttpReply:
        """Send one request and return the whole reply, or raise a PolicyError subclass."""
        start = time.monotonic()
        deadline = start + self.config.connect_timeout_s + self.config.timeout_s
        try:
            response = self.session.request(method, url, data=body, headers=headers,
                                            timeout=self.timeouts, stream=True,
                                            allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            raise PolicyUnavailable(
                f'could not connect to {url} within {self.config.connect_timeout_s:g} s') from None
        except requests.exceptions.ReadTimeout:
            raise PolicyTimeout(
                f'{url} did not answer within {self.config.timeout_s:g} s') from None
        except requests.exceptions.SSLError as exc:
            raise PolicyUnavailable(f'TLS failure talking to {url}: {_short(exc)}') from None
        except requests.exceptions.ConnectionError as exc:
            raise PolicyUnavailable(f'cannot reach {url}: {connection_reason(exc)}') from None
        except requests.exceptions.RequestException as exc:
            raise PolicyProtocolError(f'request to {url} failed: {_short(exc)}') from None
        try:
            body = self._read_body(response, url, deadline)
        finally:
            response.close()
        headers = {k.lower(): v for k, v in response.headers.items()}
        return HttpReply(response.status_code, body, headers, time.monotonic() - start)

    def _read_body(self, response: requests.Response, url: str, deadline: float) -> bytes:
        declared = response.headers.get('Content-Length')
        if declared is not None and declared.isdigit() and \
                int(declared) > self.max_response_bytes:
            raise PolicyProtocolError(
                f'{url} announced a {declared}-byte reply, more than the '
                f'{self.max_response_bytes}-byte limit')
        chunks = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise PolicyProtocolError(
                        f'{url} sent more than the {self.max_response_bytes}-byte reply limit')
                if time.monotonic() > deadline:
                    raise PolicyTimeout(f'{url} did not finish its reply in time')
                chunks.append(chunk)
        except requests.exceptions.ConnectionError as exc:
            # urllib3 reports a read timeout inside the body as a ConnectionError.
            if 'timed out' in str(exc).lower():
                raise PolicyTimeout(f'{url} stalled while sending its reply') from None
            raise PolicyUnavailable(f'{url} dropped the connection mid-reply: '
                                    f'{_short(exc)}') from None
        except requests.exceptions.RequestException as exc:
            raise PolicyUnavailable(f'{url} broke off its reply: {_short(exc)}') from None
        return b''.join(chunks)


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


def json_headers() -> Dict[str, Any]:
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
    """Short cause of a requests ConnectionError (its text nests several urllib3 layers)."""
    text = str(exc)
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    return _short(exc)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + '...'

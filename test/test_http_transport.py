"""
The HTTP transport of the REST backends, against raw loopback servers that misbehave on purpose.

The backends' protocol tests run against the scripted FastAPI server; these pin down what the
transport itself promises: one kept-alive connection, a server-closed idle connection replaced
without an error, a dripping reply bounded by the deadline, non-HTTP bytes and proxies from the
environment handled.
"""
import socket
import threading
import time

import pytest
from rt2_ros.policy.base import PolicyConfig, PolicyProtocolError, PolicyTimeout
from rt2_ros.policy.http_client import HttpPolicyTransport

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'


class RawServer:
    """A loopback TCP server; handler(conn, index) serves each accepted connection."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.create_server(('127.0.0.1', 0))
        self.url = f'http://127.0.0.1:{self.sock.getsockname()[1]}'
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections),
                             daemon=True).start()

    def _serve(self, conn, index):
        with conn:
            try:
                self.handler(conn, index)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def read_request(conn):
    """Read one request (headers and Content-Length body); False at end of stream."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    length = next((int(line.split(b':')[1]) for line in head.split(b'\r\n')
                   if line.lower().startswith(b'content-length')), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return True


def keep_alive(conn, index):
    while read_request(conn):
        conn.sendall(OK)


def transport(url, timeout=0.5):
    return HttpPolicyTransport(PolicyConfig(url=url, timeout_s=timeout, connect_timeout_s=0.5))


@pytest.fixture
def serve():
    servers = []

    def start(handler):
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_requests_share_one_kept_alive_connection(serve):
    server = serve(keep_alive)
    client = transport(server.url)
    for _ in range(5):
        assert client.request('POST', server.url + '/act', b'{"a": 1}').body == b'{}'
    assert server.connections == 1
    client.close()


def test_connection_closed_by_the_server_while_idle_is_replaced(serve):
    served = threading.Event()

    def one_then_close(conn, index):
        if read_request(conn):
            conn.sendall(OK)
            conn.close()  # as a server's keep-alive timeout does
            served.set()

    server = serve(one_then_close)
    client = transport(server.url)
    client.request('GET', server.url + '/healthz')
    assert served.wait(5)
    assert client.request('GET', server.url + '/healthz').status == 200  # no error
    assert server.connections == 2
    client.close()


def test_dripping_reply_is_a_timeout_within_the_deadline(serve):
    def drip(conn, index):
        read_request(conn)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n')
        for _ in range(100):
            conn.sendall(b'x')
            time.sleep(0.1)  # the misbehaviour under test: one byte every 100 ms

    server = serve(drip)
    client = transport(server.url, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(PolicyTimeout):
        client.request('POST', server.url + '/act', b'{}')
    assert time.monotonic() - start < 1.5  # connect + read timeout, plus one read
    client.close()


def test_bytes_that_are_not_http_are_a_protocol_error(serve):
    def garbage(conn, index):
        read_request(conn)
        conn.sendall(b'SSH-2.0-OpenSSH_9.6\r\n\r\n')

    server = serve(garbage)
    with pytest.raises(PolicyProtocolError, match='did not answer in HTTP'):
        transport(server.url).request('POST', server.url + '/act', b'{}')


def test_proxy_variables_are_ignored(serve, monkeypatch):
    server = serve(keep_alive)
    monkeypatch.setenv('http_proxy', 'http://127.0.0.1:9')
    monkeypatch.setenv('HTTP_PROXY', 'http://127.0.0.1:9')
    assert transport(server.url).request('GET', server.url + '/healthz').status == 200

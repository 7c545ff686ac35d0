"""Remote policy clients against a real scripted server: wire format, auth and typed failures."""
import shutil
import socket
import ssl
import subprocess
import threading
import time

import numpy as np
import pytest
from rt2_ros.policy.base import (
    Observation, PolicyConfig, PolicyInvalidAction, PolicyProtocolError, PolicyTimeout,
    PolicyUnavailable,
)
from rt2_ros.policy.factory import make_policy
from rt2_ros.policy.settings import PolicyConfigError
from support.scripted_policy_server import (
    action, die, error_200, hang, http_status, json_value, nan_action, oversized, raw,
    ScriptedPolicyServer, text, wrong_length, ws_bytes, ws_map, ws_text,
)

OBS = Observation(image=np.full((48, 64, 3), 7, np.uint8), instruction='pick up the rock',
                  state=np.arange(8, dtype=np.float32))
STEP = [1.0, 0.01, -0.02, 0.0, 0.1, 0.0, -0.1, 0.5]


@pytest.fixture(scope='module')
def server():
    with ScriptedPolicyServer() as running:
        yield running


@pytest.fixture
def fresh(server):
    server.reset()
    return server


def url_for(backend: str, server: ScriptedPolicyServer) -> str:
    return server.ws_url if backend == 'openpi' else server.url


def policy(backend: str, url: str, **kwargs):
    return make_policy(PolicyConfig(backend=backend, url=url, timeout_s=kwargs.pop('timeout', 1.0),
                                    connect_timeout_s=kwargs.pop('connect_timeout', 1.0),
                                    **kwargs))


def test_openvla_http_speaks_deploy_py_format_and_validates(fresh, monkeypatch):
    monkeypatch.setenv('RT2_TEST_KEY', 's3cret')
    fresh.push(action(STEP))
    with policy('openvla_http', fresh.url, unnorm_key='bridge_orig',
                api_key_env='RT2_TEST_KEY') as client:
        result = client.infer(OBS)
    assert np.allclose(result.action, STEP) and result.terminate == [False]
    assert result.timing.request_s > 0 and result.timing.encode_s > 0
    seen = fresh.requests()[-1]
    assert seen['image_shape'] == [48, 64, 3] and seen['image_dtype'] == '|u1'
    assert seen['instruction'] == 'pick up the rock' and seen['unnorm_key'] == 'bridge_orig'
    assert seen['authorization'] == 'Bearer s3cret' and not seen['encoded']


def test_openvla_http_double_encoded_form(fresh):
    fresh.push(action(STEP))
    with policy('openvla_http', fresh.url + '/act', extra={'encoded': True}) as client:
        assert np.allclose(client.infer(OBS).action, STEP)
    assert fresh.requests()[-1]['encoded']


@pytest.mark.parametrize('reply, error', [
    (nan_action(), PolicyInvalidAction),
    (wrong_length(7), PolicyInvalidAction),
    (action([1, 1e6, 0, 0, 0, 0, 0, 1]), PolicyInvalidAction),    # far outside +-0.05 m
    (action([0.5, 0, 0, 0, 0, 0, 0, 1]), PolicyInvalidAction),    # terminate is not a label
    (error_200(), PolicyProtocolError),
    (raw(b'<html>502</html>', content_type='text/html'), PolicyProtocolError),
    (json_value({'action': 'none'}), PolicyProtocolError),
    (http_status(500), PolicyProtocolError),
    (http_status(503), PolicyUnavailable),
    (oversized(3 << 20), PolicyProtocolError),
    (hang(3.0), PolicyTimeout),
])
def test_openvla_http_typed_failures(fresh, reply, error):
    fresh.push(reply)
    with policy('openvla_http', fresh.url, timeout=0.5) as client:
        start = time.monotonic()
        with pytest.raises(error):
            client.infer(OBS)
        assert time.monotonic() - start < 2.5
        # The session recovers: the next (default) reply is a valid action.
        assert client.infer(OBS).terminate == [False]


def test_openpi_handshake_chunk_keys_and_api_key(fresh, monkeypatch):
    monkeypatch.setenv('RT2_TEST_KEY', 'k3y')
    chunk = [STEP] * 4
    fresh.push(action(chunk), protocol='ws')
    with policy('openpi', fresh.ws_url, api_key_env='RT2_TEST_KEY',
                extra={'image_key': 'observation/image', 'state_key': 'observation/state',
                       'max_horizon': 3}) as client:
        result = client.infer(OBS)
        assert client.server_metadata == {'server': 'scripted_policy_server'}
    assert result.actions.shape == (3, 8) and result.horizon == 3
    assert result.timing.inference_s == pytest.approx(0.0015)
    seen = fresh.requests()[-1]
    assert seen['keys'] == ['observation/image', 'observation/state', 'prompt']
    assert seen['instruction'] == 'pick up the rock' and seen['authorization'] == 'Api-Key k3y'


@pytest.mark.parametrize('reply, error', [
    (ws_text(), PolicyProtocolError),
    (ws_bytes(b'\xc1 not msgpack'), PolicyProtocolError),
    (ws_map({'actions': 'none'}), PolicyProtocolError),
    (ws_map({'result': 1}), PolicyProtocolError),
    (nan_action(), PolicyInvalidAction),
    (action([[0.0] * 7] * 2), PolicyInvalidAction),
    (hang(3.0), PolicyTimeout),
])
def test_openpi_typed_failures_then_reconnects(fresh, reply, error):
    fresh.push(reply, protocol='ws')
    with policy('openpi', fresh.ws_url, timeout=0.5) as client:
        with pytest.raises(error):
            client.infer(OBS)
        assert client.infer(OBS).actions.shape == (1, 8)


def test_openai_request_carries_image_prompt_and_regex(fresh):
    fresh.push(text('Plan: reach the rock. Action: 1 128 0 255 128 128 128 200'),
               protocol='openai')
    with policy('openai', fresh.url + '/v1', extra={'guided_regex': True, 'plan': 'optional'},
                model_name='') as client:
        result = client.infer(OBS)
    assert result.plan == 'reach the rock'
    assert result.action[2] == pytest.approx(-0.05) and result.action[3] == pytest.approx(0.05)
    seen = fresh.requests()[-1]
    assert seen['model'] == 'scripted-vla'  # discovered through GET /v1/models
    assert seen['prompt'] == 'Q: what action should the robot take to pick up the rock? A:'
    assert seen['image_url_prefix'].startswith('data:image/jpeg;base64,')
    assert seen['regex'] == seen['guided_regex'] and seen['regex'].startswith('(?: )?(?:Plan: ')


@pytest.mark.parametrize('reply, error', [
    (text('move left'), PolicyInvalidAction),
    (text('1 2 3 4 5 6 7 256'), PolicyInvalidAction),
    (json_value({'error': {'message': 'model overloaded'}}), PolicyProtocolError),
    (raw(b'not json'), PolicyProtocolError),
    (hang(3.0), PolicyTimeout),
])
def test_openai_typed_failures(fresh, reply, error):
    fresh.push(reply, protocol='openai')
    with policy('openai', fresh.url, model_name='scripted-vla', timeout=0.5) as client:
        with pytest.raises(error):
            client.infer(OBS)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize('backend', ['openvla_http', 'openpi', 'openai'])
def test_server_not_started_is_unavailable(backend):
    port = _closed_port()
    url = f'ws://127.0.0.1:{port}' if backend == 'openpi' else f'http://127.0.0.1:{port}'
    with policy(backend, url, model_name='m') as client:
        with pytest.raises(PolicyUnavailable):
            client.infer(OBS)


@pytest.mark.parametrize('backend', ['openvla_http', 'openpi', 'openai'])
def test_server_dying_mid_episode_is_unavailable(backend):
    protocol = {'openvla_http': 'act', 'openpi': 'ws', 'openai': 'openai'}[backend]
    with ScriptedPolicyServer() as server:
        with policy(backend, url_for(backend, server), model_name='m') as client:
            client.infer(OBS)
            server.push(die(), protocol=protocol)
            with pytest.raises(PolicyUnavailable):
                client.infer(OBS)
            server.wait_exit()
            with pytest.raises(PolicyUnavailable):
                client.infer(OBS)


def test_missing_api_key_variable_fails_at_construction(monkeypatch):
    monkeypatch.delenv('RT2_UNSET_KEY', raising=False)
    for backend in ('openvla_http', 'openpi', 'openai'):
        with pytest.raises(PolicyConfigError, match='RT2_UNSET_KEY'):
            policy(backend, 'http://127.0.0.1:1', api_key_env='RT2_UNSET_KEY')


def test_openai_backend_refuses_vocabulary_id_spaces():
    with pytest.raises(PolicyConfigError, match='text action space'):
        policy('openai', 'http://127.0.0.1:1', action_space='openvla')


@pytest.fixture(scope='module')
def tls_files(tmp_path_factory):
    if shutil.which('openssl') is None:
        pytest.skip('openssl is not installed')
    folder = tmp_path_factory.mktemp('tls')
    cert, key = folder / 'cert.pem', folder / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                    '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True,
                   timeout=60)
    return str(cert), str(key)


def test_tls_is_verified_by_default_and_a_ca_file_makes_it_work(tls_files):
    with ScriptedPolicyServer(tls=tls_files) as server:
        assert server.url.startswith('https://')
        for backend in ('openvla_http', 'openpi'):
            url = url_for(backend, server)
            with policy(backend, url) as client:
                with pytest.raises(PolicyUnavailable, match='(?i)certificate|TLS'):
                    client.infer(OBS)
            # A generous handshake bound: this checks verification, not deadlines, and a
            # loaded machine can take over a second for a TLS and websocket handshake.
            with policy(backend, url, ca_cert=tls_files[0], connect_timeout=10.0) as client:
                assert client.infer(OBS).terminate == [False]


class SilentTlsServer:
    """Accepts connections and completes TLS on them, then never sends another byte."""

    def __init__(self, cert: str, key: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
                self.held.append(self.context.wrap_socket(conn, server_side=True))
            except OSError:
                return

    def __enter__(self) -> 'SilentTlsServer':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize('backend,error', [('openpi', PolicyUnavailable),
                                           ('openvla_http', PolicyTimeout)])
def test_a_server_silent_after_tls_fails_the_request_within_its_bounds(
        tls_files, backend, error):
    # A TLS 1.3 session ticket makes the socket readable with no application data in it; a
    # client that then blocks on the read waits for the silent server forever.
    with SilentTlsServer(*tls_files) as server:
        scheme = 'wss' if backend == 'openpi' else 'https'
        outcome = []

        def call() -> None:
            with policy(backend, f'{scheme}://127.0.0.1:{server.port}',
                        ca_cert=tls_files[0]) as client:
                try:
                    client.infer(OBS)
                    outcome.append(None)
                except Exception as exc:  # noqa: B902 - the type is what is checked
                    outcome.append(exc)
        start = time.monotonic()
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(30.0)
        assert not worker.is_alive(), 'the client is still blocked on a silent server'
        assert isinstance(outcome[0], error), outcome
        # connect bound + one read bound (1 s each here), with room for a loaded machine
        assert time.monotonic() - start < 15.0

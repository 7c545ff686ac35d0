"""
`rt2 serve` against hostile clients: TLS, size limits, fuzzed requests on every protocol, memory.

One server process for the module, configured as it would face a network: API key, TLS with a
private CA, a 2 MB body limit and a 256x256-pixel image limit, serving a tiny random checkpoint.
The fuzz tests send real requests built from valid ones and then broken (dtype, shape, keys,
lengths, encodings, raw bytes) to the OpenVLA /act route, the openpi websocket and the OpenAI
chat route: every answer must be a valid action or a client-error status with a detail - never
a 500, never a hang - and the server must still be healthy, with bounded memory, afterwards.
test_serve.py covers the protocols' happy paths and the API key on every route.
"""
import base64
import json
import os
from pathlib import Path
import shutil
import socket
import ssl
import subprocess
import time

from cli_helpers import rt2_executable
from hypothesis import example, given, HealthCheck, settings, strategies as st
import msgpack
import numpy as np
import pytest
import requests
from rt2_ros.policy.base import Observation, PolicyConfig, PolicyUnavailable
from rt2_ros.policy.factory import make_policy
from rt2_ros.policy.image_codec import jpeg_data_url
from rt2_ros.policy.wire import json_numpy_dumps, json_numpy_loads, msgpack_numpy_dumps
from support.scripted_policy_server import wait_for_url
from tiny_models import tiny_checkpoint
import websockets.exceptions
import websockets.sync.client

pytestmark = pytest.mark.slow

KEY = 'serve-hostile-' + os.urandom(8).hex()
KEY_ENV = 'RT2_SERVE_HOSTILE_KEY'
MAX_BODY_MB = 2
MAX_PIXELS = 256 * 256
IMAGE = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
OBS = Observation(image=IMAGE, instruction='pick up the rock')
EXAMPLES = int(os.environ.get('RT2_FUZZ_EXAMPLES', '40'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
CLIENT_ERRORS = {400, 404, 413, 422}


def _rss_mb(pid):
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    return float('nan')


class Served:
    """The module's server: URL, CA file, process and its output."""

    def __init__(self, process, url, ca):
        self.process, self.url, self.ca = process, url, ca
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        self.session.verify = ca
        self.session.headers['Authorization'] = f'Bearer {KEY}'

    @property
    def ws_url(self):
        return 'wss://' + self.url.split('://', 1)[1]

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca)

    def post(self, path, body, **kwargs):
        return self.session.post(self.url + path, data=body, timeout=60, **kwargs)

    def rss_mb(self):
        return _rss_mb(self.process.pid)


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    if shutil.which('openssl') is None:
        pytest.skip('openssl is not installed')
    folder = tmp_path_factory.mktemp('tls')
    cert, key = folder / 'cert.pem', folder / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                    '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True,
                   timeout=60)
    log = folder / 'serve.log'
    with open(log, 'w') as err:
        process = subprocess.Popen(
            [rt2_executable(), 'serve', '--model', str(tiny_checkpoint('rt2')), '--port', '0',
             '--api-key-env', KEY_ENV, '--tls-cert', str(cert), '--tls-key', str(key),
             '--device', 'cpu', '--max-body-mb', str(MAX_BODY_MB),
             '--max-image-pixels', str(MAX_PIXELS), '--log-level', 'info'],
            stdout=subprocess.PIPE, stderr=err, text=True,
            env=dict(os.environ, **{KEY_ENV: KEY}))
        try:
            url = wait_for_url(process, timeout=240, prefix='rt2 serve: listening on ')
            server = Served(process, url, str(cert))
            server.log = log
            deadline = time.monotonic() + 60
            while server.session.get(url + '/healthz', timeout=5).status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)  # polling another process
            yield server
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
            process.stdout.close()


def _policy(name, served, **kwargs):
    url = served.ws_url if name == 'openpi' else served.url
    os.environ[KEY_ENV] = KEY
    return make_policy(PolicyConfig(backend=name, url=url, api_key_env=KEY_ENV, timeout_s=60,
                                    **kwargs))


@pytest.mark.filterwarnings('ignore::urllib3.exceptions.InsecureRequestWarning')
@pytest.mark.parametrize('name', ['openvla_http', 'openpi', 'openai'])
def test_clients_verify_tls_by_default_and_trust_a_given_ca(served, name):
    with _policy(name, served) as client:
        with pytest.raises(PolicyUnavailable, match='(?i)certificate|TLS|SSL'):
            client.infer(OBS)
    with _policy(name, served, ca_cert=served.ca) as client:
        assert client.infer(OBS).actions.shape == (1, 8)
    with _policy(name, served, verify_tls=False) as client:  # an explicit opt-out only
        assert client.infer(OBS).actions.shape == (1, 8)


def test_tls_sends_no_session_tickets(served):
    # A TLS 1.3 ticket lands before the first reply; a threaded client (websockets' sync one,
    # openpi's reference client) reads it while it writes its upgrade request on the same TLS
    # connection, which can stall the opening handshake. rt2 serve sends none.
    host, port = served.url.split('://', 1)[1].rsplit(':', 1)
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        with served.ssl_context().wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b'GET /healthz HTTP/1.1\r\nHost: rt2\r\nConnection: close\r\n\r\n')
            reply = b''
            while chunk := tls.recv(65536):
                reply += chunk
            assert tls.version() == 'TLSv1.3' and reply.startswith(b'HTTP/1.1 200')
            assert not tls.session.has_ticket


def test_plain_http_to_the_tls_port_gets_no_answer(served):
    plain = 'http://' + served.url.split('://', 1)[1]
    with pytest.raises(requests.RequestException):
        requests.get(plain + '/healthz', timeout=5).raise_for_status()


def _act_body(image=IMAGE, **extra):
    return json_numpy_dumps(dict({'image': image, 'instruction': 'pick'}, **extra)).encode()


def test_request_and_image_size_limits(served):
    limit = MAX_BODY_MB << 20
    assert served.post('/act', b'x' * (limit + 1)).status_code == 413
    chunks = (b'x' * 65536 for _ in range(limit // 65536 + 2))  # no Content-Length
    assert served.post('/act', chunks).status_code == 413
    big = np.zeros((257, 256, 3), np.uint8)  # one row over the pixel limit, 197 KB of JSON
    reply = served.post('/act', _act_body(big))
    assert reply.status_code == 413 and 'pixels' in reply.json()['detail']
    chat = {'messages': [{'role': 'user', 'content': [
        {'type': 'text', 'text': 'pick'},
        {'type': 'image_url', 'image_url': {'url': jpeg_data_url(big)}}]}]}
    assert served.post('/v1/chat/completions', json.dumps(chat)).status_code == 413
    with websockets.sync.client.connect(
            served.ws_url, additional_headers={'Authorization': f'Api-Key {KEY}'},
            ssl=served.ssl_context(), max_size=None, open_timeout=30) as ws:
        ws.recv(timeout=30)  # metadata
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            ws.send(b'\x00' * (limit + 1))  # the server may close while this is being sent
            ws.recv(timeout=30)
        # 1009 = too big; a reset while the client is still sending can lose the close frame
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1009, closed.value


def _sent_encoded(body: bytes) -> bool:
    try:
        request = json.loads(body)
    except ValueError:
        return False
    return isinstance(request, dict) and 'encoded' in request


def _check_act_reply(reply, body: bytes):
    if reply.status_code == 200:
        action = json_numpy_loads(reply.content)
        if _sent_encoded(body):  # deploy.py answers the {"encoded": ...} form encoded again
            assert isinstance(action, str), action
            action = json_numpy_loads(action)
        assert isinstance(action, np.ndarray) and action.shape == (8,)
        assert np.all(np.isfinite(action))
    else:
        assert reply.status_code in CLIENT_ERRORS, (reply.status_code, reply.text[:300])
        assert reply.json()['detail']


@st.composite
def act_bodies(draw):
    image = draw(st.sampled_from([
        IMAGE, IMAGE[:, :, 0], IMAGE[:, :, :1], np.dstack([IMAGE, IMAGE[:, :, :1]]),
        np.transpose(IMAGE, (2, 0, 1)), IMAGE.astype(np.float32), IMAGE.astype(np.int64),
        np.zeros((0, 4, 3), np.uint8), np.zeros((2, 2, 2, 2), np.uint8), IMAGE[:1, :1],
        np.zeros((3,), np.uint8), np.zeros((300, 300, 3), np.uint8), None]))
    payload = {'image': image, 'instruction': draw(st.one_of(
        st.text(max_size=40), st.just(''), st.just('x' * 2001), st.integers(), st.none(),
        st.lists(st.text(max_size=3), max_size=2)))}
    for key in draw(st.lists(st.sampled_from(['image', 'instruction']), max_size=1)):
        payload.pop(key, None)
    if draw(st.booleans()):
        payload['unnorm_key'] = draw(st.one_of(st.none(), st.text(max_size=8), st.integers(),
                                               st.just('x' * 300)))
    if draw(st.booleans()):
        payload[draw(st.text(max_size=5))] = draw(st.integers())
    text = json_numpy_dumps({k: v for k, v in payload.items() if v is not None} if
                            draw(st.booleans()) else payload)
    form = draw(st.sampled_from(['plain', 'encoded', 'encoded_bad', 'cut', 'flip']))
    if form == 'encoded':
        text = json.dumps({'encoded': text})
    elif form == 'encoded_bad':
        text = json.dumps({'encoded': draw(st.one_of(st.integers(), st.just(text[:20])))})
    body = text.encode()
    if form == 'cut':
        body = body[:draw(st.integers(0, len(body)))]
    elif form == 'flip':
        index = draw(st.integers(0, len(body) - 1))
        body = body[:index] + bytes([body[index] ^ draw(st.integers(1, 255))]) + body[index + 1:]
    return body


@FUZZ
@given(body=act_bodies())
@example(body=json_numpy_dumps({'image': IMAGE, 'instruction': 'pick'}).encode())
@example(body=json.dumps({'encoded': json_numpy_dumps({'image': IMAGE,
                                                       'instruction': 'pick'})}).encode())
def test_fuzzed_act_requests_get_an_action_or_a_client_error(served, body):
    start = time.monotonic()
    _check_act_reply(served.post('/act', body), body)
    assert time.monotonic() - start < 30


@st.composite
def ws_frames(draw):
    message = {'observation/image': draw(st.sampled_from([
        IMAGE, IMAGE.astype(np.float64), np.zeros((0, 3, 3), np.uint8), IMAGE[:, :, :2],
        np.zeros((300, 300, 3), np.uint8), 'not an array', None])),
        'prompt': draw(st.one_of(st.text(max_size=20), st.integers(-2 ** 63, 2 ** 64 - 1),
                                 st.just('x' * 2001)))}  # msgpack carries 64-bit integers
    if draw(st.booleans()):
        message = {'images': {'cam_high': message['observation/image']},
                   'prompt': message['prompt']}
    if draw(st.booleans()):
        message.pop(draw(st.sampled_from(sorted(message))))
    frame = msgpack_numpy_dumps({k: v for k, v in message.items() if v is not None})
    mutation = draw(st.sampled_from(['none', 'cut', 'flip', 'garbage', 'text']))
    if mutation == 'cut':
        frame = frame[:draw(st.integers(0, len(frame)))]
    elif mutation == 'flip':
        index = draw(st.integers(0, len(frame) - 1))
        frame = frame[:index] + bytes([frame[index] ^ draw(st.integers(1, 255))]) + \
            frame[index + 1:]
    elif mutation == 'garbage':
        frame = draw(st.binary(max_size=64))
    elif mutation == 'text':
        return draw(st.text(max_size=20))
    return frame


@FUZZ
@given(frame=ws_frames())
def test_fuzzed_openpi_frames_get_actions_or_a_client_error_frame(served, frame):
    with websockets.sync.client.connect(
            served.ws_url, additional_headers={'Authorization': f'Api-Key {KEY}'},
            ssl=served.ssl_context(), open_timeout=30, close_timeout=2) as ws:
        metadata = msgpack.unpackb(ws.recv(timeout=30))
        assert metadata['action_dim'] == 8
        ws.send(frame)
        reply = ws.recv(timeout=30)
        if isinstance(reply, bytes):
            decoded = msgpack.unpackb(reply)
            assert set(decoded) >= {'actions', 'server_timing'}
        else:
            assert reply.startswith('rt2 serve error 4'), reply[:200]


@st.composite
def chat_bodies(draw):
    parts = [{'type': 'text', 'text': draw(st.one_of(st.text(max_size=20), st.integers()))}]
    url = draw(st.sampled_from([
        jpeg_data_url(IMAGE), 'data:image/png;base64,' + base64.b64encode(b'\x89PNG').decode(),
        'https://example.com/a.jpg', 'data:image/gif;base64,R0lGOD', 'data:image/jpeg;base64,!',
        'file:///etc/passwd', 'data:image/jpeg,' + 'A' * 10]))
    for _ in range(draw(st.integers(0, 2))):
        image_url = draw(st.sampled_from([{'url': url}, url, None, 5]))
        parts.append({'type': 'image_url', 'image_url': image_url})
    request = {'model': draw(st.sampled_from([None, '', 'rt2-x', 5])), 'messages': draw(
        st.sampled_from([[{'role': 'user', 'content': parts}], [], 'x',
                         [{'role': 'system', 'content': 'x'}]]))}
    for key, values in (('max_tokens', [1, 64, 0, 10 ** 9, -1, 'x', True]),
                        ('temperature', [0, 0.5, 3, -1, 'hot', None]),
                        ('structured_outputs', [{'regex': '[0-9]+( [0-9]+){7}'},
                                                {'regex': '(a|'}, {'regex': 'a{99999}'},
                                                {'json': {}}, 'x']),
                        ('n', [1, 2]), ('stream', [False, True])):
        if draw(st.booleans()):
            request[key] = draw(st.sampled_from(values))
    return json.dumps(request).encode()


@FUZZ
@given(body=chat_bodies())
def test_fuzzed_chat_requests_get_a_completion_or_a_client_error(served, body):
    reply = served.post('/v1/chat/completions', body)
    if reply.status_code == 200:
        assert reply.json()['choices'][0]['message']['content'] is not None
    else:
        assert reply.status_code in CLIENT_ERRORS, (reply.status_code, reply.text[:300])
        assert reply.json()['error']['message']


def test_after_the_fuzzing_the_server_is_healthy_memory_is_bounded_and_no_secret_leaked(served):
    rss = served.rss_mb()
    with _policy('openvla_http', served, ca_cert=served.ca) as client:
        for _ in range(20):
            assert client.infer(OBS).actions.shape == (1, 8)
        # 100 more hostile bodies just under the size limit, then memory again
        size = (MAX_BODY_MB << 20) - 100
        bodies = [b'[' + b'{},' * (size // 3 - 1) + b'{}]',  # the most objects per byte
                  b'{"image": 1' + b'0' * (size - 20) + b'}',  # a 2-million-digit number
                  b'{"instruction": "' + b'x' * (size - 40) + b'"}']
        for k in range(100):
            assert served.post('/act', bodies[k % 3]).status_code in CLIENT_ERRORS
        assert client.infer(OBS).actions.shape == (1, 8)
    grown = served.rss_mb() - rss
    print(f'rt2 serve RSS after the fuzz tests: {rss:.0f} MB, grew {grown:+.1f} MB over 20 '
          f'valid requests and 100 hostile 2 MB bodies')
    assert grown < 100
    assert served.session.get(served.url + '/healthz', timeout=5).status_code == 200
    cmdline = Path(f'/proc/{served.process.pid}/cmdline').read_bytes()
    assert KEY.encode() not in cmdline  # only the variable's name is on the command line
    wrong = served.session.post(served.url + '/act', data=_act_body(), timeout=30,
                                headers={'Authorization': f'Bearer {KEY[:-1]}x'})
    assert wrong.status_code == 401 and KEY not in wrong.text
    assert KEY not in served.log.read_text()

"""
`rt2 serve` with a real tiny checkpoint, driven by every remote backend and the reference clients.

One server process (API key on, small body limit) is shared by the module; the tiny checkpoint
(PaliGemma from config, random weights) is built once per test process.
"""
from concurrent.futures import ThreadPoolExecutor
import json
import os
import re
import subprocess

from cli_helpers import rt2_executable
import json_numpy
import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy
import pytest
import requests
from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.policy.base import (
    Observation, PolicyConfig, PolicyProtocolError, PolicyUnavailable,
)
from rt2_ros.policy.factory import make_policy
from support.scripted_policy_server import wait_for_health, wait_for_url
from tiny_models import tiny_checkpoint

KEY = 'test-key-0123456789'
KEY_ENV = 'RT2_SERVE_TEST_KEY'
RNG = np.random.default_rng(3)
IMAGE = RNG.integers(0, 256, (64, 80, 3), dtype=np.uint8)
OBS = Observation(image=IMAGE, instruction='pick up the rock')
SPACE = load_action_space('rt2')
BOUNDS = np.array([SPACE.lows, SPACE.highs])

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def tiny_rt2():
    return tiny_checkpoint('rt2')


def start_serve(model_dir, *extra):
    env = dict(os.environ, **{KEY_ENV: KEY})
    process = subprocess.Popen(
        [rt2_executable(), 'serve', '--model', str(model_dir), '--port', '0',
         '--api-key-env', KEY_ENV, '--device', 'cpu', *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = wait_for_url(process, timeout=240)
    wait_for_health(url, timeout=60)
    return process, url


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    process.stdout.close()
    process.stderr.close()


class ServeProcess:
    """The module's `rt2 serve`, restarted on demand if a test killed it."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.process = None
        self.url = ''

    def ensure(self):
        if self.process is None or self.process.poll() is not None:
            if self.process is not None:
                stop(self.process)
            self.process, self.url = start_serve(self.model_dir, '--max-body-mb', '2')
        return self.url


@pytest.fixture(scope='module')
def server(tiny_rt2):
    running = ServeProcess(tiny_rt2)
    yield running
    if running.process is not None:
        stop(running.process)


@pytest.fixture
def served(server):
    return server.ensure()


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY_ENV


def backend(name, url, key_env, **kwargs):
    if name == 'openpi':
        url = 'ws://' + url.split('://', 1)[1]
    return make_policy(PolicyConfig(backend=name, url=url, api_key_env=key_env, timeout_s=60,
                                    **kwargs))


def auth():
    return {'Authorization': f'Bearer {KEY}'}


@pytest.mark.parametrize('name', ['openvla_http', 'openpi', 'openai'])
def test_every_backend_gets_valid_actions_from_rt2_serve(served, key_env, name):
    with backend(name, served, key_env) as policy:
        result = policy.infer(OBS)
    assert result.actions.shape == (1, 8)
    assert np.all(result.actions >= BOUNDS[0] - 1e-9)
    assert np.all(result.actions <= BOUNDS[1] + 1e-9)
    assert result.terminate is not None and result.timing.inference_s is not None
    if name == 'openai':
        # The text the model wrote decodes to exactly the returned action.
        decoded = make_codec(SPACE).decode(result.raw)
        assert np.allclose(decoded.values, result.action)


def test_openvla_reference_client_works_unchanged(served, monkeypatch):
    # What OpenVLA's README client does: json_numpy.patch(), then requests with json=.
    monkeypatch.setattr(json, 'dumps', json_numpy.dumps)
    monkeypatch.setattr(json, 'loads', json_numpy.loads)
    action = requests.post(served + '/act', json={'image': IMAGE, 'instruction': 'pick'},
                           headers=auth(), timeout=60).json()
    assert isinstance(action, np.ndarray) and action.shape == (8,)
    monkeypatch.undo()
    # Clients without json_numpy send the double-encoded form and get a JSON string back.
    encoded = json_numpy.dumps({'image': IMAGE, 'instruction': 'pick', 'unnorm_key': None})
    reply = requests.post(served + '/act', json={'encoded': encoded}, headers=auth(), timeout=60)
    assert reply.status_code == 200
    assert json_numpy.loads(reply.json()).shape == (8,)


def test_openpi_reference_client_works_unchanged(served):
    host, port = served.split('://', 1)[1].rsplit(':', 1)
    client = WebsocketClientPolicy(host, int(port), api_key=KEY)
    assert client.get_server_metadata()['action_dim'] == 8
    reply = client.infer({'observation/image': IMAGE, 'prompt': 'pick up the rock',
                          'observation/state': np.zeros(8, np.float32)})
    assert reply['actions'].shape == (1, 8) and reply['server_timing']['infer_ms'] > 0


def test_openai_endpoint_honours_the_regex(served):
    # A constraint other than the default: only "terminate" steps that do not move.
    regex = r'0 128 128 128 128 128 128 (?:[0-9]|[1-9][0-9])'
    body = {'model': 'rt2-0', 'max_tokens': 40, 'structured_outputs': {'regex': regex},
            'messages': [{'role': 'user', 'content': [
                {'type': 'image_url', 'image_url': {'url': _data_url()}},
                {'type': 'text', 'text': 'Q: what action should the robot take to stop? A:'}]}]}
    reply = requests.post(served + '/v1/chat/completions', json=body, headers=auth(), timeout=60)
    assert reply.status_code == 200, reply.text
    assert re.fullmatch(regex, reply.json()['choices'][0]['message']['content'])
    # A constraint the decoder cannot enforce is refused, never approximated.
    body['structured_outputs'] = {'regex': r'(1) \1'}
    reply = requests.post(served + '/v1/chat/completions', json=body, headers=auth(), timeout=60)
    assert reply.status_code == 400 and 'backreferences' in reply.json()['error']['message']
    body['model'] = 'other-model'
    assert requests.post(served + '/v1/chat/completions', json=body, headers=auth(),
                         timeout=60).status_code == 404


def _data_url():
    from rt2_ros.policy.image_codec import jpeg_data_url
    return jpeg_data_url(IMAGE)


def test_api_key_is_required_everywhere_but_healthz(served, monkeypatch):
    assert requests.get(served + '/healthz', timeout=10).status_code == 200
    body = json_numpy.dumps({'image': IMAGE, 'instruction': 'pick'})
    for headers in ({}, {'Authorization': 'Bearer wrong-key'}, {'Authorization': KEY}):
        assert requests.post(served + '/act', data=body, headers=headers,
                             timeout=10).status_code == 401
        assert requests.get(served + '/v1/models', headers=headers,
                            timeout=10).status_code == 401
    monkeypatch.setenv('RT2_WRONG_KEY', 'nope')
    for name in ('openvla_http', 'openpi', 'openai'):
        with backend(name, served, 'RT2_WRONG_KEY', model_name='rt2-0') as policy:
            with pytest.raises(PolicyProtocolError, match='401|403'):
                policy.infer(OBS)


@pytest.mark.parametrize('body, status', [
    (b'{not json', 400),
    (b'"error"', 400),
    (json_numpy.dumps({'image': IMAGE.astype(np.float32), 'instruction': 'x'}).encode(), 422),
    (json_numpy.dumps({'image': IMAGE}).encode(), 422),
    (json_numpy.dumps({'image': np.zeros((2, 2, 2, 2), np.uint8), 'instruction': 'x'}).encode(),
     422),
    (b'{"image": {"__numpy__": "", "dtype": "|O", "shape": [0]}, "instruction": "x"}', 400),
    (b'x' * (3 << 20), 413),
    # No dataset statistics here: silently ignoring the key would mis-scale every motion.
    (json_numpy.dumps({'image': IMAGE, 'instruction': 'x', 'unnorm_key': 'bridge_orig'})
     .encode(), 400),
])
def test_bad_requests_get_a_status_and_detail_not_200(served, body, status):
    reply = requests.post(served + '/act', data=body, headers=auth(), timeout=60)
    assert reply.status_code == status and reply.json()['detail']


def test_concurrent_clients_all_get_valid_answers(served, key_env):
    clients = [backend('openvla_http', served, key_env) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: [c.infer(OBS)], clients))
    assert all(r.actions.shape == (1, 8) for batch in results for r in batch)
    for client in clients:
        client.close()


def test_killed_server_is_unavailable_to_a_connected_client(server, served, key_env):
    with backend('openpi', served, key_env) as ws_client, \
            backend('openvla_http', served, key_env) as http_client:
        ws_client.infer(OBS)
        http_client.infer(OBS)
        server.process.kill()
        server.process.wait(15)
        for client in (ws_client, http_client):
            with pytest.raises(PolicyUnavailable):
                client.infer(OBS)


def test_a_gripper_prompt_model_is_served_the_measured_opening(tmp_path, key_env):
    """The openvla_http client sends Observation.gripper; rt2 serve states it in the prompt."""
    import shutil

    model = tmp_path / 'gripper_model'
    shutil.copytree(tiny_checkpoint('rt2'), model)
    (model / 'training.json').write_text(json.dumps({'config': {'prompt_template':
                                                                'rt2_gripper'}}))
    process, url = start_serve(model)
    try:
        policy = make_policy(PolicyConfig(backend='openvla_http', url=url, api_key_env=KEY_ENV,
                                          timeout_s=30.0))
        try:
            told = Observation(image=IMAGE, instruction='pick up the rock', gripper=0.3)
            assert policy.infer(told).actions.shape[-1] == SPACE.size
            with pytest.raises(PolicyProtocolError):
                policy.infer(OBS)  # no opening: the server cannot write the prompt
        finally:
            policy.close()
        headers = {'Authorization': f'Bearer {KEY}'}
        for bad in (1.5, -0.1, 'open', True):
            body = json_numpy.dumps({'image': IMAGE, 'instruction': 'lift it', 'gripper': bad})
            reply = requests.post(f'{url}/act', data=body, headers=headers, timeout=30)
            assert reply.status_code == 422 and 'gripper' in reply.text
    finally:
        stop(process)

"""
Client for OpenAI-compatible chat-completions servers (vLLM, SGLang, TGI, `rt2 serve`).

This is how a fleet scales out: one serving engine batches requests from many robots, each robot
runs this client. The model must write RT-2-style text actions ("1 128 91 241 5 101 127 217",
optionally after "Plan: ... Action:"). The image goes as a JPEG data URL in the user message; the
prompt comes from a template (default: the RT-2 paper's). Decoding is constrained on the server
with a regex generated from the action space, sent as `structured_outputs: {"regex": ...}` (vLLM
0.12 and later) and, when `guided_regex` is enabled, also as the older top-level `guided_regex`.
Whatever comes back is still decoded strictly: a server that ignores the constraint yields
PolicyInvalidAction, never a guessed action.

Settings (PolicyConfig): url (server base, e.g. http://gpu-box:8000/v1), model_name (empty: the
first model the server lists), prompt_template (rt2_ros.policy.prompts: `rt2` (default),
`openvla` or a custom template; rendered exactly as the local backend does), api_key_env,
timeouts, TLS options, max_response_bytes, action_space (a text space); extra: `plan`
(none|optional|required), `guided_regex` (bool), `structured_outputs` (bool, default true),
`max_tokens`, `temperature` (default 0), `jpeg_quality`, `check_bounds`.
"""
import base64
import json
import time
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

import numpy as np

from rt2_ros.actions import ActionDecodeError, TextActionCodec
from rt2_ros.policy.base import (
    Observation, Policy, PolicyConfig, PolicyInvalidAction, PolicyProtocolError, PolicyResult,
    PolicyTiming,
)
from rt2_ros.policy.http_client import HttpPolicyTransport, json_headers, raise_for_status
from rt2_ros.policy.image_codec import DEFAULT_JPEG_QUALITY, encode_jpeg
from rt2_ros.policy.openvla_http import check_image
from rt2_ros.policy.prompts import PromptError, render_prompt, resolve_template
from rt2_ros.policy.remote_common import ActionChecker, load_codec
from rt2_ros.policy.settings import extra_bool, extra_int, extra_str, PolicyConfigError

JPEG_URL_PREFIX = 'data:image/jpeg;base64,'
_IMAGE_MARK = '\x00rt2-image-url\x00'  # stands in for the image while the rest is serialized
PLAN_MODES = ('none', 'optional', 'required')


def api_base(url: str) -> str:
    """Return the `.../v1` base of an OpenAI-compatible server URL."""
    base = url.rstrip('/')
    for suffix in ('/chat/completions', '/completions'):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    if not urlsplit(base).path.rstrip('/').endswith('/v1'):
        base += '/v1'
    return base


class OpenAICompatPolicy(Policy):
    """A text-action VLA behind an OpenAI-compatible chat-completions endpoint."""

    name = 'openai'

    def __init__(self, config: PolicyConfig) -> None:
        codec = load_codec(config)
        if not isinstance(codec, TextActionCodec):
            raise PolicyConfigError(
                f'the openai backend needs a text action space; {codec.space.name} uses '
                'vocabulary ids (serve such models with rt2 serve and the openvla_http backend)')
        super().__init__(codec.space)
        self.config = config
        self.codec = codec
        self.checker = ActionChecker(codec, config)
        extra = config.extra
        self.plan_mode = extra_str(extra, 'plan', 'none', PLAN_MODES)
        self.regex = codec.action_regex(plan=self.plan_mode)
        self.send_structured = extra_bool(extra, 'structured_outputs', True)
        self.send_guided = extra_bool(extra, 'guided_regex', False)
        # Enough for the longest valid answer, so a constrained server always finishes one.
        default_tokens = codec.max_action_bytes(self.plan_mode) + 1
        self.max_tokens = extra_int(extra, 'max_tokens', default_tokens, minimum=1)
        self.jpeg_quality = extra_int(extra, 'jpeg_quality', DEFAULT_JPEG_QUALITY, minimum=1)
        try:
            self.temperature = float(extra.get('temperature', 0.0))
        except (TypeError, ValueError):
            raise PolicyConfigError('policy extra temperature must be a number') from None
        try:
            self.template = resolve_template(config.prompt_template, 'rt2')
        except PromptError as exc:
            raise PolicyConfigError(f'policy.prompt_template: {exc}') from None
        self.transport = HttpPolicyTransport(config, user_agent='rt2_ros openai')
        self.base = api_base(config.url)
        self.model_name: Optional[str] = config.model_name or None

    def close(self) -> None:
        self.transport.close()

    def resolve_model(self) -> str:
        """Return the model to request: configured, or the first one the server lists."""
        if self.model_name:
            return self.model_name
        url = self.base + '/models'
        reply = self.transport.request('GET', url, headers={'Accept': 'application/json'})
        raise_for_status(reply, url)
        try:
            listing = json.loads(reply.body)
            model = listing['data'][0]['id']
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            raise PolicyProtocolError(f'{url} did not list any model: {reply.snippet()}') \
                from None
        if not isinstance(model, str) or not model:
            raise PolicyProtocolError(f'{url} listed a model without an id')
        self.model_name = model
        return model

    def build_request(self, observation: Observation, model: str) -> Dict[str, Any]:
        """Return the chat-completions request body for one observation."""
        image_url = JPEG_URL_PREFIX + base64.b64encode(self.jpeg_for(observation)).decode()
        return self._body(image_url, observation, model)

    def encode_request(self, observation: Observation, model: str) -> bytes:
        """
        Return build_request's body serialized, without passing the image through json.dumps.

        base64 needs no JSON escaping, so the image is spliced into the serialized rest as
        bytes: json.dumps would scan every character of it (0.1 ms at 224x224, 0.4 ms at
        640x480 on the development VM) and .encode() would copy it again.
        """
        jpeg = self.jpeg_for(observation)
        text = json.dumps(self._body(_IMAGE_MARK, observation, model))
        head, tail = text.split(json.dumps(_IMAGE_MARK)[1:-1], 1)
        return b''.join((head.encode(), JPEG_URL_PREFIX.encode(), base64.b64encode(jpeg),
                         tail.encode()))

    def jpeg_for(self, observation: Observation) -> bytes:
        """
        Return the JPEG to send: the camera's own file when it came along, else our encoding.

        A camera JPEG is sent as it is: no second lossy encoding and no encoding time (its
        quality is the camera's, not extra jpeg_quality).
        """
        if observation.jpeg is not None:
            return observation.jpeg
        return encode_jpeg(check_image(observation.image), self.jpeg_quality)

    def _body(self, image_url: str, observation: Observation, model: str) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            'model': model,
            'messages': [{
                'role': 'user',
                'content': [
                    {'type': 'image_url', 'image_url': {'url': image_url}},
                    {'type': 'text', 'text': render_prompt(self.template,
                                                           str(observation.instruction),
                                                           observation.gripper)},
                ],
            }],
            'max_tokens': self.max_tokens,
            'temperature': self.temperature,
            'n': 1,
            'stream': False,
        }
        if self.send_structured:
            body['structured_outputs'] = {'regex': self.regex}
        if self.send_guided:
            body['guided_regex'] = self.regex
        return body

    def parse_reply(self, body: bytes) -> str:
        """Return the assistant text of a chat-completions reply, or raise."""
        try:
            reply = json.loads(body)
        except (ValueError, RecursionError):
            raise PolicyProtocolError('reply is not JSON') from None
        if not isinstance(reply, dict):
            raise PolicyProtocolError('reply is not a JSON object')
        if 'error' in reply:
            raise PolicyProtocolError(f'server error: {str(reply["error"])[:300]}')
        try:
            content = reply['choices'][0]['message']['content']
        except (KeyError, IndexError, TypeError):
            raise PolicyProtocolError('reply has no choices[0].message.content') from None
        if isinstance(content, list):
            # Some servers return content parts; join the text ones.
            content = ''.join(part.get('text', '') for part in content
                              if isinstance(part, dict) and part.get('type') == 'text')
        if not isinstance(content, str):
            raise PolicyProtocolError('reply content is not text')
        return content

    def infer(self, observation: Observation) -> PolicyResult:
        start = time.monotonic()
        model = self.resolve_model()
        encode_start = time.monotonic()
        payload = self.encode_request(observation, model)
        encode_s = time.monotonic() - encode_start
        url = self.base + '/chat/completions'
        reply = self.transport.request('POST', url, payload, json_headers())
        raise_for_status(reply, url)
        text = self.parse_reply(reply.body)
        try:
            decoded = self.codec.decode(text)
        except ActionDecodeError as exc:
            raise PolicyInvalidAction(f'model wrote {text[:120]!r}: {exc}') from None
        timing = PolicyTiming(request_s=time.monotonic() - start,
                              inference_s=reply.header_float('x-inference-seconds'),
                              encode_s=encode_s)
        result = self.checker.result(np.asarray(decoded.values), text, timing, decoded.plan)
        result.decoded = [decoded]
        return result

"""
The `rt2 serve` web app: one local policy behind three wire protocols robots already speak.

- `POST /act` - OpenVLA's deploy.py protocol (json_numpy body, or the `{"encoded": ...}` form),
  so OpenVLA's own clients and our `openvla_http` backend work unchanged. Unlike deploy.py, a
  failure is an HTTP error status with a JSON `detail`, never a 200 "error".
- websocket at `/` - openpi's protocol (metadata frame, then msgpack-numpy observation -> reply
  with `actions` (horizon, dims) and `server_timing`), so openpi-client's WebsocketClientPolicy
  and our `openpi` backend work unchanged. Errors come back as a text frame, then a close.
- `POST /v1/chat/completions` (and `GET /v1/models`) - OpenAI-compatible, for text-action models,
  honouring `structured_outputs.regex` / `guided_regex`.
- `GET /healthz` - liveness, the only route that needs no API key.

All model calls go through micro-batchers (rt2_ros.serving.batcher) on one worker thread. Every
input is bounded: body bytes, image pixels, instruction length, tokens; nothing is unpickled.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import json
import logging
import time
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple
import uuid

import numpy as np

from rt2_ros.actions import ActionSpace
from rt2_ros.decoding import ConstraintError
from rt2_ros.policy.base import (
    Observation, PolicyError, PolicyInvalidAction, PolicyResult, PolicyTimeout,
    PolicyUnavailable,
)
from rt2_ros.policy.image_codec import decode_data_url
from rt2_ros.policy.wire import (
    check_json_structure, json_numpy_dumps, json_numpy_loads, msgpack_numpy_dumps,
    msgpack_numpy_loads, WireFormatError, WireLimitError, WireLimits,
)
from rt2_ros.serving.auth import ApiKeyMiddleware
from rt2_ros.serving.batcher import MicroBatcher, ServerBusy

LOG = logging.getLogger('rt2_ros.serve')


class ServedModel(Protocol):
    """What the app needs from a model (LocalTransformersPolicy provides it)."""

    space: ActionSpace

    def infer_batch(self, observations: Sequence[Observation],
                    return_exceptions: bool = False) -> List[Any]:
        """Return one PolicyResult (or, with return_exceptions, its PolicyError) each."""

    def generate_text(self, images: Sequence[np.ndarray], prompts: Sequence[str],
                      regex: Optional[str] = None, max_new_tokens: int = 64,
                      temperature: float = 0.0) -> List[str]:
        """Return one generated text per (image, prompt)."""


@dataclass
class ServeSettings:
    """Limits and batching of one server."""

    model_name: str = 'rt2-local'
    api_key: Optional[str] = None
    unnorm_key: Optional[str] = None
    max_body_bytes: int = 16 << 20
    max_image_pixels: int = 2048 * 2048
    max_instruction_chars: int = 2000
    max_new_tokens: int = 512
    max_regex_chars: int = 20000
    max_batch: int = 8
    batch_window_s: float = 0.005
    batch_max_wait_s: float = 0.025
    max_pending: int = 256
    image_keys: Tuple[str, ...] = ('observation/image', 'image',
                                   'observation/exterior_image_1_left', 'images')
    prompt_keys: Tuple[str, ...] = ('prompt', 'instruction')


# (image, prompt, regex or None, max_new_tokens, temperature) of one chat completion.
TextRequest = Tuple[np.ndarray, str, Optional[str], int, float]


class RequestError(Exception):
    """A client mistake, answered with status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_status(exc: BaseException) -> Tuple[int, str]:
    """Map any failure to (HTTP status, message) without leaking internals."""
    if isinstance(exc, RequestError):
        return exc.status, str(exc)
    if isinstance(exc, ConstraintError):
        return 400, f'unusable constraint: {exc}'
    if isinstance(exc, WireLimitError):
        return 413, str(exc)
    if isinstance(exc, WireFormatError):
        return 400, str(exc)
    if isinstance(exc, ServerBusy):
        return 503, f'server busy: {exc}'
    if isinstance(exc, PolicyTimeout):
        return 504, f'model timed out: {exc}'
    if isinstance(exc, PolicyUnavailable):
        return 503, f'model unavailable: {exc}'
    if isinstance(exc, PolicyInvalidAction):
        return 500, f'model produced an invalid action: {exc}'
    if isinstance(exc, PolicyError):
        return 500, f'model failed: {exc}'
    LOG.error('internal error', exc_info=exc)
    return 500, f'internal server error ({type(exc).__name__})'


def to_rgb_image(value: Any, max_pixels: int, where: str = 'image') -> np.ndarray:
    """
    Accept what OpenVLA's server accepts (PIL converts to RGB) and return HxWx3 uint8.

    HxW grayscale, HxWx1, HxWx3, HxWx4 (alpha dropped) and channel-first 3xHxW (openpi ALOHA
    clients) are accepted; anything else is a 422.
    """
    if not isinstance(value, np.ndarray):
        raise RequestError(422, f'{where} must be a numpy array (json_numpy / msgpack-numpy)')
    if value.dtype != np.uint8:
        raise RequestError(422, f'{where} must be uint8, got {value.dtype}')
    if value.ndim == 3 and value.shape[0] in (1, 3) and value.shape[2] not in (1, 3, 4):
        value = np.transpose(value, (1, 2, 0))
    if value.ndim == 2:
        value = value[:, :, None]
    if value.ndim != 3 or value.shape[2] not in (1, 3, 4) or value.shape[0] == 0 or \
            value.shape[1] == 0:
        raise RequestError(422, f'{where} must be HxWx3 (or HxW, HxWx4), got {value.shape}')
    if value.shape[0] * value.shape[1] > max_pixels:
        raise RequestError(413, f'{where} has {value.shape[0]}x{value.shape[1]} pixels, more '
                           f'than {max_pixels}')
    if value.shape[2] == 1:
        return np.repeat(value, 3, axis=2)
    return np.array(value[:, :, :3], order='C')


def check_instruction(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise RequestError(422, 'instruction must be a string')
    if len(value) > limit:
        raise RequestError(413, f'instruction has {len(value)} characters, more than {limit}')
    if not value.strip():
        raise RequestError(422, 'instruction is empty')
    return value


def _isolate(call: Any, items: Sequence[Any]) -> List[Any]:
    """Run call on a batch; if it fails, retry items one by one so one bad input fails alone."""
    try:
        results = list(call(list(items)))
    except Exception as exc:  # noqa: B902 - becomes that request's error reply
        if len(items) == 1:
            return [exc]
        results = []
        for item in items:
            try:
                results.extend(call([item]))
            except Exception as single:  # noqa: B902
                results.append(single)
    return results


class ModelRunner:
    """Batched access to one model from the event loop."""

    def __init__(self, model: ServedModel, settings: ServeSettings) -> None:
        self.model = model
        self.settings = settings
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix='rt2-model')
        self.actions = MicroBatcher(self._run_observations, self.executor, settings.max_batch,
                                    settings.batch_window_s, settings.max_pending, 'actions',
                                    settings.batch_max_wait_s)
        self.texts = MicroBatcher(self._run_texts, self.executor, settings.max_batch,
                                  settings.batch_window_s, settings.max_pending, 'texts',
                                  settings.batch_max_wait_s)

    def start(self) -> None:
        self.actions.start()
        self.texts.start()

    async def stop(self) -> None:
        await self.actions.stop()
        await self.texts.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _run_observations(self, observations: Sequence[Observation]) -> List[Any]:
        start = time.monotonic()

        def infer(batch: List[Observation]) -> List[Any]:
            # Invalid model output fails only its own request.
            return self.model.infer_batch(batch, return_exceptions=True)

        results = _isolate(infer, observations)
        elapsed = time.monotonic() - start
        for result in results:
            if isinstance(result, PolicyResult) and result.timing.inference_s is None:
                result.timing.inference_s = elapsed
        return results

    def _run_texts(self, items: Sequence['TextRequest']) -> List[Any]:
        # One generate call per (regex, max_new_tokens, temperature) group: they apply batch-wide.
        groups: Dict[Tuple[Optional[str], int, float], List[int]] = {}
        for index, (_, _, regex, max_tokens, temperature) in enumerate(items):
            groups.setdefault((regex, max_tokens, temperature), []).append(index)
        results: List[Any] = [None] * len(items)
        for (regex, max_tokens, temperature), indices in groups.items():
            def generate(batch: List[int]) -> List[str]:
                return self.model.generate_text([items[i][0] for i in batch],
                                                [items[i][1] for i in batch],
                                                regex=regex, max_new_tokens=max_tokens,
                                                temperature=temperature)
            for index, text in zip(indices, _isolate(generate, indices)):
                results[index] = text
        return results


def create_app(model: ServedModel, settings: ServeSettings) -> Any:
    """Build the FastAPI app serving model (wrapped in the API-key check when a key is set)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import JSONResponse, Response
    from starlette.websockets import WebSocketDisconnect

    runner = ModelRunner(model, settings)
    limits = WireLimits(max_message_bytes=settings.max_body_bytes,
                        max_array_bytes=settings.max_body_bytes,
                        max_total_array_bytes=settings.max_body_bytes)
    space = model.space
    metadata = {
        'server': 'rt2_ros', 'model': settings.model_name, 'action_space': space.name,
        'action_names': list(space.names), 'action_dim': space.size, 'action_horizon': 1,
    }

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        runner.start()
        yield
        await runner.stop()

    app = FastAPI(title='rt2 serve', docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.runner = runner

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get('content-length', '')
        if declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise RequestError(413, f'body of {declared} bytes exceeds '
                               f'{settings.max_body_bytes}')
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise RequestError(413, f'body exceeds {settings.max_body_bytes} bytes')
            chunks.append(chunk)
        return b''.join(chunks)

    @app.get('/healthz')
    async def healthz() -> Response:
        return Response('OK\n', media_type='text/plain')

    # ------------------------------------------------------------ OpenVLA /act

    def parse_act(body: bytes) -> Tuple[Observation, bool]:
        payload = json_numpy_loads(body, limits)
        encoded = isinstance(payload, dict) and 'encoded' in payload
        if encoded:
            if len(payload) != 1 or not isinstance(payload['encoded'], str):
                raise RequestError(400, 'the encoded form is {"encoded": "<JSON text>"} only')
            payload = json_numpy_loads(payload['encoded'], limits)
        if not isinstance(payload, dict):
            raise RequestError(400, 'body must be a JSON object with image and instruction')
        for key in ('image', 'instruction'):
            if key not in payload:
                raise RequestError(422, f'body has no {key!r}')
        image = to_rgb_image(payload['image'], settings.max_image_pixels)
        instruction = check_instruction(payload['instruction'], settings.max_instruction_chars)
        extras: Dict[str, Any] = {}
        unnorm_key = payload.get('unnorm_key')
        if unnorm_key is not None:
            if not isinstance(unnorm_key, str) or len(unnorm_key) > 200:
                raise RequestError(422, 'unnorm_key must be a short string or null')
            if unnorm_key != settings.unnorm_key:
                # Un-normalizing with other statistics than asked would scale every motion.
                served = settings.unnorm_key
                how = f'with {served!r} (rt2 serve --unnorm-key)' if served else \
                    'nothing (no dataset_statistics.json)'
                raise RequestError(400, f'unnorm_key {unnorm_key!r} is not available: this '
                                   f'server un-normalizes {how}')
            extras['unnorm_key'] = unnorm_key
        gripper = payload.get('gripper')
        if gripper is not None and (isinstance(gripper, bool) or
                                    not isinstance(gripper, (int, float)) or
                                    not 0.0 <= gripper <= 1.0):
            raise RequestError(422, 'gripper must be the opening, a number from 0 to 1')
        return Observation(image=image, instruction=instruction, extras=extras,
                           gripper=None if gripper is None else float(gripper)), encoded

    @app.post('/act')
    async def act(request: Request) -> Response:
        try:
            observation, encoded = parse_act(await read_body(request))
            result = await runner.actions.submit(observation)
        except Exception as exc:  # noqa: B902 - every failure gets a status and a detail
            status, message = error_status(exc)
            return JSONResponse({'detail': message}, status_code=status)
        action = result.actions[0] if result.horizon == 1 else result.actions
        text = json_numpy_dumps(np.asarray(action, dtype=np.float64))
        if encoded:
            text = json.dumps(text)
        headers = {}
        if result.timing.inference_s is not None:
            headers['X-Inference-Seconds'] = f'{result.timing.inference_s:.6f}'
        return Response(text, media_type='application/json', headers=headers)

    # ------------------------------------------------------------ openpi websocket

    def find_key(message: Dict[str, Any], keys: Sequence[str]) -> Any:
        for key in keys:
            if key in message:
                value = message[key]
                if isinstance(value, dict) and value:
                    # ALOHA-style {"images": {"cam_high": ...}}: the first camera.
                    value = next(iter(value.values()))
                return value
        return None

    def parse_ws(frame: bytes) -> Observation:
        message = msgpack_numpy_loads(frame, limits)
        if not isinstance(message, dict):
            raise RequestError(400, 'observation must be a msgpack map')
        image = find_key(message, settings.image_keys)
        if image is None:
            raise RequestError(422, 'observation has no image under any of '
                               f'{", ".join(settings.image_keys)}')
        prompt = find_key(message, settings.prompt_keys)
        if prompt is None:
            raise RequestError(422, 'observation has no prompt under any of '
                               f'{", ".join(settings.prompt_keys)}')
        return Observation(
            image=to_rgb_image(image, settings.max_image_pixels),
            instruction=check_instruction(prompt, settings.max_instruction_chars))

    @app.websocket('/')
    async def openpi(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.send_bytes(msgpack_numpy_dumps(metadata))
            while True:
                message = await websocket.receive()
                if message['type'] == 'websocket.disconnect':
                    return
                frame = message.get('bytes')
                try:
                    if frame is None:
                        raise RequestError(400, 'send observations as binary msgpack frames')
                    start = time.monotonic()
                    result = await runner.actions.submit(parse_ws(frame))
                except Exception as exc:  # noqa: B902 - openpi reports errors as text frames
                    status, detail = error_status(exc)
                    await websocket.send_text(f'rt2 serve error {status}: {detail}')
                    await websocket.close(code=1011 if status >= 500 else 1008)
                    return
                infer_s = result.timing.inference_s
                reply = {
                    'actions': np.asarray(result.actions, dtype=np.float64),
                    'server_timing': {
                        'infer_ms': 1000.0 * (infer_s if infer_s is not None
                                              else time.monotonic() - start)},
                }
                if isinstance(result.raw, str):
                    reply['text'] = result.raw
                await websocket.send_bytes(msgpack_numpy_dumps(reply))
        except WebSocketDisconnect:
            return

    # ------------------------------------------------------------ OpenAI-compatible

    def openai_error(status: int, message: str) -> Response:
        kinds = {400: 'BadRequestError', 404: 'NotFoundError', 413: 'BadRequestError',
                 422: 'BadRequestError', 503: 'ServiceUnavailableError'}
        kind = kinds.get(status, 'InternalServerError')
        return JSONResponse({'error': {'message': message, 'type': kind, 'param': None,
                                       'code': status}}, status_code=status)

    def parse_chat(body: bytes) -> TextRequest:
        if len(body) > settings.max_body_bytes:
            raise RequestError(413, 'body too large')
        check_json_structure(body, limits)  # bounded objects before json.loads builds them
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):
            raise RequestError(400, 'body is not valid JSON') from None
        if not isinstance(request, dict):
            raise RequestError(400, 'body must be a JSON object')
        requested = request.get('model')
        if requested not in (None, '', settings.model_name):
            raise RequestError(404, f'model {str(requested)[:100]!r} is not served here; this '
                               f'server serves {settings.model_name!r}')
        if request.get('stream'):
            raise RequestError(400, 'streaming is not supported')
        if request.get('n', 1) != 1:
            raise RequestError(400, 'only n = 1 is supported')
        messages = request.get('messages')
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, 'messages must be a non-empty list')
        users = [m for m in messages if isinstance(m, dict) and m.get('role') == 'user']
        if not users:
            raise RequestError(400, 'no user message')
        content = users[-1].get('content')
        parts = [{'type': 'text', 'text': content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise RequestError(400, 'message content must be a string or a list of parts')
        images, texts = [], []
        for part in parts:
            if not isinstance(part, dict):
                raise RequestError(400, 'content parts must be objects')
            if part.get('type') == 'image_url':
                url = part.get('image_url')
                url = url.get('url') if isinstance(url, dict) else url
                images.append(decode_data_url(url, settings.max_body_bytes,
                                              settings.max_image_pixels))
            elif part.get('type') == 'text':
                if not isinstance(part.get('text'), str):
                    raise RequestError(400, 'text parts need a string "text"')
                texts.append(part['text'])
            else:
                raise RequestError(400, f'unsupported content part type {part.get("type")!r}')
        if len(images) != 1:
            raise RequestError(400, f'exactly one image is needed, got {len(images)}')
        prompt = check_instruction('\n'.join(texts), settings.max_instruction_chars)
        regex = None
        structured = request.get('structured_outputs')
        if structured is not None:
            if not isinstance(structured, dict) or set(structured) - {'regex'}:
                raise RequestError(400, 'only structured_outputs.regex is supported')
            regex = structured.get('regex')
        if request.get('guided_regex') is not None:
            if regex is not None and regex != request['guided_regex']:
                raise RequestError(400, 'structured_outputs.regex and guided_regex disagree')
            regex = request['guided_regex']
        if regex is not None and (not isinstance(regex, str) or not regex or
                                  len(regex) > settings.max_regex_chars):
            raise RequestError(400, 'regex must be a non-empty string of at most '
                               f'{settings.max_regex_chars} characters')
        max_tokens = request.get('max_completion_tokens', request.get('max_tokens', 64))
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or \
                not 1 <= max_tokens <= settings.max_new_tokens:
            raise RequestError(400, f'max_tokens must be 1..{settings.max_new_tokens}')
        # Greedy unless asked: a robot wants the model's best action, not a sample.
        temperature = request.get('temperature', 0.0)
        if temperature is None:
            temperature = 0.0
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                not 0.0 <= temperature <= 2.0:
            raise RequestError(400, 'temperature must be a number in 0..2')
        return images[0], prompt, regex, max_tokens, float(temperature)

    @app.post('/v1/chat/completions')
    async def chat_completions(request: Request) -> Response:
        try:
            item = parse_chat(await read_body(request))
            start = time.monotonic()
            text = await runner.texts.submit(item)
            elapsed = time.monotonic() - start
        except Exception as exc:  # noqa: B902 - OpenAI-style error object
            status, message = error_status(exc)
            return openai_error(status, message)
        reply = {
            'id': f'chatcmpl-{uuid.uuid4().hex}', 'object': 'chat.completion',
            'created': int(time.time()), 'model': settings.model_name,
            'choices': [{'index': 0, 'finish_reason': 'stop', 'logprobs': None,
                         'message': {'role': 'assistant', 'content': text}}],
            'usage': None,
        }
        return JSONResponse(reply, headers={'X-Inference-Seconds': f'{elapsed:.6f}'})

    @app.get('/v1/models')
    async def models() -> Dict[str, Any]:
        return {'object': 'list', 'data': [{'id': settings.model_name, 'object': 'model',
                                            'created': 0, 'owned_by': 'rt2_ros'}]}

    if settings.api_key:
        return ApiKeyMiddleware(app, settings.api_key)
    return app

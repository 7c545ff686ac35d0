"""
`rt2 serve`: host one local VLA checkpoint for many robots.

One GPU box, many robots: the model is loaded once and served over the protocols robots already
speak - OpenVLA's `POST /act`, openpi's websocket, and OpenAI-compatible chat completions - with
concurrent requests micro-batched. A policy server drives robot arms, so binding anything but a
loopback address requires an API key (read from an environment variable, never from the command
line where `ps` would show it).
"""
import argparse
import os
from pathlib import Path
import sys

from rt2_ros.cli.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'serve', help='serve a local model over OpenVLA /act, openpi websocket and OpenAI APIs',
        description='Serve a local VLA checkpoint to robots: OpenVLA-compatible POST /act, '
                    'openpi-compatible websocket at /, OpenAI-compatible /v1/chat/completions, '
                    'GET /healthz. Prints "listening on URL" once it accepts connections.')
    parser.add_argument('--model', required=True, help='checkpoint directory (transformers)')
    parser.add_argument('--backend', default='local',
                        help='policy backend that loads --model (default local; a registered '
                        'plug-in or module:Class with infer_batch and generate_text)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (default 127.0.0.1; others need --api-key-env)')
    parser.add_argument('--port', type=int, default=8000, help='port (0 = pick a free one)')
    parser.add_argument('--api-key-env', default='',
                        help='environment variable holding the API key clients must send')
    parser.add_argument('--tls-cert', help='PEM certificate for HTTPS/WSS')
    parser.add_argument('--tls-key', help='PEM private key for --tls-cert')
    parser.add_argument('--space', default='', help="action space (default: the checkpoint's)")
    parser.add_argument('--unnorm-key', default='', help='dataset statistics key to un-normalize '
                        'with when a request names none')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:1, ...')
    parser.add_argument('--model-name', default='', help='model id reported to OpenAI clients '
                        '(default: the checkpoint directory name)')
    parser.add_argument('--max-batch', type=int, default=8,
                        help='most requests run as one batch (1 disables batching)')
    parser.add_argument('--batch-window-ms', type=float, default=5.0,
                        help='how long to wait for more requests before running a batch')
    parser.add_argument('--batch-wait-ms', type=float, default=25.0,
                        help='longest wait for clients answered by the last batch to come back '
                             '(keeps concurrent clients in one batch; 0 = window only)')
    parser.add_argument('--max-body-mb', type=float, default=16.0, help='request size limit')
    parser.add_argument('--max-image-pixels', type=int, default=2048 * 2048,
                        help='largest accepted image (width x height)')
    parser.add_argument('--log-level', default='warning',
                        choices=('critical', 'error', 'warning', 'info', 'debug'))
    parser.set_defaults(func=run_serve)


def validate_args(args: argparse.Namespace) -> str:
    """Check everything that needs no model; return the API key ('' for none)."""
    from rt2_ros.serving.runner import is_loopback

    api_key = ''
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, '').strip()
        if not api_key:
            raise UsageError(f'--api-key-env {args.api_key_env}: that environment variable is '
                             'empty or unset')
    if not is_loopback(args.host) and not api_key:
        raise UsageError(
            f'refusing to bind {args.host} without an API key: anyone who can reach it could '
            'drive the robots this server controls. Set a key in an environment variable and '
            'pass --api-key-env VAR, or bind 127.0.0.1 and tunnel (ssh -L)')
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError('--tls-cert and --tls-key go together')
    for path in (args.tls_cert, args.tls_key):
        if path and not Path(path).is_file():
            raise UsageError(f'{path} does not exist')
    if not 0 <= args.port <= 65535:
        raise UsageError(f'--port {args.port} is not a port number')
    if args.max_batch < 1 or args.batch_window_ms < 0 or args.batch_wait_ms < 0 or \
            args.max_body_mb <= 0 or args.max_image_pixels < 1:
        raise UsageError('--max-batch, --batch-window-ms, --batch-wait-ms, --max-body-mb and '
                         '--max-image-pixels must be positive')
    if not Path(args.model).is_dir():
        raise UsageError(f'--model {args.model} is not a directory')
    return api_key


def load_model(args: argparse.Namespace):
    """Load the checkpoint with the --backend class, turning load failures into UsageError."""
    from rt2_ros.policy.base import PolicyConfig, PolicyError
    from rt2_ros.policy.factory import backend_class, UnknownBackendError
    backend = getattr(args, 'backend', 'local')
    try:
        cls = backend_class(backend)
    except UnknownBackendError as exc:
        raise UsageError(str(exc)) from None
    except ImportError as exc:
        raise UsageError(f'the {backend} backend is not available: {exc}') from None
    missing = [m for m in ('infer_batch', 'generate_text') if not callable(getattr(cls, m, None))]
    if missing:
        raise UsageError(f'backend {backend} cannot be served: it has no {" or ".join(missing)}')

    config = PolicyConfig(backend=backend, model_path=str(args.model), device=args.device,
                          unnorm_key=args.unnorm_key)
    if args.space:
        config.action_space = args.space
    try:
        return cls(config)
    except (OSError, ValueError, PolicyError) as exc:
        raise UsageError(f'cannot load {args.model}: {exc}') from None


def run_serve(args: argparse.Namespace) -> int:
    from rt2_ros.serving.runner import bind_socket, print_url, serve

    api_key = validate_args(args)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        raise UsageError(f'cannot bind {args.host}:{args.port}: {exc.strerror or exc}') from None
    model = load_model(args)
    from rt2_ros.serving.app import create_app, ServeSettings

    settings = ServeSettings(
        model_name=args.model_name or Path(args.model).resolve().name,
        api_key=api_key or None,
        unnorm_key=getattr(getattr(model.codec, 'unnormalizer', None), 'key', None),
        max_body_bytes=int(args.max_body_mb * (1 << 20)),
        max_image_pixels=args.max_image_pixels, max_batch=args.max_batch,
        batch_window_s=args.batch_window_ms / 1000.0,
        batch_max_wait_s=args.batch_wait_ms / 1000.0)
    app = create_app(model, settings)
    print(f'rt2 serve: {settings.model_name} ({model.space.name} actions); POST /act, '
          'websocket /, POST /v1/chat/completions, GET /healthz', file=sys.stderr, flush=True)
    serve(app, sock, tls_cert=args.tls_cert, tls_key=args.tls_key,
          ws_max_size=settings.max_body_bytes, log_level=args.log_level,
          on_ready=lambda url: print_url(url, prefix='rt2 serve: listening on '))
    return 0

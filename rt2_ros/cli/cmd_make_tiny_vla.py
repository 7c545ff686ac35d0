"""
`rt2 make-tiny-vla`: write a tiny, randomly initialised VLA checkpoint (no downloads).

It lets anyone run the local backend, `rt2 serve` and the controller against a real
transformers model in seconds; a random model's actions are meaningless but always valid,
because decoding is constrained.
"""
import argparse
from pathlib import Path

from rt2_ros.cli.errors import UsageError

SIZE_OPTIONS = (
    ('image_size', 'input image side in pixels'),
    ('patch_size', 'vision patch side in pixels'),
    ('hidden', 'language model width'),
    ('layers', 'language model layers'),
    ('heads', 'language model attention heads'),
    ('vision_hidden', 'vision tower width'),
    ('vision_layers', 'vision tower layers'),
    ('vision_heads', 'vision tower attention heads'),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'make-tiny-vla', help='write a tiny random VLA checkpoint',
        description='Build a tiny, randomly initialised PaliGemma-style VLA checkpoint '
                    '(SigLIP + Gemma from config, local tokenizer) with its action space.')
    parser.add_argument('out', metavar='OUT', help='directory to write (must be empty or new)')
    parser.add_argument('--space', default='rt2',
                        help='action scheme: rt2 (integers as text tokens, the PaLI-X way) or '
                             'openvla (last 256 vocabulary ids); default rt2')
    parser.add_argument('--seed', type=int, default=0, help='weight initialisation seed')
    parser.add_argument('--force', action='store_true', help='write into a non-empty directory')
    for name, text in SIZE_OPTIONS:
        parser.add_argument('--' + name.replace('_', '-'), dest=name, type=int, help=text)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rt2_ros.models.tiny_vla import SPACES, spec_from_args, TinyVLAError

    if args.space not in SPACES:
        raise UsageError(f'unknown --space {args.space!r}; choose one of {", ".join(SPACES)}')
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f'{out} exists and is not a directory')
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f'{out} is not empty; pass --force to write into it')
    sizes = {name: getattr(args, name) for name, _ in SIZE_OPTIONS}
    try:
        spec = spec_from_args(args.space, args.seed, **sizes)
    except TinyVLAError as exc:
        raise UsageError(str(exc)) from None
    from rt2_ros.models.tiny_vla import save_tiny_vla
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        save_tiny_vla(out, spec)
    except OSError as exc:
        raise UsageError(f'cannot write {out}: {exc}') from None
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f'wrote {out} ({args.space} actions, seed {args.seed}, {size / 1e6:.1f} MB): '
          f'load it with policy backend "local", model_path {out}')
    return 0

"""
`rt2`: the project's tool CLI.

Each subcommand lives in its own module exposing `register(subparsers)`; the module sets
`func` on its parser. Modules are imported only when listed here, so a missing optional dependency
of one subcommand (torch, fastapi, rosbags) never breaks the others.
"""
import argparse
import importlib
import sys
from typing import List, Optional

from rt2_ros import __version__
from rt2_ros.cli.errors import UsageError

SUBCOMMAND_MODULES = [
    'rt2_ros.cli.actions',
    'rt2_ros.cli.demo',
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='rt2', description='RT-2 style vision-language-action tools for ROS 2 robots.')
    parser.add_argument('--version', action='version', version=f'rt2_ros {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f'rt2 {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())

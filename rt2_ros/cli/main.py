"""
`rt2`: the project's tool CLI.

Each subcommand lives in its own module `rt2_ros/cli/cmd_<name>.py` exposing
`register(subparsers)`, which adds a parser and sets `func` on it. Modules are found by name, so
adding a subcommand touches no shared list. Heavy or optional dependencies (torch, fastapi,
rosbags, rclpy) are imported inside the command functions, never at module level, so `rt2 --help`
stays fast and one missing dependency never breaks the other subcommands. Mistakes in the
arguments follow the same rule as UsageError: one line on stderr, exit status 2.
"""
import argparse
import importlib
import pkgutil
import sys
from typing import List, NoReturn, Optional

from rt2_ros import __version__
import rt2_ros.cli
from rt2_ros.cli.errors import UsageError

COMMAND_PREFIX = 'cmd_'


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser with the project's error convention (subcommand parsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def command_modules() -> List[str]:
    """Names of the subcommand modules, sorted."""
    found = pkgutil.iter_modules(rt2_ros.cli.__path__)
    return sorted(f'rt2_ros.cli.{info.name}' for info in found
                  if info.name.startswith(COMMAND_PREFIX))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog='rt2', description='RT-2 style vision-language-action tools for ROS 2 robots.')
    parser.add_argument('--version', action='version', version=f'rt2_ros {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in command_modules():
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

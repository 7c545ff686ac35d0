"""
`rt2 params`: print rt2_controller's parameters from the table the node declares them from.

docs/controller.md's parameter table is this command's output (a test compares them), so the
documentation cannot drift from the node.
"""
import argparse

from rt2_ros.controller import params


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'params', help="print rt2_controller's parameters as a markdown table",
        description="Print rt2_controller's parameters (name, default, unit and range, whether "
                    'they apply live, description) as the markdown table of docs/controller.md.')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(params.markdown_table())
    return 0

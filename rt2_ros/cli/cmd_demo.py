"""
`rt2 demo`: the main job a new user runs with `make demo`.

Until the simulator and the demo model exist, it runs what the package has end to end: the RT-2
paper's action strings through the codecs, and says plainly that it is not yet a closed loop.
"""
import argparse
import json

from rt2_ros.actions import load_action_space, make_codec

PAPER_OUTPUTS = [
    '1 128 91 241 5 101 127 217',
    'Plan: pick rock. Action: 1 143 129 123 145 114 115 127',
    '0 128 128 128 128 128 128 255',
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser('demo', help='run the demo',
                                   description='Run the rt2_ros demo.')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("rt2 demo: decoding the RT-2 paper's action strings with the rt2 action space.")
    print('(The closed-loop simulator demo is not built yet; this is what exists end to end.)')
    codec = make_codec(load_action_space('rt2'))
    for text in PAPER_OUTPUTS:
        decoded = codec.decode(text)
        print(f'\n  model output: {text}')
        print('  decoded:      ' + json.dumps({
            name: round(value, 5) for name, value in zip(decoded.names, decoded.values)}))
        print(f'  terminate: {decoded.terminate}   plan: {decoded.plan!r}')
    return 0

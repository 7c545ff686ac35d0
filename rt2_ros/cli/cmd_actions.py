"""
`rt2 actions`: decode and encode action tokens from the command line.

Meant for debugging a model by hand: paste what it wrote, see the action in robot units.
"""
import argparse
import json
from typing import List, Optional

from rt2_ros.actions import (
    ActionDecodeError, ActionEncodeError, ActionSpaceError, load_action_space,
    load_dataset_statistics, make_codec, preset_names, StatisticsError,
    unnormalizer_from_statistics,
)
from rt2_ros.actions.codec import Codec, TextActionCodec
from rt2_ros.cli.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser('actions', help='decode/encode action tokens',
                                   description='Decode and encode action tokens.')
    sub = parser.add_subparsers(dest='actions_command', metavar='ACTION_COMMAND', required=True)

    decode = sub.add_parser('decode', help='model output -> action JSON')
    _space_options(decode)
    decode.add_argument('tokens', nargs='+', metavar='TOKENS',
                        help='model text (text spaces) or integer token ids (vocabulary spaces)')
    decode.set_defaults(func=run_decode)

    encode = sub.add_parser('encode', help='action values -> tokens')
    _space_options(encode)
    encode.add_argument('--plan', help='write the chain-of-thought form with this plan')
    encode.add_argument('values', nargs='+', metavar='VALUES', help='one value per dimension')
    encode.set_defaults(func=run_encode)

    listing = sub.add_parser('list', help='list the shipped action spaces')
    listing.set_defaults(func=run_list)

    show = sub.add_parser('show', help='print an action space as JSON')
    show.add_argument('--space', required=True, help='preset name or YAML path')
    show.set_defaults(func=run_show)


def _space_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--space', required=True, help='preset name (rt2, openvla, rt1_mobile) '
                        'or YAML path')
    parser.add_argument('--vocab-size', type=int, help='vocabulary size for inverted-tail id '
                        'spaces (OpenVLA with Llama-2: 32000)')
    parser.add_argument('--stats', help='OpenVLA dataset_statistics.json for un-normalization')
    parser.add_argument('--unnorm-key', help='dataset key inside --stats')


def build_codec(args: argparse.Namespace) -> Codec:
    """Codec from --space/--vocab-size/--stats/--unnorm-key; user mistakes become UsageError."""
    try:
        space = load_action_space(args.space)
        if args.vocab_size is not None:
            space = space.with_vocab_size(args.vocab_size)
        unnormalizer = None
        if args.stats:
            stats = load_dataset_statistics(args.stats)
            unnormalizer = unnormalizer_from_statistics(stats, args.unnorm_key, space.size)
        elif args.unnorm_key:
            raise UsageError('--unnorm-key needs --stats')
        return make_codec(space, unnormalizer)
    except (ActionSpaceError, StatisticsError, ActionEncodeError) as exc:
        raise UsageError(str(exc)) from None


def _parse_ids(tokens: List[str]) -> List[int]:
    ids: List[int] = []
    for chunk in tokens:
        for part in chunk.replace(',', ' ').split():
            try:
                ids.append(int(part))
            except ValueError:
                raise UsageError(f'token id {part!r} is not an integer') from None
    return ids


def run_decode(args: argparse.Namespace) -> int:
    codec = build_codec(args)
    try:
        if isinstance(codec, TextActionCodec):
            decoded = codec.decode(' '.join(args.tokens))
        else:
            decoded = codec.decode(_parse_ids(args.tokens))
    except ActionDecodeError as exc:
        raise UsageError(f'invalid action ({exc.kind}): {exc}') from None
    print(json.dumps(decoded.to_dict()))
    return 0


def _parse_values(values: List[str]) -> List[float]:
    out: List[float] = []
    for chunk in values:
        for part in chunk.replace(',', ' ').split():
            try:
                out.append(float(part))
            except ValueError:
                raise UsageError(f'value {part!r} is not a number') from None
    return out


def run_encode(args: argparse.Namespace) -> int:
    codec = build_codec(args)
    values = _parse_values(args.values)
    try:
        if isinstance(codec, TextActionCodec):
            print(codec.encode(values, plan=args.plan))
        else:
            if args.plan:
                raise UsageError('--plan applies to text action spaces only')
            print(' '.join(str(i) for i in codec.encode(values)))
    except ActionEncodeError as exc:
        raise UsageError(str(exc)) from None
    return 0


def run_list(args: argparse.Namespace) -> int:
    for name in preset_names():
        space = load_action_space(name)
        print(f'{name:12s} {space.size:2d} dims  {space.tokenization:9s}  {space.description}')
    return 0


def run_show(args: argparse.Namespace) -> Optional[int]:
    try:
        space = load_action_space(args.space)
    except ActionSpaceError as exc:
        raise UsageError(str(exc)) from None
    info = {
        'name': space.name, 'description': space.description,
        'tokenization': space.tokenization, 'binning': space.binning,
        'rounding': space.rounding, 'bins': space.bins, 'source': space.source,
        'gripper': {'dimension': space.gripper_dimension, 'open_value': space.gripper_open_value,
                    'closed_value': space.gripper_closed_value},
        'dimensions': [
            {'name': d.name, 'role': d.role, 'type': d.kind, 'low': d.low, 'high': d.high,
             'bins': d.bins, 'unit': d.unit, 'axis': d.axis, 'labels': list(d.labels)}
            for d in space.dimensions],
    }
    if space.vocab is not None:
        info['vocab'] = {'layout': space.vocab.layout, 'vocab_size': space.vocab.vocab_size,
                         'first_id': space.vocab.first_id}
    print(json.dumps(info, indent=2))
    return 0

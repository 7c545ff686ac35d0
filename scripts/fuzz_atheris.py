#!/usr/bin/env python3
"""
Coverage-guided fuzzing (atheris / libFuzzer) of every parser that reads untrusted bytes.

Targets: json_numpy and msgpack (rt2 serve requests, server replies), text_action (model text,
rt2 and rt1_mobile), token_ids (OpenVLA ids), image (JPEG/PNG data URLs of chat requests and
the controller's compressed camera frames),
bag (rosbag2 MCAP/sqlite3 files: the replay and evaluation tools), or all (the first input byte
picks one). An input may only produce a value or the parser's typed error; anything else is
a crash that libFuzzer reports with the input that caused it. Memory and time per input are
bounded with libFuzzer's own options.

    .venv/bin/python scripts/fuzz_atheris.py all -runs=100000 -rss_limit_mb=1024 -timeout=10
    .venv/bin/python scripts/fuzz_atheris.py msgpack -max_total_time=600 corpus_dir/

An empty corpus directory is first filled with valid seeds (a json_numpy observation, an openpi
observation, action texts, token ids, small JPEG/PNG images, a tiny bag), so mutation starts
next to the interesting checks instead of at random bytes.

test/test_fuzz_atheris.py runs `all` for a few hundred inputs.
"""
import os
from pathlib import Path
import sys
import tempfile

ROOT = Path(__file__).resolve().parent.parent
TARGET_NAMES = ('json_numpy', 'msgpack', 'text_action', 'token_ids', 'image', 'bag')


def build_targets():
    """Return {name: function(bytes)}; each function lets only typed errors out."""
    import atheris
    import cv2  # noqa: F401 - imported (uninstrumented) before the package
    import msgpack  # noqa: F401
    import numpy as np

    with atheris.instrument_imports(include=['rt2_ros']):
        from rt2_ros.actions import ActionDecodeError, load_action_space, make_codec
        from rt2_ros.controller.images import compressed_to_rgb, ImageConversionError
        from rt2_ros.policy.image_codec import decode_data_url
        from rt2_ros.policy.wire import json_numpy_loads, msgpack_numpy_loads, WireFormatError

    text_codecs = [make_codec(load_action_space(n)) for n in ('rt2', 'rt1_mobile')]
    ids_codec = make_codec(load_action_space('openvla'))

    def json_numpy(data: bytes) -> None:
        try:
            json_numpy_loads(data)
        except WireFormatError:
            pass

    def msgpack_target(data: bytes) -> None:
        try:
            msgpack_numpy_loads(data)
        except WireFormatError:
            pass

    def text_action(data: bytes) -> None:
        codec = text_codecs[data[0] % 2] if data else text_codecs[0]
        try:
            decoded = codec.decode(data[1:])
        except ActionDecodeError:
            return
        assert np.all(np.isfinite(decoded.values))
        assert np.all(decoded.values >= np.array(codec.space.lows) - 1e-9)
        assert np.all(decoded.values <= np.array(codec.space.highs) + 1e-9)

    def token_ids(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        ids = [provider.ConsumeIntInRange(31700, 32050) if provider.ConsumeBool()
               else provider.ConsumeInt(9) for _ in range(provider.ConsumeIntInRange(0, 9))]
        try:
            decoded = ids_codec.decode(ids)
        except ActionDecodeError:
            return
        assert np.all(np.abs(decoded.values) <= 1.0)

    def image(data: bytes) -> None:
        import base64
        kind = 'png' if data[:1] == b'\x89' else 'jpeg'
        url = f'data:image/{kind};base64,' + base64.b64encode(data).decode()
        try:
            decoded = decode_data_url(url, max_pixels=4096 * 4096)
        except WireFormatError:
            decoded = None
        if decoded is not None:
            assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3
        try:  # the controller's camera/image_raw/compressed path
            compressed_to_rgb(kind, data)
        except ImageConversionError:
            pass

    targets = {'json_numpy': json_numpy, 'msgpack': msgpack_target, 'text_action': text_action,
               'token_ids': token_ids, 'image': image}
    bag = _bag_target(atheris)
    if bag is not None:
        targets['bag'] = bag
    return targets


def _bag_target(atheris):
    """Fuzz the bag reader with mutated storage files (when rt2_ros.bags is present)."""
    try:
        with atheris.instrument_imports(include=['rt2_ros']):
            from rt2_ros.bags.errors import BagError
            from rt2_ros.bags.reader import BagReader
    except ImportError:
        return None
    folder = Path(tempfile.mkdtemp(prefix='rt2-fuzz-bag-'))

    def bag(data: bytes) -> None:
        suffix = '.db3' if data[:1] == b'S' else '.mcap'
        path = folder / f'fuzz{suffix}'
        path.write_bytes(data)
        try:
            with BagReader(path) as reader:
                for topic in list(reader.topics)[:4]:
                    for message in reader.messages([topic]):
                        try:
                            reader.deserialize(message)
                        except BagError:
                            break
        except BagError:
            pass
        finally:
            path.unlink(missing_ok=True)
    return bag


def seeds(name: str) -> list:
    """Return valid inputs for a target (prefixed with its selector byte for `all`)."""
    import cv2
    import numpy as np
    from rt2_ros.policy.wire import json_numpy_dumps, msgpack_numpy_dumps

    image = np.arange(8 * 6 * 3, dtype=np.uint8).reshape(6, 8, 3)
    by_target = {
        'json_numpy': [json_numpy_dumps({'image': image, 'instruction': 'pick'}).encode(),
                       json_numpy_dumps(np.linspace(-1, 1, 7)).encode()],
        'msgpack': [msgpack_numpy_dumps({'observation/image': image, 'prompt': 'pick',
                                         'actions': np.zeros((5, 8))})],
        'text_action': [b'\x00' + b'1 128 91 241 5 101 127 217',
                        b'\x00Plan: pick rock. Action: 1 143 129 123 145 114 115 127',
                        b'\x01' + b'1 128 128 128 128 128 128 128 128 128 128'],
        'token_ids': [bytes(range(40))],
        'image': [cv2.imencode('.png', image)[1].tobytes(),
                  cv2.imencode('.jpg', image)[1].tobytes()],
        'bag': _bag_seeds(),
    }
    if name != 'all':
        return by_target.get(name, [])
    out = []
    for index, target in enumerate(t for t in TARGET_NAMES if by_target.get(t)):
        out += [bytes([index]) + seed for seed in by_target[target]]
    return out


def _bag_seeds() -> list:
    try:
        from rt2_ros.bags.synthetic import SessionSpec, write_session
    except ImportError:
        return []
    folder = Path(tempfile.mkdtemp(prefix='rt2-fuzz-seed-'))
    out = []
    for storage in ('mcap', 'sqlite3'):
        write_session(folder / storage, SessionSpec(duration_s=0.3), storage=storage)
        out += [p.read_bytes() for p in (folder / storage).iterdir()
                if p.suffix in ('.mcap', '.db3')]
    return out


def main(argv=None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] not in TARGET_NAMES + ('all',):
        print(f'usage: {Path(argv[0]).name} {{{",".join(TARGET_NAMES)},all}} [libFuzzer '
              'options] [corpus dirs]', file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault('OPENCV_LOG_LEVEL', 'ERROR')
    import atheris

    name = argv.pop(1)
    targets = build_targets()
    corpus = [Path(a) for a in argv[1:] if not a.startswith('-') and Path(a).is_dir()]
    if corpus and not any(corpus[0].iterdir()):
        for index, seed in enumerate(seeds(name)):
            (corpus[0] / f'seed{index}').write_bytes(seed)
    if name == 'all':
        ordered = [targets[k] for k in TARGET_NAMES if k in targets]

        def one_input(data: bytes) -> None:
            if data:
                ordered[data[0] % len(ordered)](data[1:])
    else:
        if name not in targets:
            print(f'target {name} is not available here', file=sys.stderr)
            return 2
        one_input = targets[name]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == '__main__':
    sys.exit(main())

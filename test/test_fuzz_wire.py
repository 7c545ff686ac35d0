"""
Fuzzing the wire decoders `rt2 serve` and the clients run on untrusted bytes, with bounds.

For any input the outcome is a valid value or a WireFormatError - and it comes quickly and
without unbounded memory. The property tests build near-valid messages (a real array whose
dtype, shape, byte count or nesting is then broken) rather than random bytes only, because
those reach the checks that matter; every example's allocation peak is measured with
tracemalloc and bounded relative to its size. The amplification tests are the worst cases
found: messages at the server's 16 MB body limit built to make the parser allocate as many
objects as possible (they used to cost 0.4-1.2 GB and 20 s of CPU before being refused), and
image bombs for `rt2 serve`'s data URLs and the controller's compressed camera topic.

Longer runs: `RT2_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest test/test_fuzz_*.py`, and
coverage-guided: scripts/fuzz_atheris.py.
"""
import base64
import json
import os
import time
import tracemalloc

from hypothesis import given, HealthCheck, settings, strategies as st
import msgpack
import numpy as np
import pytest
from rt2_ros.policy.wire import (
    ALLOWED_DTYPES, json_numpy_loads, msgpack_numpy_loads, WireFormatError, WireLimitError,
    WireLimits,
)

SERVER_BYTES = 16 << 20  # rt2 serve's default --max-body-mb
SERVER_LIMITS = WireLimits(max_message_bytes=SERVER_BYTES, max_array_bytes=SERVER_BYTES,
                           max_total_array_bytes=SERVER_BYTES)
FUZZ = settings(max_examples=int(os.environ.get('RT2_FUZZ_EXAMPLES', '150')), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = sorted(ALLOWED_DTYPES)[:12] + [
    '|O', 'V8', '<U4', 'S3', "[('a', '<i4')]", '<c16', 'M8[s]', '', 'float64', 'f8', 5, None,
    b'<f8']


def _peak_bytes(decode, data):
    """Decode data; return (outcome, peak traced bytes, seconds)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        outcome = decode(data)
    except WireFormatError as exc:
        outcome = exc
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return outcome, peak, seconds


def _check_arrays(value):
    """Every array a decoder returns has an allowed dtype and consistent size."""
    if isinstance(value, np.ndarray):
        assert value.dtype.str in ALLOWED_DTYPES
        assert value.nbytes == value.size * value.dtype.itemsize
    elif isinstance(value, dict):
        for item in value.values():
            _check_arrays(item)
    elif isinstance(value, list):
        for item in value:
            _check_arrays(item)


@st.composite
def hostile_array_fields(draw):
    """Draw a real array's fields, then break some of them."""
    dtype = np.dtype(draw(st.sampled_from(['<f8', '<f4', '|u1', '<i8', '|b1'])))
    shape = draw(st.lists(st.integers(0, 6), max_size=3))
    data = np.zeros(int(np.prod(shape)), dtype).tobytes()
    fields = {'dtype': dtype.str, 'shape': shape, 'data': data}
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(['dtype', 'shape', 'data', 'extra', 'drop']))
        if what == 'dtype':
            fields['dtype'] = draw(st.sampled_from(DTYPES))
        elif what == 'shape':
            fields['shape'] = draw(st.one_of(
                st.lists(st.one_of(st.integers(-3, 10 ** 12), st.booleans(), st.floats(),
                                   st.text(max_size=2)), max_size=12),
                st.integers(-2 ** 63, 2 ** 64 - 1), st.text(max_size=3), st.none()))
        elif what == 'data':
            fields['data'] = draw(st.binary(max_size=80))
        elif what == 'extra':
            fields['extra'] = draw(st.integers(-2 ** 63, 2 ** 64 - 1))
        else:
            fields.pop(draw(st.sampled_from(sorted(fields))), None)
    return fields


def _nest(draw, value):
    for _ in range(draw(st.integers(0, 3))):
        value = draw(st.sampled_from([lambda v: [v], lambda v: {'image': v, 'x': 1},
                                      lambda v: {'actions': [v, v]}]))(value)
    return value


@FUZZ
@given(st.data())
def test_json_numpy_near_valid_messages_decode_or_raise_typed_errors(data):
    fields = data.draw(hostile_array_fields())
    obj = {k: v.decode('latin-1') if isinstance(v, bytes) else v
           for k, v in fields.items() if k != 'data'}
    if 'data' in fields:
        obj['__numpy__'] = data.draw(st.sampled_from([
            base64.b64encode(fields['data']).decode(), fields['data'].hex(), '!' * 8, '']))
    message = json.dumps(_nest(data.draw, obj)).encode()
    outcome, peak, seconds = _peak_bytes(json_numpy_loads, message)
    if not isinstance(outcome, WireFormatError):
        _check_arrays(outcome)
    assert peak <= 64 * len(message) + (1 << 20) and seconds < 1.0


@FUZZ
@given(st.data())
def test_msgpack_near_valid_messages_decode_or_raise_typed_errors(data):
    fields = data.draw(hostile_array_fields())
    obj = {b'__ndarray__': True}
    obj.update({k.encode(): v for k, v in fields.items()})
    message = msgpack.packb(_nest(data.draw, obj), use_bin_type=True)
    if data.draw(st.booleans()):  # flip, cut or extend the encoding itself
        cut = data.draw(st.integers(0, len(message)))
        message = message[:cut] + data.draw(st.binary(max_size=8)) + message[cut + 1:]
    outcome, peak, seconds = _peak_bytes(msgpack_numpy_loads, message)
    if not isinstance(outcome, WireFormatError):
        _check_arrays(outcome)
    assert peak <= 64 * len(message) + (1 << 20) and seconds < 1.0


def _json_objects(n):
    return b'[' + b'{},' * (n // 3 - 1) + b'{}]'


def _json_lists(n):
    return b'[' + b'[],' * (n // 3 - 1) + b'[]]'


def _json_strings(n):
    return b'[' + b'"",' * (n // 3 - 1) + b'""]'


def _msgpack_nested_lists(n):
    inner = b'\xdc' + (160).to_bytes(2, 'big') + b'\x90' * 160
    count = min((n - 5) // len(inner), 99_000)  # each array within max_array_len
    return b'\xdd' + count.to_bytes(4, 'big') + inner * count


def _msgpack_nested_maps(n):
    inner = b'\xdc' + (160).to_bytes(2, 'big') + b'\x80' * 160
    count = min((n - 5) // len(inner), 99_000)
    return b'\xdd' + count.to_bytes(4, 'big') + inner * count


@pytest.mark.parametrize('build, decode', [
    (_json_objects, json_numpy_loads), (_json_lists, json_numpy_loads),
    (_json_strings, json_numpy_loads), (_msgpack_nested_lists, msgpack_numpy_loads),
    (_msgpack_nested_maps, msgpack_numpy_loads),
], ids=['json_objects', 'json_lists', 'json_strings', 'msgpack_lists', 'msgpack_maps'])
def test_amplification_at_the_server_body_limit_is_refused_cheaply(build, decode):
    body = build(SERVER_BYTES - 64)
    outcome, peak, _ = _peak_bytes(lambda b: decode(b, SERVER_LIMITS), body)
    start = time.perf_counter()  # timed again without tracemalloc's overhead
    with pytest.raises(WireLimitError):
        decode(body, SERVER_LIMITS)
    seconds = time.perf_counter() - start
    print(f'{len(body) / 1e6:.1f} MB -> refused in {seconds * 1000:.0f} ms, '
          f'peak {peak / 1e6:.1f} MB allocated')
    assert isinstance(outcome, WireLimitError)
    assert peak < 64 << 20 and seconds < 2.0


def test_a_legitimate_message_at_the_limit_still_decodes():
    image = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    from rt2_ros.policy.wire import json_numpy_dumps, msgpack_numpy_dumps
    text = json_numpy_dumps({'image': image, 'instruction': 'pick, then place, then (go) [back]'})
    assert np.array_equal(json_numpy_loads(text, SERVER_LIMITS)['image'], image)
    packed = msgpack_numpy_dumps({'observation/image': image, 'prompt': 'pick',
                                  'state': np.zeros((100, 8))})
    assert msgpack_numpy_loads(packed, SERVER_LIMITS)['state'].shape == (100, 8)


def _jpeg_declaring(width, height):
    import cv2
    data = bytearray(cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.find(b'\xff\xc0')
    data[sof + 5:sof + 9] = height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
    return bytes(data)


BOMBS = {
    # found by scripts/fuzz_atheris.py: an IDAT claiming 1.6 GB (cost 1.6 GB and 7 s in OpenCV)
    'png_chunk_longer_than_data': base64.b64decode(
        'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGCAIAAABxZ0isX18iOklEQVRCYII='),
    # no IDAT before IEND, then bytes OpenCV reads as a 3.9 GB chunk
    'png_data_after_iend': base64.b64decode(
        'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAGCAIAAABxZ0isAAAAAElFTkSuQmCC6urq6urq6g=='),
    # 600 bytes declaring 30000x30000 pixels: OpenCV allocated 5 GB and decoded for 52 s
    'jpeg_30000x30000': _jpeg_declaring(30000, 30000),
    'jpeg_9000x9000': _jpeg_declaring(9000, 9000),
}


def _decode_data_url(data):
    from rt2_ros.policy.image_codec import decode_data_url
    kind = 'png' if data.startswith(b'\x89PNG') else 'jpeg'
    return decode_data_url(f'data:image/{kind};base64,' + base64.b64encode(data).decode())


def _decode_camera_frame(data):
    from rt2_ros.controller.images import compressed_to_rgb
    return compressed_to_rgb('png' if data.startswith(b'\x89PNG') else 'jpeg', data)


@pytest.mark.parametrize('name', sorted(BOMBS))
@pytest.mark.parametrize('decode', [_decode_data_url, _decode_camera_frame],
                         ids=['rt2_serve_data_url', 'controller_compressed_camera'])
def test_image_bombs_are_refused_before_opencv_allocates(name, decode):
    from rt2_ros.controller.images import ImageConversionError
    start = time.perf_counter()
    with pytest.raises((WireFormatError, ImageConversionError)):
        decode(BOMBS[name])
    assert time.perf_counter() - start < 0.5

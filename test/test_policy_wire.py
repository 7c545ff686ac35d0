"""Wire formats: interoperable with the reference libraries, and safe on hostile input."""
import base64
import json

from hypothesis import given, settings, strategies as st
import json_numpy
import msgpack
import numpy as np
from openpi_client import msgpack_numpy as openpi_msgpack
import pytest
from rt2_ros.policy.image_codec import decode_data_url, encode_jpeg, jpeg_data_url
from rt2_ros.policy.wire import (
    json_numpy_dumps, json_numpy_loads, msgpack_numpy_dumps, msgpack_numpy_loads,
    WireFormatError, WireLimitError, WireLimits,
)

IMAGE = np.arange(224 * 224 * 3, dtype=np.uint32).astype(np.uint8).reshape(224, 224, 3)


def test_json_numpy_interoperates_with_the_json_numpy_package_both_ways():
    message = {'image': IMAGE, 'instruction': 'pick', 'action': np.linspace(-1, 1, 7),
               'scalar': np.float32(0.5), 'transposed': np.arange(6).reshape(2, 3).T}
    ours = json_numpy_loads(json_numpy.dumps(message))
    theirs = json_numpy.loads(json_numpy_dumps(message))
    for decoded in (ours, theirs):
        assert np.array_equal(decoded['image'], IMAGE) and decoded['image'].dtype == np.uint8
        assert np.array_equal(decoded['action'], message['action'])
        assert np.array_equal(decoded['transposed'], message['transposed'])
        assert decoded['scalar'] == np.float32(0.5) and decoded['instruction'] == 'pick'


def test_msgpack_numpy_interoperates_with_openpi_client_both_ways():
    message = {'observation/image': IMAGE, 'prompt': 'pick', 'state': np.zeros(8, np.float32),
               'nested': {'chunk': np.ones((10, 7))}, 'step': np.int64(3)}
    ours = msgpack_numpy_loads(openpi_msgpack.packb(message))
    theirs = openpi_msgpack.unpackb(msgpack_numpy_dumps(message))
    for decoded in (ours, theirs):
        assert np.array_equal(decoded['observation/image'], IMAGE)
        assert decoded['state'].dtype == np.float32
        assert decoded['nested']['chunk'].shape == (10, 7)
        assert decoded['step'] == 3 and decoded['prompt'] == 'pick'


def _np_json(data: bytes, dtype: str, shape: list) -> str:
    return json.dumps({'__numpy__': base64.b64encode(data).decode(), 'dtype': dtype,
                       'shape': shape})


@pytest.mark.parametrize('text, error', [
    ('{', WireFormatError),
    ('[' * 50000 + ']' * 50000, WireLimitError),
    (_np_json(b'\0' * 8, '|O', [1]), WireFormatError),            # object dtype: pickle
    (_np_json(b'\0' * 8, "[('a', '<i4')]", [1]), WireFormatError),
    (_np_json(b'\0' * 8, '<f8', [2]), WireFormatError),           # byte count mismatch
    (_np_json(b'', '<f8', [10 ** 12]), WireLimitError),           # huge claim, no data
    (_np_json(b'\0' * 8, '<f8', [-1]), WireFormatError),
    (_np_json(b'\0' * 8, '<f8', [True]), WireFormatError),
    (_np_json(b'\0' * 8, '<f8', [1] * 40), WireLimitError),
    ('{"__numpy__": "!!!!!!!!!!!!", "dtype": "<f8", "shape": [1]}', WireFormatError),
    ('{"__numpy__": 5, "dtype": "<f8", "shape": [1]}', WireFormatError),
    ('{"__numpy__": "", "dtype": "<f8", "shape": [0], "x": 1}', WireFormatError),
    ('1' * 5000, WireFormatError),
])
def test_json_numpy_rejects_malformed_input_with_typed_errors(text, error):
    with pytest.raises(error):
        json_numpy_loads(text)


def _packed_array(data: bytes, dtype: str, shape: list) -> bytes:
    return msgpack.packb({b'__ndarray__': True, b'data': data, b'dtype': dtype, b'shape': shape})


@pytest.mark.parametrize('data, error', [
    (b'', WireFormatError),
    (b'\xc1', WireFormatError),
    (b'\x91' * 5000, WireFormatError),                            # nesting beyond the stack
    (msgpack.packb(1) + msgpack.packb(2), WireFormatError),       # trailing data
    (_packed_array(b'\0' * 8, '|O', [1]), WireFormatError),
    (_packed_array(b'\0' * 8, '<f8', [10 ** 12]), WireLimitError),
    (_packed_array(b'\0' * 7, '<f8', [1]), WireFormatError),
    (_packed_array(b'\0' * 8, 'V8', [1]), WireFormatError),
    (msgpack.packb({b'__ndarray__': True, b'data': 'text', b'dtype': '<f8', b'shape': [0]}),
     WireFormatError),
    (msgpack.packb({b'__npgeneric__': True, b'data': 'x', b'dtype': '<f8'}), WireFormatError),
    (msgpack.packb({1: 2}), WireFormatError),
    (msgpack.packb(msgpack.ExtType(1, b'x')), WireFormatError),
])
def test_msgpack_numpy_rejects_malformed_input_with_typed_errors(data, error):
    with pytest.raises(error):
        msgpack_numpy_loads(data)


def test_total_array_budget_bounds_many_small_arrays():
    limits = WireLimits(max_total_array_bytes=1000)
    message = msgpack_numpy_dumps({str(i): np.zeros(100) for i in range(5)})
    with pytest.raises(WireLimitError):
        msgpack_numpy_loads(message, limits)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_wire_errors_only(data):
    for decode in (msgpack_numpy_loads, json_numpy_loads):
        try:
            decode(data)
        except WireFormatError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) |
                    st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.sampled_from(['__numpy__', 'dtype', 'shape',
                                                     '__ndarray__', 'data', 'a']),
                                    inner, max_size=4), max_leaves=12))
def test_structured_garbage_decodes_or_raises_wire_errors_only(value):
    for blob, decode in ((json.dumps(value).encode(), json_numpy_loads),
                         (msgpack.packb(value), msgpack_numpy_loads)):
        try:
            decode(blob)
        except WireFormatError:
            pass


def test_jpeg_data_url_round_trip_is_close():
    smooth = np.zeros((120, 160, 3), np.uint8)
    smooth[:, :, 0] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]
    smooth[:, :, 2] = 200
    decoded = decode_data_url(jpeg_data_url(smooth, quality=95))
    assert decoded.shape == smooth.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - smooth).mean() < 2.0


def test_decode_data_url_rejects_bombs_remote_urls_and_garbage():
    big = encode_jpeg(np.zeros((600, 800, 3), np.uint8))
    url = 'data:image/jpeg;base64,' + base64.b64encode(big).decode()
    with pytest.raises(WireLimitError):
        decode_data_url(url, max_pixels=100_000)  # rejected from the header, before decoding
    for bad in ('http://169.254.169.254/latest/meta-data', 'data:image/jpeg;base64,!!!',
                'data:image/gif;base64,R0lGODlh', 'data:image/png;base64,' +
                base64.b64encode(b'\x89PNG\r\n\x1a\n' + b'\0' * 40).decode(), 'data:'):
        with pytest.raises(WireFormatError):
            decode_data_url(bad)

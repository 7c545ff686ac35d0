"""Image conversion without cv_bridge: every supported layout gives the same RGB pixels."""
import cv2
import numpy as np
import pytest
from rt2_ros.controller import images

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


def _pack(array, pad=0):
    """Rows of `array` as bytes with `pad` extra bytes per row (like a padded camera buffer)."""
    height = array.shape[0]
    rows = array.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.zeros((height, rows.shape[1] + pad), np.uint8)
    padded[:, :rows.shape[1]] = rows
    return padded.tobytes(), rows.shape[1] + pad


@pytest.mark.parametrize('pad', [0, 3])
@pytest.mark.parametrize('encoding, make', [
    ('rgb8', lambda rgb: rgb),
    ('bgr8', lambda rgb: rgb[:, :, ::-1]),
    ('8UC3', lambda rgb: rgb[:, :, ::-1]),
    ('rgba8', lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])),
    ('bgra8', lambda rgb: np.dstack([rgb[:, :, ::-1], np.zeros(rgb.shape[:2], np.uint8)])),
])
def test_colour_encodings(encoding, make, pad):
    data, step = _pack(np.ascontiguousarray(make(RGB)), pad)
    out = images.raw_to_rgb(encoding, 6, 5, step, False, data)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    assert np.array_equal(out, RGB)


def test_mono8_becomes_grey_rgb():
    grey = RGB[:, :, 0].copy()
    data, step = _pack(grey, pad=1)
    out = images.raw_to_rgb('mono8', 6, 5, step, False, data)
    assert np.array_equal(out, np.dstack([grey] * 3))


@pytest.mark.parametrize('big_endian', [False, True])
def test_sixteen_bit_scales_like_cv_bridge_and_honours_endianness(big_endian):
    wide = RNG.integers(0, 65536, size=(6, 5), dtype=np.uint16)
    stored = wide.astype('>u2' if big_endian else '<u2')
    data, step = _pack(stored, pad=2)
    out = images.raw_to_rgb('mono16', 6, 5, step, big_endian, data)
    expected = np.round(wide.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)
    assert np.array_equal(out[:, :, 0], expected)
    rgb16 = np.dstack([wide, wide // 2, wide // 3]).astype('>u2' if big_endian else '<u2')
    data, step = _pack(rgb16)
    out = images.raw_to_rgb('rgb16', 6, 5, step, big_endian, data)
    assert np.array_equal(out[:, :, 1], np.round((wide // 2) * 255.0 / 65535.0).astype(np.uint8))


def test_rgb8_without_resize_is_a_view_of_the_message_buffer():
    data, step = _pack(RGB, pad=4)
    buffer = bytearray(data)
    out = images.raw_to_rgb('rgb8', 6, 5, step, False, buffer)
    assert np.shares_memory(out, np.frombuffer(buffer, np.uint8))
    assert not out.flags.writeable


def test_resize_once_to_requested_size():
    big = RNG.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    data, step = _pack(big[:, :, ::-1].copy(), pad=8)
    out = images.raw_to_rgb('bgr8', 48, 64, step, False, data, size=(32, 24))
    assert out.shape == (24, 32, 3)
    assert np.array_equal(out, cv2.resize(big, (32, 24), interpolation=cv2.INTER_AREA))


def test_yuv_and_bayer_decode():
    uyvy = np.full((4, 4, 2), 128, np.uint8)
    uyvy[:, :, 1] = 200  # luma
    data, step = _pack(uyvy)
    out = images.raw_to_rgb('yuv422', 4, 4, step, False, data)
    # neutral chroma: grey; luma 200 in video range is 214 in full range (BT.601)
    assert out.shape == (4, 4, 3) and set(out[0, 0].tolist()) == {214}
    bayer = np.full((4, 4), 90, np.uint8)
    data, step = _pack(bayer)
    assert images.raw_to_rgb('bayer_rggb8', 4, 4, step, False, data).shape == (4, 4, 3)


@pytest.mark.parametrize('kwargs, message', [
    ({'encoding': 'xyz9'}, 'unsupported image encoding'),
    ({'step': 10}, 'step 10 is smaller'),
    ({'data': b'\x00' * 20}, 'needs'),
    ({'height': 0}, 'empty image'),
])
def test_bad_fields_raise_clear_errors(kwargs, message):
    fields = {'encoding': 'rgb8', 'height': 6, 'width': 5, 'step': 15, 'is_bigendian': False,
              'data': RGB.tobytes()}
    fields.update(kwargs)
    with pytest.raises(images.ImageConversionError, match=message):
        images.raw_to_rgb(**fields)


@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_compressed(ext):
    ok, encoded = cv2.imencode(ext, RGB[:, :, ::-1])
    assert ok
    out = images.compressed_to_rgb(ext[1:], encoded.tobytes())
    assert out.shape == (6, 5, 3)
    assert np.array_equal(out, cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1])
    if ext == '.png':
        assert np.array_equal(out, RGB)
    assert images.compressed_to_rgb('png', encoded.tobytes(), size=(10, 12)).shape == (12, 10, 3)


def test_compressed_garbage():
    with pytest.raises(images.ImageConversionError, match='cannot decode'):
        images.compressed_to_rgb('jpeg', b'not an image')
    with pytest.raises(images.ImageConversionError, match='empty'):
        images.compressed_to_rgb('jpeg', b'')

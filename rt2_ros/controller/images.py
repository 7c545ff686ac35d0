"""
Camera images to the HxWx3 uint8 RGB array every policy takes (numpy + OpenCV, no ROS).

The package's one image converter: the controller node, the demo and the bag tools all call it,
so a policy sees the same pixels from the same message on every path (cv_bridge, which has no
PyPI wheel, is not used). It works on the message fields, not on message classes, so it never
imports ROS.

Cost matters: at 30 Hz and 640x480 a needless copy is visible in the latency budget. The raw
buffer is wrapped, never copied: np.frombuffer, then a strided view that drops row padding
(`step`), then a channel-order view. The first real copy is the one resize (or the colour
conversion when no resize is asked for); an rgb8 image without padding and without resize is
returned as a read-only view of the message buffer.
"""
from dataclasses import dataclass
import sys
from typing import Any, Optional, Tuple

import cv2
import numpy as np
from rt2_ros.policy.image_codec import check_png_chunks, image_header
from rt2_ros.policy.wire import WireFormatError

# The largest compressed frame decoded (image.width/height go up to 8192). The header is read
# first: a 600-byte JPEG declaring 30000x30000 pixels made OpenCV allocate 5 GB and decode for
# most of a minute, and a PNG chunk claiming 1.6 GB made it allocate that much.
MAX_COMPRESSED_PIXELS = 8192 * 8192


class ImageConversionError(ValueError):
    """The image cannot be turned into RGB (unknown encoding, short buffer, bad compression)."""


@dataclass(frozen=True)
class _Encoding:
    channels: int
    dtype: str
    to_rgb: Optional[int]  # cv2 conversion code from the native layout to RGB, None = already


_U8, _U16 = 'u1', 'u2'
ENCODINGS = {
    'rgb8': _Encoding(3, _U8, None),
    'bgr8': _Encoding(3, _U8, cv2.COLOR_BGR2RGB),
    'rgba8': _Encoding(4, _U8, cv2.COLOR_RGBA2RGB),
    'bgra8': _Encoding(4, _U8, cv2.COLOR_BGRA2RGB),
    'mono8': _Encoding(1, _U8, cv2.COLOR_GRAY2RGB),
    '8UC1': _Encoding(1, _U8, cv2.COLOR_GRAY2RGB),
    '8UC3': _Encoding(3, _U8, cv2.COLOR_BGR2RGB),
    '8UC4': _Encoding(4, _U8, cv2.COLOR_BGRA2RGB),
    'rgb16': _Encoding(3, _U16, None),
    'bgr16': _Encoding(3, _U16, cv2.COLOR_BGR2RGB),
    'rgba16': _Encoding(4, _U16, cv2.COLOR_RGBA2RGB),
    'bgra16': _Encoding(4, _U16, cv2.COLOR_BGRA2RGB),
    'mono16': _Encoding(1, _U16, cv2.COLOR_GRAY2RGB),
    '16UC1': _Encoding(1, _U16, cv2.COLOR_GRAY2RGB),
    'bayer_rggb8': _Encoding(1, _U8, cv2.COLOR_BayerBG2RGB),
    'bayer_bggr8': _Encoding(1, _U8, cv2.COLOR_BayerRG2RGB),
    'bayer_gbrg8': _Encoding(1, _U8, cv2.COLOR_BayerGR2RGB),
    'bayer_grbg8': _Encoding(1, _U8, cv2.COLOR_BayerGB2RGB),
    'yuv422': _Encoding(2, _U8, cv2.COLOR_YUV2RGB_UYVY),
    'uyvy': _Encoding(2, _U8, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': _Encoding(2, _U8, cv2.COLOR_YUV2RGB_YUYV),
    'yuyv': _Encoding(2, _U8, cv2.COLOR_YUV2RGB_YUYV),
}
_HOST_BIG_ENDIAN = sys.byteorder == 'big'


def supported_encodings() -> Tuple[str, ...]:
    return tuple(ENCODINGS)


def raw_view(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
             data: Any) -> np.ndarray:
    """
    Wrap a raw image buffer as an (H, W[, C]) array without copying.

    Row padding is skipped with a strided view; 16-bit data in the other byte order gets a
    byte-swapped dtype (still a view). Raises ImageConversionError on inconsistent fields.
    """
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise ImageConversionError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(ENCODINGS)}')
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image {width}x{height}')
    itemsize = 1 if spec.dtype == _U8 else 2
    row_bytes = width * spec.channels * itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than a {encoding} row of {width} pixels ({row_bytes} bytes)')
    buffer = np.frombuffer(data, dtype=np.uint8)
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise ImageConversionError(
            f'{encoding} image {width}x{height} step {step} needs {needed} bytes, '
            f'got {buffer.size}')
    rows = np.lib.stride_tricks.as_strided(
        buffer, shape=(height, row_bytes), strides=(step, 1), writeable=False)
    if itemsize == 2:
        big = bool(is_bigendian)
        dtype = np.dtype('>u2' if big else '<u2')
        rows = rows.view(dtype)
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    if spec.channels == 2:  # packed YUV: OpenCV wants (H, W, 2)
        shape = (height, width, 2)
    return rows.reshape(shape)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale 16-bit to 8-bit the way cv_bridge does (convertTo with 255/65535, rounded)."""
    if array.dtype == np.uint8:
        return array
    wide = array.astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def raw_to_rgb(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
               data: Any, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """
    Convert raw image fields to HxWx3 uint8 RGB, resized to size=(width, height) if given.

    Equivalent to cv_bridge's imgmsg_to_cv2(msg, 'rgb8') followed by one cv2.resize.
    """
    view = raw_view(encoding, height, width, step, is_bigendian, data)
    spec = ENCODINGS[encoding]
    if spec.dtype == _U16:
        view = _to_uint8(view)
    if spec.channels == 3 and spec.to_rgb is not None and size is None:
        # bgr -> rgb as a reversed-channel view; the final contiguous copy below is the only one.
        return np.ascontiguousarray(view[:, :, ::-1])
    if size is not None and spec.channels in (1, 3, 4) and encoding[:5] != 'bayer':
        view = resize(view, size)
    if spec.to_rgb is not None:
        if not view.flags.c_contiguous:
            view = np.ascontiguousarray(view)
        view = cv2.cvtColor(view, spec.to_rgb)
    if size is not None and (view.shape[1], view.shape[0]) != tuple(size):
        view = resize(view, size)
    return view


def resize(image: np.ndarray, size: Optional[Tuple[int, int]]) -> np.ndarray:
    """Resize to size=(width, height) (area averaging down, bilinear up); None keeps it."""
    if size is None:
        return image
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ImageConversionError(f'resize target {width}x{height} must be positive')
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def compressed_to_rgb(fmt: str, data: Any,
                      size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """
    Decode a sensor_msgs/CompressedImage payload (JPEG, PNG, ...) to HxWx3 uint8 RGB.

    fmt is the message's format field ('jpeg', 'png', 'rgb8; jpeg compressed bgr8', ...); the
    codec is sniffed from the bytes, so fmt only serves error messages.
    """
    return decode_compressed(fmt, data, size)[0]


def decode_compressed(fmt: str, data: Any,
                      size: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, bool]:
    """
    Decode like compressed_to_rgb; also say whether the pixels are the file's own (not resized).

    A JPEG shrunk to size by at least half is decoded at 1/2, 1/4 or 1/8 scale by libjpeg
    itself (scaled IDCT: the decoder skips the work instead of producing pixels to throw away),
    then resized once to the exact size.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageConversionError(f'empty compressed image ({fmt or "no format"})')
    encoded = buffer.tobytes()  # one copy for both header checks
    try:
        kind, width, height = image_header(encoded)
        if kind == 'PNG':
            check_png_chunks(encoded)
    except WireFormatError as exc:
        raise ImageConversionError(f'cannot decode compressed image ({fmt or "no format"}, '
                                   f'{buffer.size} bytes): {exc}') from None
    if width * height > MAX_COMPRESSED_PIXELS:
        raise ImageConversionError(f'cannot decode compressed image: it declares {width}x'
                                   f'{height} pixels, more than {MAX_COMPRESSED_PIXELS}')
    flag = cv2.IMREAD_COLOR
    if size is not None and kind == 'JPEG':
        flag = _reduced_flag((width, height), size)
    try:
        decoded = cv2.imdecode(buffer, flag)
    except cv2.error:
        decoded = None
    if decoded is None:
        raise ImageConversionError(
            f'cannot decode compressed image ({fmt or "no format"}, {buffer.size} bytes)')
    original = flag == cv2.IMREAD_COLOR
    if size is not None and (decoded.shape[1], decoded.shape[0]) != tuple(size):
        decoded = resize(decoded, size)
        original = False
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), original


_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2))


def _reduced_flag(dims: Tuple[int, int], size: Tuple[int, int]) -> int:
    width, height = dims
    for factor, flag in _REDUCED:
        if -(-width // factor) >= size[0] and -(-height // factor) >= size[1]:
            return flag
    return cv2.IMREAD_COLOR


def is_jpeg(data: Any) -> bool:
    """Return True when the bytes start like a JPEG file (SOI marker)."""
    head = np.frombuffer(data, dtype=np.uint8)[:3]
    return head.size == 3 and bytes(head) == b'\xff\xd8\xff'

"""
Camera messages from a bag -> HxWx3 uint8 RGB arrays, the form every policy takes.

Handles raw sensor_msgs/Image in the encodings cameras actually publish (rgb8, bgr8, rgba8,
bgra8, mono8, 16-bit variants scaled down) including row padding (`step` > width * channels),
and sensor_msgs/CompressedImage (JPEG/PNG) through OpenCV. Anything else is a BagError naming the
encoding, not a garbled image silently fed to a model.
"""
from typing import Any

import numpy as np

from rt2_ros.bags.errors import BagError

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, '8uc1': 1, '8uc3': 3,
             'rgb16': 3, 'bgr16': 3, 'rgba16': 4, 'bgra16': 4, 'mono16': 1, '16uc1': 1}


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode a deserialized Image or CompressedImage message into contiguous RGB uint8."""
    if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
        return compressed_to_rgb(bytes(msg.data), str(msg.format))
    return raw_to_rgb(int(msg.height), int(msg.width), str(msg.encoding), int(msg.step),
                      bool(msg.is_bigendian), np.asarray(msg.data, dtype=np.uint8))


def raw_to_rgb(height: int, width: int, encoding: str, step: int, bigendian: bool,
               data: np.ndarray) -> np.ndarray:
    key = encoding.lower()
    channels = _CHANNELS.get(key)
    if channels is None:
        raise BagError('bad_message', f'image encoding {encoding!r} is not supported (use rgb8, '
                       'bgr8, rgba8, bgra8, mono8 or their 16-bit forms)')
    depth = 2 if '16' in key else 1
    row = width * channels * depth
    if height <= 0 or width <= 0 or step < row or data.size < step * (height - 1) + row:
        raise BagError('bad_message', f'image {width}x{height} {encoding} with step {step} does '
                       f'not fit its {data.size} data bytes')
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row), strides=(step, 1))
    if depth == 2:
        dtype = np.dtype('>u2' if bigendian else '<u2')
        pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
        pixels = (pixels >> 8).astype(np.uint8)
    else:
        pixels = rows.reshape(height, width, channels)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif key.startswith('bgr'):
        pixels = pixels[:, :, 2::-1]
    else:
        pixels = pixels[:, :, :3]
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def compressed_to_rgb(data: bytes, fmt: str) -> np.ndarray:
    import cv2
    array = np.frombuffer(data, dtype=np.uint8)
    decoded = cv2.imdecode(array, cv2.IMREAD_COLOR) if array.size else None
    if decoded is None:
        raise BagError('bad_message', f'compressed image ({fmt or "no format"}, {len(data)} '
                       'bytes) cannot be decoded')
    return np.ascontiguousarray(decoded[:, :, ::-1])

"""
Camera messages from a bag -> HxWx3 uint8 RGB arrays, the form every policy takes.

The conversion is the controller's own (rt2_ros.controller.images: every encoding it accepts,
16-bit scaling, Bayer and YUV, the decompression-size guard), so a bag evaluation feeds the
policy exactly the pixels the controller would have fed it from the same message. Here a bad
image is a BagError naming the problem, not a garbled image silently fed to a model.
"""
from typing import Any

import numpy as np
from rt2_ros.bags.errors import BagError
from rt2_ros.controller import images

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode a deserialized Image or CompressedImage message into contiguous RGB uint8."""
    try:
        if hasattr(msg, 'format') and not hasattr(msg, 'encoding'):
            rgb = images.compressed_to_rgb(str(msg.format), np.asarray(msg.data, np.uint8))
        else:
            rgb = images.raw_to_rgb(str(msg.encoding), int(msg.height), int(msg.width),
                                    int(msg.step), bool(msg.is_bigendian),
                                    np.asarray(msg.data, dtype=np.uint8))
    except images.ImageConversionError as exc:
        raise BagError('bad_message', str(exc)) from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)

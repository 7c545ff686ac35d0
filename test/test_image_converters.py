"""
One image converter: the controller's path and the bag tools' path give identical arrays.

Every encoding the controller accepts (raw, with row padding, 16-bit in both byte orders) and
compressed JPEG / PNG goes through the node's conversion (an rclpy message, as it arrives) and
through a real bag (written, read back, deserialized, converted as `rt2 bag eval` does).
"""
from bag_fixtures import write_messages
import cv2
import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores
from rt2_ros.bags.errors import BagError
from rt2_ros.bags.images import image_to_rgb
from rt2_ros.bags.reader import open_bag
from rt2_ros.controller import images
from rt2_ros.ros.convert import build_observation
from sensor_msgs.msg import CompressedImage, Image

HEIGHT, WIDTH, PADDING = 6, 8, 5
TYPES = get_typestore(Stores.ROS2_KILTED).types


def _raw_cases():
    rng = np.random.default_rng(7)
    cases = []
    for encoding, spec in images.ENCODINGS.items():
        itemsize = 1 if spec.dtype == 'u1' else 2
        step = WIDTH * spec.channels * itemsize + PADDING
        data = rng.integers(0, 256, step * HEIGHT, dtype=np.uint8).tobytes()
        for big_endian in ((False, True) if itemsize == 2 else (False,)):
            cases.append((encoding, big_endian, step, data))
    return cases


def _compressed_cases():
    rng = np.random.default_rng(8)
    picture = rng.integers(0, 256, (HEIGHT * 4, WIDTH * 4, 3), dtype=np.uint8)
    cases = []
    for fmt, ext in (('jpeg', '.jpg'), ('png', '.png'), ('rgb8; jpeg compressed bgr8', '.jpg')):
        ok, data = cv2.imencode(ext, picture)
        assert ok
        cases.append((fmt, data.tobytes()))
    return cases


def _header():
    return TYPES['std_msgs/msg/Header'](
        stamp=TYPES['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='camera')


def _through_a_bag(tmp_path, msgtype, message):
    path = tmp_path / 'bag'
    write_messages(path, [('/camera/image_raw', msgtype, 1_000_000_000, message)])
    with open_bag(path) as bag:
        (raw,) = list(bag.messages(['/camera/image_raw']))
        return image_to_rgb(bag.deserialize(raw))


@pytest.mark.parametrize('encoding,big_endian,step,data', _raw_cases(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_raw_encodings_give_the_same_pixels_on_both_paths(tmp_path, encoding, big_endian, step,
                                                          data):
    msg = Image(height=HEIGHT, width=WIDTH, encoding=encoding, is_bigendian=int(big_endian),
                step=step, data=data)
    controller = build_observation(msg, None, 'x', 0.0).image
    bag_msg = TYPES['sensor_msgs/msg/Image'](
        header=_header(), height=HEIGHT, width=WIDTH, encoding=encoding,
        is_bigendian=int(big_endian), step=step, data=np.frombuffer(data, np.uint8))
    from_bag = _through_a_bag(tmp_path, 'sensor_msgs/msg/Image', bag_msg)
    assert controller.shape == from_bag.shape == (HEIGHT, WIDTH, 3)
    assert controller.dtype == from_bag.dtype == np.uint8
    assert np.array_equal(controller, from_bag)


@pytest.mark.parametrize('fmt,data', _compressed_cases(), ids=lambda v: v[:12] if isinstance(
    v, str) else None)
def test_compressed_images_give_the_same_pixels_on_both_paths(tmp_path, fmt, data):
    controller = build_observation(CompressedImage(format=fmt, data=data), None, 'x', 0.0).image
    bag_msg = TYPES['sensor_msgs/msg/CompressedImage'](
        header=_header(), format=fmt, data=np.frombuffer(data, np.uint8))
    from_bag = _through_a_bag(tmp_path, 'sensor_msgs/msg/CompressedImage', bag_msg)
    assert np.array_equal(controller, from_bag)


def _declaring(jpeg, height, width):
    """Return the JPEG with its frame header (SOF0) claiming height x width pixels."""
    offset = 2
    while jpeg[offset + 1] != 0xC0:  # walk the segments: tables may hold 0xFF 0xC0 bytes
        offset += 2 + int.from_bytes(jpeg[offset + 2:offset + 4], 'big')
    jpeg[offset + 5:offset + 9] = height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
    return jpeg


def test_the_bag_path_refuses_what_the_controller_refuses():
    bomb = _declaring(bytearray(_compressed_cases()[0][1]), 9000, 9000)
    message = TYPES['sensor_msgs/msg/CompressedImage'](
        header=_header(), format='jpeg', data=np.frombuffer(bytes(bomb), np.uint8))
    with pytest.raises(BagError, match='more than'):
        image_to_rgb(message)
    with pytest.raises(images.ImageConversionError, match='more than'):
        build_observation(CompressedImage(format='jpeg', data=bytes(bomb)), None, 'x', 0.0)
    odd = TYPES['sensor_msgs/msg/Image'](header=_header(), height=2, width=2, encoding='32FC1',
                                         is_bigendian=0, step=8, data=np.zeros(16, np.uint8))
    with pytest.raises(BagError, match='unsupported image encoding'):
        image_to_rgb(odd)

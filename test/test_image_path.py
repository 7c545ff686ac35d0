"""
The image path from a camera message to the policy's request: one conversion, one resize.

Zero-copy views of raw buffers, JPEGs decoded at reduced scale when they are to be shrunk, and a
camera JPEG that needs no resizing handed to JPEG backends as it is (CompressedImage in ->
policy request), never decoded and encoded again.
"""
import base64
import json

import cv2
import numpy as np
import pytest
from rt2_ros.controller import images
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.factory import make_policy
from rt2_ros.ros.convert import build_observation
from sensor_msgs.msg import CompressedImage, Image


def _frame(height, width, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)],
                      -1)
    return np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)


def _jpeg(rgb, quality=90):
    ok, data = cv2.imencode('.jpg', rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def _compressed(rgb, ext='.jpg'):
    if ext == '.jpg':
        return CompressedImage(format='jpeg', data=_jpeg(rgb))
    ok, data = cv2.imencode(ext, rgb[:, :, ::-1])
    return CompressedImage(format=ext[1:], data=data.tobytes())


def test_is_jpeg_tells_jpeg_from_png_by_the_bytes():
    assert images.is_jpeg(_jpeg(_frame(48, 64)))
    assert not images.is_jpeg(cv2.imencode('.png', _frame(8, 8))[1].tobytes())
    assert not images.is_jpeg(b'\xff\xd8')


@pytest.mark.parametrize('size', [(224, 224), (160, 120), (300, 240), (80, 60)])
def test_shrinking_decode_matches_full_decode_then_resize(size):
    rgb = _frame(480, 640)
    data = _jpeg(rgb)
    fast, original = images.decode_compressed('jpeg', data, size)
    full = cv2.resize(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1],
                      size, interpolation=cv2.INTER_AREA)
    assert fast.shape == (size[1], size[0], 3) and fast.dtype == np.uint8 and not original
    # libjpeg's scaled decoding is a different (smoother) filter, not a different picture
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 2.0


def test_unresized_decode_is_the_files_own_pixels():
    data = _jpeg(_frame(48, 64))
    rgb, original = images.decode_compressed('jpeg', data, None)
    assert original and rgb.shape == (48, 64, 3)
    assert np.array_equal(rgb, cv2.imdecode(np.frombuffer(data, np.uint8), 1)[:, :, ::-1])
    assert images.decode_compressed('jpeg', data, (64, 48))[1]  # asked size = file size


def test_camera_jpeg_travels_to_the_policy_as_is():
    rgb = _frame(48, 64)
    msg = _compressed(rgb)
    observation = build_observation(msg, None, 'pick', 1.5)
    assert observation.jpeg == bytes(msg.data)
    assert observation.image.shape == (48, 64, 3) and observation.stamp == 1.5
    # resized, or not a JPEG: the pixels are new, so nothing is passed on
    assert build_observation(msg, (32, 24), 'pick', 1.5).jpeg is None
    assert build_observation(_compressed(rgb, '.png'), None, 'pick', 1.5).jpeg is None


def test_raw_rgb8_observation_is_a_view_of_the_message_buffer():
    rgb = _frame(24, 32)
    msg = Image(height=24, width=32, encoding='rgb8', step=96, data=rgb.tobytes())
    observation = build_observation(msg, None, 'pick', 0.0)
    assert np.shares_memory(observation.image, np.frombuffer(msg.data, np.uint8))
    assert np.array_equal(observation.image, rgb) and observation.jpeg is None
    assert build_observation(msg, (16, 12), 'pick', 0.0).image.shape == (12, 16, 3)


def _image_url(body):
    content = body['messages'][0]['content']
    return next(part['image_url']['url'] for part in content if part['type'] == 'image_url')


def test_openai_request_sends_the_camera_jpeg_unchanged():
    policy = make_policy(PolicyConfig(backend='openai', url='http://127.0.0.1:1/v1',
                                      model_name='m', extra={'jpeg_quality': 50}))
    rgb = _frame(48, 64)
    msg = _compressed(rgb)
    passed = _image_url(policy.build_request(build_observation(msg, None, 'pick', 0.0), 'm'))
    assert base64.b64decode(passed.split(',', 1)[1]) == bytes(msg.data)
    encoded = _image_url(policy.build_request(Observation(image=rgb, instruction='pick'), 'm'))
    assert base64.b64decode(encoded.split(',', 1)[1]) != bytes(msg.data)  # our q50 encoding
    policy.close()


def test_openai_serialized_request_is_the_json_of_the_request_body():
    policy = make_policy(PolicyConfig(backend='openai', url='http://127.0.0.1:1/v1',
                                      model_name='m', extra={'guided_regex': True}))
    for observation in (Observation(image=_frame(48, 64), instruction='put "it" \x00 there'),
                        build_observation(_compressed(_frame(48, 64)), None, 'pick', 0.0)):
        encoded = json.loads(policy.encode_request(observation, 'm'))
        assert encoded == policy.build_request(observation, 'm')
    policy.close()

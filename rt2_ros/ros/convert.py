"""
Message <-> plain-value conversions for the controller (the only place that knows both).

Images go through rt2_ros.controller.images, the one converter of the package (the bag tools
use it too, so a bag evaluation sees the controller's pixels). Nothing here copies an image it
does not have to: the raw path wraps the message's buffer in place.
Compressed images always take the numpy path: it decodes a JPEG that is to be shrunk at reduced
scale, and hands an unresized camera JPEG on to the policy as it is (Observation.jpeg).
"""
from typing import Any, Optional, Sequence, Tuple

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
import numpy as np
from rt2_ros.controller import images
from rt2_ros.controller.safety import PoseSample
from rt2_ros.policy.base import Observation
from std_msgs.msg import Float64MultiArray, MultiArrayDimension


def stamp_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def is_compressed(msg: Any) -> bool:
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def image_msg_to_rgb(msg: Any, size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Convert an Image or CompressedImage to HxWx3 uint8 RGB, resized once to size=(w, h)."""
    if is_compressed(msg):
        return images.compressed_to_rgb(msg.format, msg.data, size)
    return images.raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step,
                             bool(msg.is_bigendian), msg.data, size)


def build_observation(msg: Any, size: Optional[Tuple[int, int]], instruction: str,
                      stamp: float, state: Optional[np.ndarray] = None,
                      gripper: Optional[float] = None) -> Observation:
    """
    Turn a camera message into what the policy sees (runs on an inference worker).

    The image is converted and resized once; a CompressedImage holding a JPEG that needed no
    resizing also travels as its own bytes, so a JPEG backend sends the camera's file instead of
    decoding-then-encoding it (no second lossy step, no encoding time).
    """
    jpeg = None
    if is_compressed(msg):
        image, original = images.decode_compressed(msg.format, msg.data, size)
        if original and images.is_jpeg(msg.data):
            jpeg = bytes(msg.data)
    else:
        image = image_msg_to_rgb(msg, size)
    return Observation(image=image, instruction=instruction, stamp=stamp, state=state,
                       gripper=gripper, jpeg=jpeg)


def pose_sample(msg: PoseStamped, received: float) -> PoseSample:
    """Convert a PoseStamped; an unset (zero) header stamp counts as the arrival time."""
    stamp = stamp_seconds(msg.header.stamp)
    if stamp == 0.0:
        stamp = received
    p = msg.pose.position
    q = msg.pose.orientation
    return PoseSample(np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w]), stamp)


def action_array(actions: np.ndarray, names: Sequence[str]) -> Float64MultiArray:
    """
    Convert a decision to a Float64MultiArray with a labelled layout.

    dim[0] is 'step' (the chunk horizon), dim[1] names the action dimensions, comma-separated
    in order (e.g. 'terminate,dx,dy,dz,droll,dpitch,dyaw,gripper_extension'), so a subscriber
    can find a value by name without knowing the action space.
    """
    array = np.asarray(actions, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    horizon, dims = array.shape
    msg = Float64MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label='step', size=horizon, stride=horizon * dims),
        MultiArrayDimension(label=','.join(names), size=dims, stride=dims),
    ]
    msg.layout.data_offset = 0
    msg.data = array.ravel().tolist()
    return msg

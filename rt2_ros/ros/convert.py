"""
Message <-> plain-value conversions for the controller (the only place that knows both).

Raw images go through cv_bridge when it is importable (every ROS install has it) and through
rt2_ros.controller.images otherwise; both give the same HxWx3 uint8 RGB array. Nothing here
copies an image it does not have to: the numpy path wraps the message's buffer in place.
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

try:  # pragma: no cover - depends on the installation
    from cv_bridge import CvBridge
    _BRIDGE: Optional[Any] = CvBridge()
except Exception:  # noqa: BLE001 - cv_bridge absent or broken: use the numpy path
    _BRIDGE = None


def have_cv_bridge() -> bool:
    return _BRIDGE is not None


def stamp_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def is_compressed(msg: Any) -> bool:
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def image_msg_to_rgb(msg: Any, size: Optional[Tuple[int, int]] = None,
                     use_cv_bridge: bool = True) -> np.ndarray:
    """Convert an Image or CompressedImage to HxWx3 uint8 RGB, resized once to size=(w, h)."""
    if is_compressed(msg):
        return images.compressed_to_rgb(msg.format, msg.data, size)
    if use_cv_bridge and _BRIDGE is not None:  # pragma: no cover - not installable here
        try:
            rgb = _BRIDGE.imgmsg_to_cv2(msg, 'rgb8')
        except Exception as exc:  # noqa: BLE001 - cv_bridge raises its own error types
            raise images.ImageConversionError(f'cv_bridge: {exc}') from None
        return images.resize(rgb, size)
    return images.raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step,
                             bool(msg.is_bigendian), msg.data, size)


def build_observation(msg: Any, size: Optional[Tuple[int, int]], instruction: str,
                      stamp: float, state: Optional[np.ndarray] = None,
                      use_cv_bridge: bool = True) -> Observation:
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
        image = image_msg_to_rgb(msg, size, use_cv_bridge)
    return Observation(image=image, instruction=instruction, stamp=stamp, state=state,
                       jpeg=jpeg)


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

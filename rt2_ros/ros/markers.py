"""
rviz markers for the controller: where the arm is being sent, the gripper, and why.

One MarkerArray (namespace 'rt2'): an arrow from the end effector along the commanded
translation (its length is the displacement per decision period times viz.arrow_scale), a
sphere at the gripper coloured and sized by openness (green open, red closed), and a text with
the state and the instruction. Without an ee_pose the arrow starts at the frame origin.
"""
from typing import Any, Dict

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
import numpy as np
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

NAMESPACE = 'rt2'
ARROW_ID, GRIPPER_ID, TEXT_ID = 0, 1, 2


def build_markers(snapshot: Dict[str, Any], frame_id: str, stamp, period_s: float,
                  arrow_scale: float, openness) -> MarkerArray:
    """Markers for one snapshot of the controller core (see ControllerCore.snapshot)."""
    pose = snapshot.get('pose')
    origin = np.zeros(3) if pose is None else np.asarray(pose.position, dtype=np.float64)
    preview = snapshot.get('preview')
    linear = np.zeros(3) if preview is None else np.asarray(preview.linear)
    lifetime = Duration(sec=1)

    def base(marker_id: int, kind: int) -> Marker:
        marker = Marker()
        marker.header.frame_id = frame_id
        marker.header.stamp = stamp
        marker.ns = NAMESPACE
        marker.id = marker_id
        marker.type = kind
        marker.action = Marker.ADD
        marker.pose.orientation.w = 1.0
        marker.lifetime = lifetime
        return marker

    arrow = base(ARROW_ID, Marker.ARROW)
    tip = origin + linear * period_s * arrow_scale
    arrow.points = [Point(x=float(origin[0]), y=float(origin[1]), z=float(origin[2])),
                    Point(x=float(tip[0]), y=float(tip[1]), z=float(tip[2]))]
    arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.008, 0.016, 0.02
    arrow.color = ColorRGBA(r=0.1, g=0.5, b=1.0, a=1.0)

    gripper = base(GRIPPER_ID, Marker.SPHERE)
    gripper.pose.position = Point(x=float(origin[0]), y=float(origin[1]), z=float(origin[2]))
    fraction = 0.5 if openness is None else float(openness)
    size = 0.02 + 0.04 * fraction
    gripper.scale.x = gripper.scale.y = gripper.scale.z = size
    gripper.color = ColorRGBA(r=1.0 - fraction, g=fraction, b=0.1, a=0.6)

    text = base(TEXT_ID, Marker.TEXT_VIEW_FACING)
    text.pose.position = Point(x=float(origin[0]), y=float(origin[1]),
                               z=float(origin[2]) + 0.12)
    state = snapshot.get('state', '')
    cause = snapshot.get('cause', '')
    mode = 'enabled' if snapshot.get('enabled') else 'dry run'
    label = f'{state}{": " + cause if cause else ""} ({mode})'
    text.text = f'{label}\n{snapshot.get("instruction", "") or "(no instruction)"}'
    text.scale.z = 0.03
    text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    return MarkerArray(markers=[arrow, gripper, text])

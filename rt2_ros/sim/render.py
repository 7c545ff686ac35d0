"""
A perspective camera for the tabletop, rendered with OpenCV polygons.

The camera rides on the mobile base behind the arm, looking down across the table, like a head
camera. Painter's algorithm over convex parts (far first) with back-face culling is exact enough
for separated prisms and much cheaper than a rasterizer. Legibility for a small model drives the
look: Lambert shading tells faces apart, dark outlines separate blocks of similar colour, and
shadows from a light above give height - the gripper's shadow on the table (or on a block top)
shows how far above it the fingers are, and a held block's shadow moves with the hand.
"""
from dataclasses import dataclass, replace
import functools
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from rt2_ros.sim.geometry import place_polygon, rectangle, regular_polygon
from rt2_ros.sim.splits import VARIATION_LEVELS
from rt2_ros.sim.world import (
    FINGER_LENGTH, FINGER_THICKNESS, MAX_WIDTH, TabletopSim,
)

SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices
SCALE = float(1 << SHIFT)
NEAR = 0.02

PALM_DEPTH = 0.030
PALM_HEIGHT = 0.022
WRIST_RADIUS = 0.014
WRIST_HEIGHT = 0.035
GRIPPER_RGB = (70, 72, 80)
FINGER_RGB = (115, 118, 128)

TABLE_COLOURS = (
    (196, 170, 132),  # light wood
    (178, 178, 172),  # grey laminate
    (214, 208, 196),  # off-white
    (150, 128, 104),  # dark wood
    (160, 176, 186),  # blue-grey
)
BACKGROUND_RGB = (58, 60, 66)


@dataclass(frozen=True)
class CameraSpec:
    """Intrinsics and the mounting on the base (base_link frame, metres)."""

    width: int = 224
    height: int = 224
    fov_y_deg: float = 40.0
    position: Tuple[float, float, float] = (0.0, 0.0, 0.62)
    look_at: Tuple[float, float, float] = (0.40, 0.0, 0.0)

    @property
    def focal(self) -> float:
        return (self.height / 2.0) / math.tan(math.radians(self.fov_y_deg) / 2.0)

    def matrix(self) -> np.ndarray:
        """Return the 3x3 pinhole intrinsics K (principal point at the image centre)."""
        f = self.focal
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0],
                         [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class SceneLook:
    """Appearance that does not change the task: table colour, light, camera mounting jitter."""

    table_rgb: Tuple[int, int, int] = TABLE_COLOURS[0]
    background_rgb: Tuple[int, int, int] = BACKGROUND_RGB
    ambient: float = 0.55
    diffuse: float = 0.50
    # Direction the light travels (pointing down), world frame.
    light: Tuple[float, float, float] = (0.12, -0.08, -1.0)
    camera_offset: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    look_at_offset: Tuple[float, float, float] = (0.0, 0.0, 0.0)


def sample_look(rng: np.random.Generator, level: str = 'none') -> SceneLook:
    """
    Draw a scene appearance; 'none' is the fixed default look.

    'mild' varies table colour, light and camera mounting a little (a new room); 'strong' more
    (to test generalization the way RT-2 varied backgrounds). Draws a fixed number of values
    whatever the level, so a seed's task is independent of the variation level.
    """
    if level not in VARIATION_LEVELS:
        raise ValueError(f'unknown variation {level!r}; one of {", ".join(VARIATION_LEVELS)}')
    u = rng.uniform(-1.0, 1.0, size=12)
    table_pick = int(rng.integers(len(TABLE_COLOURS)))
    if level == 'none':
        return SceneLook()
    k = 1.0 if level == 'mild' else 2.0
    table = TABLE_COLOURS[table_pick] if level == 'strong' or table_pick < 3 else TABLE_COLOURS[0]
    tint = np.clip(np.array(table) * (1.0 + 0.06 * k * u[0:3]), 0, 255)
    return SceneLook(
        table_rgb=tuple(int(v) for v in tint),
        ambient=float(0.55 + 0.06 * k * u[3]),
        diffuse=float(0.50 + 0.06 * k * u[4]),
        light=(float(0.12 + 0.08 * k * u[5]), float(-0.08 + 0.08 * k * u[6]), -1.0),
        camera_offset=tuple(float(0.01 * k * v) for v in u[7:10]),
        look_at_offset=(float(0.01 * k * u[10]), float(0.01 * k * u[11]), 0.0),
    )


@dataclass
class _Part:
    footprint: np.ndarray  # (N, 2) world, counter-clockwise
    z0: float
    z1: float
    rgb: Tuple[int, int, int]
    outline: Tuple[int, int, int]

    def __post_init__(self) -> None:
        self.centre = self.footprint.mean(axis=0)
        self.lo = self.footprint.min(axis=0)
        self.hi = self.footprint.max(axis=0)


_UP = np.array([0.0, 0.0, 1.0])


@functools.lru_cache(maxsize=64)
def _next_index(n: int) -> np.ndarray:
    return np.roll(np.arange(n), -1)


class Renderer:
    """Renders a TabletopSim to an RGB uint8 image from the base-mounted camera."""

    def __init__(self, camera: CameraSpec = CameraSpec(), look: SceneLook = SceneLook()) -> None:
        self.camera = camera
        self.look = look
        light = np.array(look.light, dtype=float)
        self._light = light / np.linalg.norm(light)
        self._K = camera.matrix()

    def with_size(self, width: int, height: int) -> 'Renderer':
        """Return a renderer for another image size with the same look and field of view."""
        return Renderer(replace(self.camera, width=int(width), height=int(height)), self.look)

    # -- camera pose ------------------------------------------------------------------------

    def camera_pose(self, sim: TabletopSim) -> Tuple[np.ndarray, np.ndarray]:
        """Return (R world->optical, camera centre in world) for the base's current pose."""
        position = np.array(self.camera.position) + np.array(self.look.camera_offset)
        target = np.array(self.camera.look_at) + np.array(self.look.look_at_offset)
        centre = sim.base_to_world(position)
        aim = sim.base_to_world(target)
        forward = aim - centre
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return np.stack([right, down, forward]), centre

    def pixels(self, sim: TabletopSim, points: np.ndarray) -> np.ndarray:
        """
        Return the image (row, col) of world points, in this camera's pixels.

        Pointing answers and grounded plans name places this way, so a model reads and writes
        the same coordinates the picture has.
        """
        rotation, centre = self.camera_pose(sim)
        cam = (np.asarray(points, dtype=float).reshape(-1, 3) - centre) @ rotation.T
        return self._image_uv(cam)[:, ::-1].copy()

    def _image_uv(self, cam: np.ndarray) -> np.ndarray:
        """Pinhole projection of optical-frame points (in front of the camera) to (u, v)."""
        return cam[:, :2] / cam[:, 2:3] * self._K[0, 0] + self._K[:2, 2]

    def _project(self, points: np.ndarray, rotation: np.ndarray,
                 centre: np.ndarray) -> Optional[np.ndarray]:
        cam = (points - centre) @ rotation.T
        if np.any(cam[:, 2] < NEAR):
            return None
        return self._image_uv(cam)

    def _fill(self, image: np.ndarray, uv: np.ndarray, rgb) -> None:
        pts = np.round(uv * SCALE).astype(np.int32).reshape(-1, 1, 2)
        colour = int(rgb) if np.isscalar(rgb) else tuple(int(c) for c in rgb)
        cv2.fillPoly(image, [pts], colour, cv2.LINE_AA, SHIFT)

    def _shade(self, rgb: Sequence[int], normal: np.ndarray) -> np.ndarray:
        lit = max(0.0, float(-self._light @ normal))
        factor = self.look.ambient + self.look.diffuse * lit
        return np.clip(np.array(rgb, dtype=float) * factor, 0, 255)

    def _shadow_rgb(self, rgb: Sequence[int]) -> np.ndarray:
        return np.clip(np.array(rgb, dtype=float) * self.look.ambient * 0.95, 0, 255)

    def _shadow_on_plane(self, part: _Part, height: float) -> Optional[np.ndarray]:
        """Return the part's shadow on the plane z = height (world xy), or None if below."""
        if part.z1 <= height + 1e-6:
            return None
        z0 = max(part.z0, height)
        rings = [np.column_stack([part.footprint, np.full(len(part.footprint), z)])
                 for z in (z0, part.z1)]
        points = np.concatenate(rings)
        t = (points[:, 2] - height) / -self._light[2]
        flat = points[:, :2] + t[:, None] * self._light[:2]
        # cv2.convexHull keeps the (y-up) world plane counter-clockwise.
        return cv2.convexHull(flat.astype(np.float32)).reshape(-1, 2).astype(float)

    def _parts(self, sim: TabletopSim) -> Tuple[List[_Part], List[int]]:
        parts: List[_Part] = []
        block_ids: List[int] = []
        for i, block in enumerate(sim.blocks):
            rgb = block.spec.rgb
            parts.append(_Part(block.polygon(), float(block.position[2]), block.top, rgb,
                               tuple(int(c * 0.35) for c in rgb)))
            block_ids.append(i)
        centre, yaw = sim.ee_world()
        tip = float(centre[2])
        for poly in sim.finger_polygons(centre, yaw):
            parts.append(_Part(poly, tip, tip + FINGER_LENGTH, FINGER_RGB, (25, 25, 30)))
            block_ids.append(-1)
        palm = place_polygon(rectangle(PALM_DEPTH / 2.0, MAX_WIDTH / 2.0 + FINGER_THICKNESS),
                             centre, yaw)
        top = tip + FINGER_LENGTH
        parts.append(_Part(palm, top, top + PALM_HEIGHT, GRIPPER_RGB, (20, 20, 24)))
        block_ids.append(-1)
        wrist = place_polygon(regular_polygon(10, WRIST_RADIUS), centre, yaw)
        parts.append(_Part(wrist, top + PALM_HEIGHT, top + PALM_HEIGHT + WRIST_HEIGHT,
                           GRIPPER_RGB, (20, 20, 24)))
        block_ids.append(-1)
        return parts, block_ids

    def render(self, sim: TabletopSim) -> np.ndarray:
        """Return the camera image (height x width x 3, RGB, uint8)."""
        cam = self.camera
        image = np.empty((cam.height, cam.width, 3), dtype=np.uint8)
        image[:] = self.look.background_rgb
        rotation, centre = self.camera_pose(sim)
        lo, hi = sim.config.table_min, sim.config.table_max
        table = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        self._draw_table(image, table, rotation, centre)
        parts, block_ids = self._parts(sim)
        # Every part's bottom and top rings, projected in one go; and the same points slid
        # along the light onto the table, whose hull in the image is the part's shadow.
        counts = [len(part.footprint) for part in parts]
        starts = np.cumsum([0] + [2 * n for n in counts])
        rings = np.concatenate([
            np.column_stack([np.concatenate([part.footprint, part.footprint]),
                             np.repeat([part.z0, part.z1], len(part.footprint))])
            for part in parts])
        cam_points = (rings - centre) @ rotation.T
        in_front = cam_points[:, 2] >= NEAR
        focal, principal = self._K[0, 0], self._K[:2, 2]
        uv = cam_points[:, :2] / np.maximum(cam_points[:, 2:3], NEAR) * focal + principal
        ipts = np.round(uv * SCALE).astype(np.int32)
        t = rings[:, 2] / -self._light[2]
        flat = np.column_stack([rings[:, :2] + t[:, None] * self._light[:2],
                                np.zeros(len(rings))])
        flat_cam = (flat - centre) @ rotation.T
        shadow_ok = flat_cam[:, 2] >= NEAR
        shadow_uv = flat_cam[:, :2] / np.maximum(flat_cam[:, 2:3], NEAR) * focal + principal
        shadow_pts = np.round(shadow_uv * SCALE).astype(np.int32)
        shadow_table = tuple(int(c) for c in self._shadow_rgb(self.look.table_rgb))
        for k in range(len(parts)):
            a, b = starts[k], starts[k + 1]
            if np.all(shadow_ok[a:b]):
                hull = cv2.convexHull(shadow_pts[a:b])
                cv2.fillPoly(image, [hull], shadow_table, cv2.LINE_AA, SHIFT)
        # Objects, farthest first.
        mids = np.array([[part.centre[0], part.centre[1], 0.5 * (part.z0 + part.z1)]
                         for part in parts])
        distances = -np.linalg.norm(mids - centre, axis=1)
        for k in np.argsort(distances, kind='stable'):
            a, b = starts[k], starts[k + 1]
            if not np.all(in_front[a:b]):
                continue
            self._draw_prism(image, parts[k], centre, uv[a:b], ipts[a:b], rotation,
                             parts if block_ids[k] >= 0 else None)
        return image

    def _draw_table(self, image: np.ndarray, table: np.ndarray, rotation: np.ndarray,
                    centre: np.ndarray) -> None:
        colour = self._shade(self.look.table_rgb, np.array([0.0, 0.0, 1.0]))
        # Usually every corner is in front of the camera; after the base turns or backs away a
        # corner may not be, and the polygon is clipped at the near plane instead.
        cam = (np.column_stack([table, np.zeros(4)]) - centre) @ rotation.T
        kept = []
        for i in range(4):
            p, q = cam[i], cam[(i + 1) % 4]
            if p[2] >= NEAR:
                kept.append(p)
            if (p[2] >= NEAR) != (q[2] >= NEAR):
                t = (NEAR - p[2]) / (q[2] - p[2])
                kept.append(p + t * (q - p))
        if len(kept) >= 3:
            self._fill(image, self._image_uv(np.array(kept)), colour)

    def _draw_prism(self, image: np.ndarray, part: _Part, centre: np.ndarray, uv: np.ndarray,
                    ipts: np.ndarray, rotation: np.ndarray,
                    all_parts: Optional[List[_Part]]) -> None:
        n = len(part.footprint)
        nxt = _next_index(n)
        edges = part.footprint[nxt] - part.footprint
        normals = np.column_stack([edges[:, 1], -edges[:, 0]])
        normals /= np.maximum(np.hypot(normals[:, 0], normals[:, 1]), 1e-12)[:, None]
        mids = part.footprint + 0.5 * edges
        visible = np.einsum('ij,ij->i', normals, centre[:2] - mids) > 0.0
        lit = np.clip(-(normals @ self._light[:2]), 0.0, None)
        colours = np.minimum(np.outer(self.look.ambient + self.look.diffuse * lit,
                                      np.asarray(part.rgb, dtype=float)), 255.0).astype(int)
        for i in np.flatnonzero(visible):
            j = nxt[i]
            quad = ipts[[i, j, n + j, n + i]]
            cv2.fillPoly(image, [quad], tuple(colours[i].tolist()), cv2.LINE_AA, SHIFT)
        top_visible = part.z1 < centre[2]
        if top_visible:
            cv2.fillPoly(image, [ipts[n:]],
                         tuple(int(c) for c in self._shade(part.rgb, _UP)), cv2.LINE_AA, SHIFT)
            if all_parts is not None:
                self._shadows_on_top(image, part, all_parts, rotation, centre, uv[n:])
        outline = tuple(int(c) for c in part.outline)
        hull = cv2.convexHull(ipts)
        cv2.polylines(image, [hull], True, outline, 1, cv2.LINE_AA, SHIFT)
        if top_visible:
            cv2.polylines(image, [ipts[n:]], True, outline, 1, cv2.LINE_AA, SHIFT)

    def _shadows_on_top(self, image: np.ndarray, part: _Part, all_parts: List[_Part],
                        rotation: np.ndarray, centre: np.ndarray, uv_top: np.ndarray) -> None:
        lo, hi = part.footprint.min(axis=0), part.footprint.max(axis=0)
        shadows = []
        for other in all_parts:
            if other is part or other.z0 < part.z1 - 1e-4:
                continue
            # Cheap reject: the shadow lies within the footprint's box shifted along the light.
            shift = self._light[:2] * ((other.z0 - part.z1) / -self._light[2])
            far = self._light[:2] * ((other.z1 - part.z1) / -self._light[2])
            o_lo = other.lo + np.minimum(shift, far)
            o_hi = other.hi + np.maximum(shift, far)
            if np.any(o_hi < lo) or np.any(o_lo > hi):
                continue
            shadow = self._shadow_on_plane(other, part.z1)
            uv = self._project(np.column_stack([shadow, np.full(len(shadow), part.z1)]),
                               rotation, centre)
            if uv is not None:
                shadows.append(uv)
        if not shadows:
            return
        # Paint the shadows only inside the top face: masks over the face's bounding box.
        height, width = image.shape[:2]
        x0, y0 = np.floor(uv_top.min(axis=0)).astype(int)
        x1, y1 = np.ceil(uv_top.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            return
        offset = np.array([x0, y0], dtype=float)
        face = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        shade = np.zeros_like(face)
        self._fill(face, uv_top - offset, 255)
        for uv in shadows:
            self._fill(shade, uv - offset, 255)
        weight = (face.astype(np.float32) * shade.astype(np.float32) / (255.0 * 255.0))[..., None]
        roi = image[y0:y1, x0:x1].astype(np.float32)
        colour = self._shadow_rgb(part.rgb).astype(np.float32)
        image[y0:y1, x0:x1] = (roi * (1.0 - weight) + colour * weight + 0.5).astype(np.uint8)


def render_png(image: np.ndarray, path: str) -> None:
    """Write an RGB image as PNG."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f'cannot write {path}')

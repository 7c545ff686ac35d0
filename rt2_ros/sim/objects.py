"""
The object catalogue: block colours, shapes and sizes, as data.

Colours are far apart in hue so that a small model at 224x224 (and a person) tells them apart
under the lighting variation; shapes differ in outline seen from above (square, circle,
triangle); sizes differ by a third so "the smallest block" is visible, not a matter of
millimetres. Every block fits the gripper's opening at any yaw, so picking never needs a wrist
rotation - that keeps the expert's actions a function of what the camera shows.
"""
from dataclasses import dataclass
import functools
import math
from typing import Dict, Tuple

import numpy as np

from rt2_ros.sim.geometry import rectangle, regular_polygon

# RGB, 0..255.
COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (214, 40, 40),
    'orange': (245, 140, 30),
    'yellow': (240, 215, 45),
    'green': (45, 165, 70),
    'blue': (40, 90, 225),
    'purple': (140, 60, 185),
}
SHAPES: Tuple[str, ...] = ('cube', 'cylinder', 'triangle')
# Footprint size (cube side, cylinder diameter, triangle side / 1.2) and height, metres.
SIZES: Dict[str, float] = {'small': 0.03, 'medium': 0.04, 'large': 0.05}
SIZE_ORDER: Tuple[str, ...] = ('small', 'medium', 'large')

# Things whose colour everybody knows: the "block with the colour of Z" reasoning form refers to
# blocks through them (RT-2's point: the web knows what colour a banana is; robot data does not).
COLOUR_OF_THINGS: Dict[str, Tuple[str, ...]] = {
    'red': ('a strawberry', 'a tomato', 'a fire truck'),
    'orange': ('a carrot', 'a pumpkin', 'a tangerine'),
    'yellow': ('a banana', 'a lemon', 'a school bus'),
    'green': ('grass', 'a lime', 'a frog'),
    'blue': ('the sky', 'a blueberry', 'the ocean'),
    'purple': ('a grape', 'an eggplant', 'a plum'),
}

CYLINDER_SIDES = 20


@dataclass(frozen=True)
class BlockSpec:
    """What a block is (never changes during an episode)."""

    colour: str
    shape: str
    size: str

    @property
    def name(self) -> str:
        """Return the words instructions use for it, e.g. 'red cube'."""
        return f'{self.colour} {self.shape}'

    @property
    def rgb(self) -> Tuple[int, int, int]:
        return COLOURS[self.colour]

    @property
    def extent(self) -> float:
        return SIZES[self.size]

    @property
    def height(self) -> float:
        return SIZES[self.size]

    def footprint(self) -> np.ndarray:
        """Counter-clockwise footprint vertices around the block's centre (metres, read-only)."""
        return footprint(self.shape, self.extent)

    @property
    def circumradius(self) -> float:
        return _circumradius(self.shape, self.extent)

    @property
    def radius(self) -> float:
        """Return a radius between in- and circumradius, for coarse block-block spacing."""
        return 0.5 * (self.circumradius + 0.5 * self.extent)


@functools.lru_cache(maxsize=None)
def _circumradius(shape: str, extent: float) -> float:
    return float(np.linalg.norm(footprint(shape, extent), axis=1).max())


@functools.lru_cache(maxsize=None)
def footprint(shape: str, extent: float) -> np.ndarray:
    """Return a shape's footprint polygon for a size (cached; do not modify)."""
    poly = _make_footprint(shape, extent)
    poly.setflags(write=False)
    return poly


def _make_footprint(shape: str, extent: float) -> np.ndarray:
    if shape == 'cube':
        return rectangle(extent / 2.0, extent / 2.0)
    if shape == 'cylinder':
        return regular_polygon(CYLINDER_SIDES, extent / 2.0)
    if shape == 'triangle':
        side = 1.2 * extent
        return regular_polygon(3, side / math.sqrt(3.0), phase=math.pi / 2.0)
    raise ValueError(f'unknown shape {shape!r}; known: {", ".join(SHAPES)}')


def all_specs():
    """Every colour x shape x size combination, in a fixed order."""
    return [BlockSpec(c, s, z) for c in COLOURS for s in SHAPES for z in SIZE_ORDER]

"""
The annotated image: what the policy saw, what it asked for, how long it took, in one picture.

An operator watching rviz needs to connect a motion to its cause at a glance: the instruction,
one bar per action dimension (centred at zero where the range spans zero, filled from the low
bound otherwise), the policy latency and the controller state. Drawn with OpenCV on a copy, off
the control loop (on the inference worker after a decision).
"""
from typing import Optional, Sequence

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_STATE_COLOURS = {
    'running': (40, 200, 40), 'idle': (200, 200, 200), 'halting': (255, 160, 0),
    'halted': (255, 120, 0), 'terminated': (80, 160, 255), 'estopped': (255, 40, 40),
}


def _text(image: np.ndarray, text: str, origin: tuple, scale: float,
          colour: tuple = (255, 255, 255)) -> None:
    cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, colour, 1, cv2.LINE_AA)


def annotate(image: np.ndarray, instruction: str, names: Sequence[str],
             values: Optional[Sequence[float]], lows: Sequence[float], highs: Sequence[float],
             latency_s: Optional[float], state: str, min_width: int = 320) -> np.ndarray:
    """Return an RGB copy of image (upscaled to min_width for legibility) with the overlay."""
    canvas = np.ascontiguousarray(image)
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)
    height, width = canvas.shape[:2]
    if width < min_width:
        scale = min_width / width
        canvas = cv2.resize(canvas, (min_width, int(round(height * scale))),
                            interpolation=cv2.INTER_NEAREST)
    else:
        canvas = canvas.copy()
    height, width = canvas.shape[:2]
    font = max(0.35, width / 1000.0)
    line = int(22 * font / 0.5)
    _text(canvas, instruction[:80] or '(no instruction)', (6, line), font)
    colour = _STATE_COLOURS.get(state.split(':')[0], (255, 255, 255))
    latency = '-' if latency_s is None else f'{latency_s * 1000:.0f} ms'
    _text(canvas, f'{state}  latency {latency}', (6, 2 * line), font, colour)
    if values is None:
        return canvas
    rows = len(names)
    bar_h = max(6, min(line, (height - 3 * line) // max(rows, 1) - 2))
    label_w = int(width * 0.28)
    bar_w = width - label_w - 12
    top = height - rows * (bar_h + 2) - 4
    for i, (name, value, low, high) in enumerate(zip(names, values, lows, highs)):
        y = top + i * (bar_h + 2)
        _text(canvas, str(name)[:12], (4, y + bar_h - 1), font * 0.8)
        x0 = label_w
        cv2.rectangle(canvas, (x0, y), (x0 + bar_w, y + bar_h), (60, 60, 60), -1)
        span = float(high) - float(low)
        if span <= 0 or not np.isfinite(value):
            continue
        fraction = min(1.0, max(0.0, (float(value) - float(low)) / span))
        origin = (0.0 - float(low)) / span if low < 0.0 < high else 0.0
        a = x0 + int(origin * bar_w)
        b = x0 + int(fraction * bar_w)
        cv2.rectangle(canvas, (min(a, b), y), (max(a, b, min(a, b) + 1), y + bar_h),
                      (0, 170, 255), -1)
    return canvas

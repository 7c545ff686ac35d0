"""
The demo's pictures: the annotated camera as a GIF or MP4, and commanded vs clamped velocities.

Frames are the controller's own ~/annotated_image (what the policy saw, its action bars, latency
and state), each shown for as long as it was current, with a caption band naming the episode and
a closing card with the episode's result - so the video plays in real time and a viewer can tell
the episodes apart. The plot shows, on one time axis, what the policy's actions asked for
(action delta / decision period, the safety stage's input) and what was published on
servo/delta_twist_cmds (its output), with the speed limits, so every clamp is visible.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from rt2_ros.demo.plan import VIDEO_FORMATS

CAPTION_LINE = 17
MP4_FPS = 10.0
MIN_FRAME_S = 0.05
MAX_FRAME_S = 2.0
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GREEN = (40, 190, 60)
_RED = (220, 60, 50)


@dataclass
class VideoFrame:
    """One picture and how long it stays on screen."""

    image: np.ndarray
    duration_s: float


def caption(image: np.ndarray, lines: Sequence[str],
            colour: Tuple[int, int, int] = (30, 30, 30)) -> np.ndarray:
    """Return image with a caption band below it, one row per line, shrunk to fit (RGB)."""
    height, width = image.shape[:2]
    rows = CAPTION_LINE * len(lines) + 4
    rows += (height + rows) % 2  # even frame sizes: video codecs (yuv420) need them
    band = np.empty((rows, width, 3), dtype=np.uint8)
    band[:] = colour
    for row, text in enumerate(lines):
        scale = 0.42
        while scale > 0.3 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > width - 10:
            scale -= 0.02
        cv2.putText(band, text, (5, CAPTION_LINE * (row + 1) - 3), _FONT, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([np.ascontiguousarray(image[..., :3]), band], axis=0)


def result_card(image: np.ndarray, success: bool, text: str) -> np.ndarray:
    """Return the episode's last frame dimmed, with its result written across it."""
    card = (image.astype(np.float32) * 0.45).astype(np.uint8)
    height, width = card.shape[:2]
    scale = width / 320.0
    label = 'SUCCESS' if success else 'FAILED'
    colour = _GREEN if success else _RED
    (w, h), _ = cv2.getTextSize(label, _FONT, 1.1 * scale, 2)
    cv2.putText(card, label, ((width - w) // 2, height // 2), _FONT, 1.1 * scale, colour,
                max(2, int(2 * scale)), cv2.LINE_AA)
    small = 0.45 * scale
    (w, _), _ = cv2.getTextSize(text, _FONT, small, 1)
    cv2.putText(card, text, (max(4, (width - w) // 2), height // 2 + int(h * 1.2)), _FONT, small,
                (255, 255, 255), 1, cv2.LINE_AA)
    return card


def frame_durations(stamps: Sequence[float], last_s: float) -> List[float]:
    """Seconds each frame is current: until the next one, bounded for a watchable video."""
    out = [b - a for a, b in zip(stamps, stamps[1:])] + [last_s] if stamps else []
    return [min(MAX_FRAME_S, max(MIN_FRAME_S, d)) for d in out]


def _same_size(frames: Sequence[VideoFrame]) -> List[np.ndarray]:
    height, width = frames[0].image.shape[:2]
    return [f.image if f.image.shape[:2] == (height, width)
            else cv2.resize(f.image, (width, height), interpolation=cv2.INTER_AREA)
            for f in frames]


def write_gif(frames: Sequence[VideoFrame], path: Path) -> Path:
    """
    Write an endlessly looping GIF with each frame's own duration.

    One palette for the whole video, made from a sample of its frames, without dithering:
    about half the size of per-frame palettes and no colour flicker between frames.
    """
    from PIL import Image
    images = _same_size(frames)
    step = max(1, len(images) // 16)
    sample = np.concatenate([i[::2, ::2] for i in images[::step]], axis=0)
    palette = Image.fromarray(np.ascontiguousarray(sample)).quantize(
        colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pictures = [Image.fromarray(np.ascontiguousarray(i)).quantize(
        palette=palette, dither=Image.Dither.NONE) for i in images]
    # GIF durations are in units of 10 ms.
    durations = [max(20, int(round(f.duration_s * 100)) * 10) for f in frames]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations,
                     loop=0, optimize=True, disposal=1)
    return path


def write_mp4(frames: Sequence[VideoFrame], path: Path, fps: float = MP4_FPS) -> Path:
    """Write an MPEG-4 (mp4v) video at a fixed rate, repeating frames for their duration."""
    images = _same_size(frames)
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f'OpenCV cannot write MP4 to {path}')
    try:
        owed = 0.0
        for image, frame in zip(images, frames):
            owed += frame.duration_s * fps
            repeats = max(1, int(round(owed)))
            owed -= repeats
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            for _ in range(repeats):
                writer.write(bgr)
    finally:
        writer.release()
    return path


def write_video(frames: Sequence[VideoFrame], out_dir: Path, fmt: str,
                name: str = 'demo') -> Optional[Path]:
    """Write frames as out_dir/name.gif or .mp4; None for format 'none' or no frames."""
    if fmt not in VIDEO_FORMATS:
        raise ValueError(f'unknown video format {fmt!r}; one of {", ".join(VIDEO_FORMATS)}')
    if fmt == 'none' or not frames:
        return None
    path = Path(out_dir) / f'{name}.{fmt}'
    return write_gif(frames, path) if fmt == 'gif' else write_mp4(frames, path)


@dataclass
class VelocitySeries:
    """Velocities over time: t (N,) seconds, linear (N, 3) m/s, angular (N, 3) rad/s."""

    t: np.ndarray
    linear: np.ndarray
    angular: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[Tuple[float, Sequence[float], Sequence[float]]]):
        if not rows:
            return cls(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)))
        return cls(np.array([r[0] for r in rows], dtype=float),
                   np.array([r[1] for r in rows], dtype=float).reshape(-1, 3),
                   np.array([r[2] for r in rows], dtype=float).reshape(-1, 3))


@dataclass
class EpisodeSpan:
    """An episode on the plot's time axis."""

    start_s: float
    end_s: float
    label: str
    success: bool


def plot_velocities(commanded: VelocitySeries, clamped: VelocitySeries,
                    spans: Sequence[EpisodeSpan], max_linear: float, max_angular: float,
                    path: Path, title: str = '') -> Path:
    """Plot commanded vs clamped end-effector velocities (speed, per axis, turn rate)."""
    # A bare Figure (Agg canvas), not pyplot: no global backend state, safe next to a live view.
    from matplotlib.figure import Figure
    figure = Figure(figsize=(11, 9.5))
    axes = figure.subplots(5, 1, sharex=True, gridspec_kw={'height_ratios': [1.4, 1, 1, 1, 1.2]})
    rows = [
        ('speed |v|\n[m/s]', lambda s: np.linalg.norm(s.linear, axis=1), max_linear),
        ('vx [m/s]', lambda s: s.linear[:, 0], None),
        ('vy [m/s]', lambda s: s.linear[:, 1], None),
        ('vz [m/s]', lambda s: s.linear[:, 2], None),
        ('turn rate |w|\n[rad/s]', lambda s: np.linalg.norm(s.angular, axis=1), max_angular),
    ]
    for axis, (label, value, limit) in zip(axes, rows):
        if len(commanded.t):
            axis.plot(commanded.t, value(commanded), color='tab:orange', lw=1.0, alpha=0.9,
                      drawstyle='steps-post', label='commanded (policy action / period)')
        if len(clamped.t):
            axis.plot(clamped.t, value(clamped), color='tab:blue', lw=1.4,
                      drawstyle='steps-post', label='clamped (published twist)')
        if limit is not None:
            axis.axhline(limit, color='tab:red', lw=0.9, ls='--', label='safety limit')
        else:
            axis.axhline(0.0, color='grey', lw=0.6)
        axis.set_ylabel(label, fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(True, lw=0.3, alpha=0.5)
        for k, span in enumerate(spans):
            axis.axvspan(span.start_s, span.end_s, color='0.92' if k % 2 else '0.97', zorder=0)
    top = axes[0]
    for span in spans:
        mark = 'success' if span.success else 'fail'
        top.annotate(f'{span.label}\n{mark}', xy=((span.start_s + span.end_s) / 2, 1.0),
                     xycoords=('data', 'axes fraction'), ha='center', va='bottom', fontsize=8,
                     color='tab:green' if span.success else 'tab:red')
    handles, labels = top.get_legend_handles_labels()
    figure.legend(handles, labels, loc='lower center', ncol=3, fontsize=8, frameon=False)
    axes[-1].set_xlabel('time since the first episode started [s]', fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=90)
    return path

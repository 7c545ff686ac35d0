"""
An optional live window of the annotated camera while the demo runs (matplotlib, main thread).

Best effort by design: the demo's product is its files and numbers, so a missing display or GUI
toolkit (a server, CI, the headless OpenCV wheel has no windows) only turns the view off with
one line of explanation, and a failure while drawing closes it - never the demo.
"""
import os
import sys
from typing import Optional

import numpy as np

NON_INTERACTIVE = ('agg', 'cairo', 'pdf', 'pgf', 'ps', 'svg', 'template')


class LiveViewUnavailable(RuntimeError):
    """No window can be shown here; the message says why."""


def display_available() -> bool:
    """Tell whether a window could be shown (an X11/Wayland display, or macOS / Windows)."""
    if sys.platform in ('darwin', 'win32'):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


class LiveView:
    """A window that shows the newest annotated frame."""

    def __init__(self, title: str = 'rt2 demo') -> None:
        if not display_available():
            raise LiveViewUnavailable('no display')
        try:
            import matplotlib
            backend = matplotlib.get_backend().lower()
            if any(backend.startswith(name) for name in NON_INTERACTIVE) or 'inline' in backend:
                raise LiveViewUnavailable(f'matplotlib has no GUI backend here ({backend})')
            import matplotlib.pyplot as plt
            plt.ion()
            self._plt = plt
            self._figure = plt.figure(title, figsize=(5, 5.5))
            self._axes = self._figure.add_axes([0, 0, 1, 1])
            self._axes.axis('off')
            self._image = None
            plt.show(block=False)
        except LiveViewUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any GUI problem only disables the view
            raise LiveViewUnavailable(f'{type(exc).__name__}: {exc}') from None
        self.open = True

    def show(self, frame: np.ndarray) -> None:
        """Draw a frame; closing the window (or a GUI error) just stops the view."""
        if not self.open:
            return
        try:
            if not self._plt.fignum_exists(self._figure.number):
                self.open = False
                return
            if self._image is None or self._image.get_array().shape != frame.shape:
                self._axes.clear()
                self._axes.axis('off')
                self._image = self._axes.imshow(frame)
            else:
                self._image.set_data(frame)
            self._figure.canvas.draw_idle()
            self._figure.canvas.flush_events()
        except Exception:  # noqa: BLE001 - see the module docstring
            self.open = False

    def close(self) -> None:
        if self.open:
            try:
                self._plt.close(self._figure)
            except Exception:  # noqa: BLE001
                pass
        self.open = False


def try_live_view(log) -> Optional[LiveView]:
    """Return a live view, or None after logging why there is none."""
    try:
        return LiveView()
    except LiveViewUnavailable as exc:
        log(f'live view off ({exc}); the video is written at the end')
        return None

"""
The demo VLA shipped with the package (trained in the simulator by `rt2 train`).

It lives in the source tree under models/ and is installed to share/rt2_ros/models, so
`rt2 demo` and launch files find it however the package was installed.
"""
from pathlib import Path

from rt2_ros.resources import find_data

BUNDLED_MODEL_NAME = 'rt2_demo_vla'


def bundled_model_path() -> Path:
    """Return the bundled demo model's directory (FileNotFoundError if it is not installed)."""
    return find_data('models', BUNDLED_MODEL_NAME)

"""
Locate the package's data files (config/, launch/, models/) however it was installed.

The same code runs from a source checkout (editable pip install), from a colcon install space
(files under share/rt2_ros found through the ament index) and from a plain pip install into a
virtual environment (data_files under sys.prefix/share/rt2_ros). Looking in each in turn keeps
users from having to pass absolute paths for the shipped presets.
"""
import os
from pathlib import Path
import sys
from typing import Iterator, List

PACKAGE = 'rt2_ros'
SHARE_ENV = 'RT2_ROS_SHARE'


def _candidate_roots() -> Iterator[Path]:
    override = os.environ.get(SHARE_ENV)
    if override:
        yield Path(override)
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / 'package.xml').is_file():
        yield source_root
    try:
        from ament_index_python.packages import get_package_share_directory
        yield Path(get_package_share_directory(PACKAGE))
    except Exception:  # noqa: BLE001 - ament index absent or package not registered
        pass
    yield Path(sys.prefix) / 'share' / PACKAGE


def share_roots() -> List[Path]:
    """Directories that may hold the package's data, most specific first."""
    seen: List[Path] = []
    for root in _candidate_roots():
        if root.is_dir() and root not in seen:
            seen.append(root)
    return seen


def find_data(*parts: str) -> Path:
    """Return the first existing path share_root/parts..., or raise FileNotFoundError."""
    relative = Path(*parts)
    for root in share_roots():
        candidate = root / relative
        if candidate.exists():
            return candidate
    searched = ', '.join(str(r) for r in share_roots()) or '(no data directory found)'
    raise FileNotFoundError(f'{relative} not found in rt2_ros data directories: {searched}')

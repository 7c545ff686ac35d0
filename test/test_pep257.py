"""Docstring check the way ROS packages run it (ament_pep257)."""
from lint_paths import LINT_PATHS
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    from ament_pep257.main import main
    rc = main(argv=LINT_PATHS)
    assert rc == 0, 'Found code style errors / warnings'

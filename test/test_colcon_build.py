"""The package builds with colcon in a fresh workspace and installs where ROS tools look."""
import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns('.venv', 'build', 'install', 'log', '.git', '__pycache__',
                                 '*.egg-info', '.pytest_cache', '.hypothesis', 'out')


@pytest.fixture(scope='module')
def install_space(tmp_path_factory):
    colcon = Path(sys.executable).parent / 'colcon'
    if not colcon.exists():
        pytest.fail('colcon is not installed in this environment; run make setup')
    workspace = tmp_path_factory.mktemp('ws')
    shutil.copytree(ROOT, workspace / 'src' / 'rt2_ros', ignore=IGNORED)
    env = dict(os.environ)
    env.pop('AMENT_PREFIX_PATH', None)
    result = subprocess.run(
        [str(colcon), 'build', '--event-handlers', 'console_direct-', '--packages-select',
         'rt2_ros'], cwd=workspace, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workspace / 'install' / 'rt2_ros'


def test_ament_index_and_share(install_space):
    share = install_space / 'share' / 'rt2_ros'
    assert (install_space / 'share' / 'ament_index' / 'resource_index' / 'packages'
            / 'rt2_ros').is_file()
    assert (share / 'package.xml').is_file()
    for preset in ('rt2', 'openvla', 'rt1_mobile'):
        assert (share / 'config' / 'action_spaces' / f'{preset}.yaml').is_file()
    for launch_file in (ROOT / 'launch').glob('*.py'):
        assert (share / 'launch' / launch_file.name).is_file()
    for config_file in (ROOT / 'config').rglob('*'):
        if config_file.is_file():
            assert (share / config_file.relative_to(ROOT)).is_file(), config_file


def test_only_the_default_model_and_no_research_is_installed(install_space):
    from rt2_ros.models.bundled import BUNDLED_MODEL_NAME

    share = install_space / 'share' / 'rt2_ros'
    assert sorted(p.name for p in (share / 'models').iterdir()) == [BUNDLED_MODEL_NAME]
    assert sorted(p.stem for p in (share / 'config' / 'training').iterdir()) == \
        [BUNDLED_MODEL_NAME]
    installed = [p.relative_to(install_space).as_posix() for p in install_space.rglob('*')]
    assert not [p for p in installed if 'experiments' in p or 'probe' in p], installed[:20]


def test_executables_in_lib(install_space):
    for name in ('rt2', 'rt2_controller', 'rt2_sim'):
        assert os.access(install_space / 'lib' / 'rt2_ros' / name, os.X_OK), name


def test_installed_package_finds_presets_through_ament_index(install_space):
    site = next((install_space / 'lib').glob('python3*/site-packages'))
    env = dict(os.environ)
    env['PYTHONPATH'] = str(site)
    env['AMENT_PREFIX_PATH'] = str(install_space)
    script = ('import rt2_ros.resources as r, rt2_ros.actions as a;'
              'print(r.find_data("config", "action_spaces", "rt2.yaml"));'
              'print(a.load_action_space("openvla").size)')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            env=env, cwd=str(install_space), timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0].startswith(str(install_space)) and lines[1] == '7'
    rt2 = subprocess.run([str(install_space / 'lib' / 'rt2_ros' / 'rt2'), 'actions', 'decode',
                          '--space', 'rt2', '1 1 1 1 1 1 1 1'], capture_output=True, text=True,
                         env=env, cwd=str(install_space), timeout=60)
    assert rt2.returncode == 0 and '"terminate": false' in rt2.stdout, rt2.stderr

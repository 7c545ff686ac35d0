"""The files a ROS 2 ament_python package and a new user rely on are present and consistent."""
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = Path(__file__).resolve().parent.parent


def test_package_xml_format_and_dependencies():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'rt2_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    # the full list is derived from the code's imports: test_packaging.py
    for dep in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'std_msgs', 'python3-numpy'):
        assert dep in exec_deps, dep
    assert 'python3-pytest' in {e.text for e in root.findall('test_depend')}


def test_setup_cfg_script_dir():
    text = (ROOT / 'setup.cfg').read_text()
    assert 'script_dir=$base/lib/rt2_ros' in text
    assert 'install_scripts=$base/lib/rt2_ros' in text


def test_resource_marker_and_layout():
    assert (ROOT / 'resource' / 'rt2_ros').is_file()
    for path in ('rt2_ros', 'launch', 'config', 'test', 'README.md', '.ci/run', 'Makefile'):
        assert (ROOT / path).exists(), path


def test_ci_runs_the_readme_test_command():
    assert 'make test' in (ROOT / '.ci' / 'run').read_text()
    readme = (ROOT / 'README.md').read_text()
    assert 'make test' in readme and 'make demo' in readme


def test_console_scripts_declared():
    text = (ROOT / 'setup.py').read_text()
    for name in ('rt2 = ', 'rt2_controller = ', 'rt2_sim = '):
        assert name in text


def _is_ros_module(name: str) -> bool:
    """Tell whether a module may import rclpy: `*node` modules and the `ros` subpackage."""
    parts = name.split('.')
    return parts[-1].endswith('node') or 'ros' in parts[1:]


def test_pure_modules_do_not_import_rclpy():
    """Everything but the ROS layer imports without pulling in rclpy (and so works without ROS)."""
    import pkgutil
    import rt2_ros
    names = [info.name for info in pkgutil.walk_packages(rt2_ros.__path__, 'rt2_ros.')
             if not _is_ros_module(info.name)]
    assert 'rt2_ros.actions.codec' in names and 'rt2_ros.cli.main' in names
    code = ('import importlib, sys\n'
            f'for name in {names!r}:\n'
            '    importlib.import_module(name)\n'
            '    if "rclpy" in sys.modules:\n'
            '        sys.exit("rclpy imported by " + name)\n')
    result = subprocess.run([sys.executable, '-c', code], timeout=300, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_tested_distro_has_its_wheels_lock_and_ci_run():
    import re
    makefile = (ROOT / 'Makefile').read_text()
    distros = re.search(r'^TESTED_DISTROS := (.+)$', makefile, re.M).group(1).split()
    assert distros == ['kilted', 'jazzy']
    ci = (ROOT / '.ci' / 'run').read_text()
    readme = (ROOT / 'README.md').read_text()
    for distro in distros:
        wheels = (ROOT / 'requirements' / f'ros-{distro}.txt').read_text()
        prefix = 'ros-' if distro == 'kilted' else f'ros-{distro}-'
        assert f'{prefix}rclpy==' in wheels
        lock = ROOT / 'requirements' / ('lock.txt' if distro == 'kilted' else f'lock-{distro}.txt')
        assert f'{prefix}rclpy==' in lock.read_text()
        assert ('make test\n' if distro == 'kilted' else f'make test ROS_DISTRO={distro}') in ci
        assert distro.capitalize() in readme
    lines = (ROOT / 'requirements' / 'dev.txt').read_text().splitlines()
    assert not [line for line in lines if line.startswith('ros-')], 'ROS wheels in dev.txt'


def test_no_blanket_reruns_and_every_retry_says_why():
    import re
    conftest = (ROOT / 'test' / 'conftest.py').read_text()
    assert 'flaky' not in conftest and 'reruns' not in conftest
    assert 'reruns' not in (ROOT / 'pytest.ini').read_text()
    for path in sorted((ROOT / 'test').rglob('*.py')):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if re.search(r'mark\.flaky\(', line) and path.name != 'test_package_layout.py':
                reason = ' '.join(lines[max(0, number - 2):number + 1])
                assert '#' in reason, f'{path.name}:{number + 1}: a retry without its reason'

"""
package.xml and setup.py say what the code imports, derived from the code so they cannot drift.

Every module imported by rt2_ros/ or launch/ outside the standard library is either an
exec_depend of package.xml (what rosdep installs on a robot) and, where pip can install it, in
setup.py's install_requires; or it belongs to an optional part and is in that part's extra
(`pip install .[local]` etc.). package.xml lists nothing the code does not import, and setup.py
never asks pip for ROS itself.
"""
import ast
from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ET

ROOT = Path(__file__).resolve().parent.parent
SCANNED = [ROOT / 'rt2_ros', ROOT / 'launch']

# ROS packages: the import name is the package.xml key; pip never installs them from here.
ROS_PACKAGES = {
    'ament_index_python', 'builtin_interfaces', 'cv_bridge', 'diagnostic_msgs', 'geometry_msgs',
    'launch', 'launch_ros', 'nav_msgs', 'rcl_interfaces', 'rclpy', 'rosgraph_msgs',
    'sensor_msgs', 'std_msgs', 'std_srvs', 'visualization_msgs',
}
# Imports every part needs: (rosdep key in package.xml, pip distribution in install_requires).
CORE = {
    'cv2': ('python3-opencv', 'opencv-python-headless'),
    'msgpack': ('python3-msgpack', 'msgpack'),
    'numpy': ('python3-numpy', 'numpy'),
    'PIL': ('python3-pil', 'pillow'),
    'scipy': ('python3-scipy', 'scipy'),
    'websockets': ('python3-websockets', 'websockets'),
    'yaml': ('python3-yaml', 'PyYAML'),
}
# Imports of optional parts: (setup.py extra, pip distribution); None: comes with another one.
OPTIONAL = {
    'torch': ('local', 'torch'),
    'transformers': ('local', 'transformers'),
    'tokenizers': ('local', 'tokenizers'),
    'llguidance': ('local', 'llguidance'),
    'huggingface_hub': ('local', None),  # transformers' own dependency (config dataclasses)
    'fastapi': ('serve', 'fastapi'),
    'starlette': ('serve', None),  # fastapi's own dependency
    'uvicorn': ('serve', 'uvicorn'),
    'rosbags': ('bags', 'rosbags'),
    'apsw': ('bags', None),  # tried if present (rosbags' sqlite3 reader), never required
    'matplotlib': ('bags', 'matplotlib'),
    'tqdm': ('bags', 'tqdm'),
}


def code_imports():
    """Return {top-level module: files importing it} for rt2_ros/ and launch/, stdlib left out."""
    found = {}
    for root in SCANNED:
        for path in sorted(root.rglob('*.py')):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split('.')[0]
                    if top not in sys.stdlib_module_names and top != 'rt2_ros':
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def exec_depends():
    tree = ET.parse(ROOT / 'package.xml')
    return {e.text.strip() for e in tree.getroot().iter('exec_depend')}


def _assigns_a_list(node):
    """Whether node is `NAME = ...` or `EXTRAS_REQUIRE[...] = ...` for one of setup.py's lists."""
    if not isinstance(node, ast.Assign):
        return False
    target = node.targets[0]
    if isinstance(target, ast.Subscript):
        target = target.value
    return isinstance(target, ast.Name) and target.id in SETUP_LISTS


SETUP_LISTS = ('INSTALL_REQUIRES', 'LOCAL', 'EXTRAS_REQUIRE')


def setup_lists():
    """Return INSTALL_REQUIRES and EXTRAS_REQUIRE from setup.py, evaluated without running it."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    module = ast.Module(body=[n for n in tree.body if _assigns_a_list(n)], type_ignores=[])
    namespace = {}
    exec(compile(module, 'setup.py', 'exec'), namespace)  # noqa: S102 - our own literals
    return namespace['INSTALL_REQUIRES'], namespace['EXTRAS_REQUIRE']


def distribution(requirement):
    return re.split(r'[<>=!~ \[;]', requirement, maxsplit=1)[0].lower()


def test_every_import_is_declared():
    imports = code_imports()
    unknown = {name: sorted(files) for name, files in imports.items()
               if name not in ROS_PACKAGES and name not in CORE and name not in OPTIONAL}
    assert not unknown, f'imports with no place in package.xml or setup.py: {unknown}'


def test_package_xml_lists_every_runtime_import_and_nothing_else():
    imports = set(code_imports())
    wanted = {name for name in imports if name in ROS_PACKAGES} | \
        {CORE[name][0] for name in imports if name in CORE}
    declared = exec_depends()
    assert wanted - declared == set(), f'missing exec_depends: {sorted(wanted - declared)}'
    assert declared - wanted == set(), f'exec_depends nothing imports: {sorted(declared - wanted)}'


def test_setup_py_requires_what_pip_can_install():
    install_requires, extras = setup_lists()
    imports = set(code_imports())
    required = {distribution(r) for r in install_requires}
    assert required == {CORE[name][1].lower() for name in imports if name in CORE}
    for name in imports & set(OPTIONAL):
        extra, dist = OPTIONAL[name]
        if dist is not None:
            assert dist.lower() in {distribution(r) for r in extras[extra]}, (name, extra)
    assert {'local', 'serve', 'bags', 'train', 'dev'} <= set(extras)
    every = {distribution(r) for reqs in extras.values() for r in reqs} | required
    ros = {d for d in every if d.startswith('ros-') or d.replace('-', '_') in ROS_PACKAGES}
    assert not ros, f'ROS wheels must not be pip requirements of the package: {ros}'
    assert set(extras['dev']) >= {r for key in ('local', 'serve', 'bags', 'train')
                                  for r in extras[key]}


def test_license_file_matches_package_xml():
    license_name = ET.parse(ROOT / 'package.xml').getroot().find('license').text.strip()
    assert license_name == 'Apache-2.0'
    text = (ROOT / 'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert re.search(r"license='Apache-2.0'", (ROOT / 'setup.py').read_text())

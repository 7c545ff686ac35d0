"""
The launch files, parameter file and rviz layout, checked without ROS launch installed.

`launch` / `launch_ros` have no PyPI wheels, so each launch file is executed against small
recording stand-ins for the handful of launch classes it uses. That still catches what breaks
launch files in practice: syntax and name errors, a parameter the node does not declare (it
would refuse to start), an argument used but never declared, an executable that is not
installed, a referenced file that does not exist or is not installed.
"""
import ast
from pathlib import Path
import re
import sys
import types

import pytest
from rt2_ros.controller import params as P
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
CONTROLLER_LAUNCH = ROOT / 'launch' / 'rt2_controller.launch.py'
SERVO_LAUNCH = ROOT / 'launch' / 'rt2_servo.launch.py'
NODE_EXTRA = {'use_sim_time'}


class Recorded:
    """Stand-in for a launch class: remembers how it was constructed."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs


def _stub_modules():
    """Modules `launch`, `launch_ros` and submodules holding recording stand-ins."""
    names = {
        'launch': ['LaunchDescription'],
        'launch.actions': ['DeclareLaunchArgument', 'ExecuteProcess', 'IncludeLaunchDescription',
                           'GroupAction', 'LogInfo', 'TimerAction', 'RegisterEventHandler'],
        'launch.conditions': ['IfCondition', 'UnlessCondition'],
        'launch.substitutions': ['LaunchConfiguration', 'PathJoinSubstitution',
                                 'TextSubstitution', 'PythonExpression'],
        'launch_ros.actions': ['Node', 'LifecycleNode', 'PushRosNamespace'],
        'launch_ros.parameter_descriptions': ['ParameterValue', 'ParameterFile'],
        'launch_ros.substitutions': ['FindPackageShare'],
    }
    modules = {'launch_ros': types.ModuleType('launch_ros')}
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for class_name in classes:
            setattr(module, class_name, type(class_name, (Recorded,), {}))
        modules[module_name] = module
    return modules


def _walk(value):
    """Every Recorded object reachable from value (args, kwargs, lists, dicts)."""
    if isinstance(value, Recorded):
        yield value
        for item in list(value.args) + list(value.kwargs.values()):
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in list(value.keys()) + list(value.values()):
            yield from _walk(item)


def _kind(obj):
    return type(obj).__name__


def _load(path, monkeypatch):
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace = {'__name__': 'launch_file', '__file__': str(path)}
    exec(compile(path.read_text(), str(path), 'exec'), namespace)  # noqa: S102 - our own file
    description = namespace['generate_launch_description']()
    assert _kind(description) == 'LaunchDescription'
    return list(_walk(description))


def _console_scripts():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = re.match(r'^\s*([\w-]+)\s*=\s*[\w.]+:\w+\s*$', node.value)
            if match:
                scripts.add(match.group(1))
    return scripts


def _installed_file(parts):
    """Map PathJoinSubstitution([FindPackageShare('rt2_ros'), 'config', ...]) to the repo."""
    head, *rest = parts
    assert _kind(head) == 'FindPackageShare' and head.args == ('rt2_ros',)
    assert rest and rest[0] in ('config', 'launch', 'models'), rest  # trees setup.py installs
    return ROOT.joinpath(*rest)


def test_there_are_launch_files():
    assert CONTROLLER_LAUNCH in LAUNCH_FILES and SERVO_LAUNCH in LAUNCH_FILES


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent_with_the_node_and_the_package(path, monkeypatch):
    objects = _load(path, monkeypatch)
    declared = {o.args[0] if o.args else o.kwargs['name'] for o in objects
                if _kind(o) == 'DeclareLaunchArgument'}
    used = {o.args[0] for o in objects if _kind(o) == 'LaunchConfiguration'}
    assert used <= declared, f'arguments used but not declared: {used - declared}'
    for name in ('namespace', 'params_file', 'policy_backend', 'policy_url', 'action_space',
                 'use_sim_time'):
        assert name in declared, name
    nodes = [o for o in objects if _kind(o) in ('Node', 'LifecycleNode')]
    assert nodes
    scripts = _console_scripts()
    for node in nodes:
        assert node.kwargs['package'] == 'rt2_ros'
        assert node.kwargs['executable'] in scripts
        if node.kwargs['executable'] != 'rt2_controller':
            continue
        assert node.kwargs['name'] == 'rt2_controller'
        for entry in node.kwargs['parameters']:
            if isinstance(entry, dict):
                for key, value in entry.items():
                    assert key in P.BY_NAME or key in NODE_EXTRA, f'{key} is not declared'
                    if key in P.BY_NAME and not isinstance(value, Recorded):
                        assert P.check_value(P.BY_NAME[key], value) is None, key
    for path_join in (o for o in objects if _kind(o) == 'PathJoinSubstitution'):
        target = _installed_file(path_join.args[0])
        assert target.is_file(), target


def test_servo_launch_remaps_to_servo_and_documents_the_command_type(monkeypatch):
    objects = _load(SERVO_LAUNCH, monkeypatch)
    node = next(o for o in objects if _kind(o) == 'LifecycleNode')
    remaps = dict(node.kwargs['remappings'])
    target = remaps['servo/delta_twist_cmds']
    assert any(part == '/delta_twist_cmds' for part in target)
    defaults = {o.args[0]: o.kwargs.get('default_value') for o in objects
                if _kind(o) == 'DeclareLaunchArgument'}
    assert defaults['servo_node'] == '/servo_node'  # -> /servo_node/delta_twist_cmds
    assert 'gripper/commands' in remaps
    text = SERVO_LAUNCH.read_text()
    assert 'switch_command_type' in text and 'ServoCommandType' in text and 'start_servo' in text


def test_parameter_file_sets_only_declared_valid_parameters():
    data = yaml.safe_load((ROOT / 'config' / 'rt2_controller.yaml').read_text())
    (node_key, body), = data.items()
    assert node_key.endswith('rt2_controller')
    values = body['ros__parameters']
    for key, value in values.items():
        assert key in P.BY_NAME, f'{key} is not declared'
        spec = P.BY_NAME[key]
        if spec.kind == 'double' and isinstance(value, int):
            value = float(value)
        assert P.check_value(spec, value) is None, key
        assert value == spec.default, f'{key}: the shipped file should show the default'
    assert P.check_all(values) == []
    missing = set(P.names()) - set(values) - {'limits.workspace_min', 'limits.workspace_max'}
    assert not missing, f'parameters not shown in the file: {missing}'


def test_rviz_layout_shows_the_controller_topics():
    layout = yaml.safe_load((ROOT / 'config' / 'rt2.rviz').read_text())
    displays = layout['Visualization Manager']['Displays']
    topics = {d['Class']: d.get('Topic', {}).get('Value') for d in displays}
    assert topics['rviz_default_plugins/MarkerArray'] == '/rt2/rt2_controller/markers'
    assert topics['rviz_default_plugins/Image'] == '/rt2/rt2_controller/annotated_image'
    assert layout['Visualization Manager']['Global Options']['Fixed Frame'] == 'base_link'


def test_readme_parameter_table_matches_the_node():
    readme = (ROOT / 'README.md').read_text()
    assert P.markdown_table() in readme, 'regenerate the README table from params.py'

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
from rt2_ros.launch_params import effective_parameters, rviz_config_text
from rt2_ros.models.bundled import BUNDLED_MODEL_NAME, bundled_model_path, is_model_dir
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
CONTROLLER_LAUNCH = ROOT / 'launch' / 'rt2_controller.launch.py'
SERVO_LAUNCH = ROOT / 'launch' / 'rt2_servo.launch.py'
DEMO_LAUNCH = ROOT / 'launch' / 'rt2_sim_demo.launch.py'
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
                           'GroupAction', 'LogInfo', 'TimerAction', 'RegisterEventHandler',
                           'OpaqueFunction'],
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


class _Context:
    """Stand-in for launch.LaunchContext: the performed launch configurations."""

    def __init__(self, launch_configurations):
        self.launch_configurations = launch_configurations


def _load(path, monkeypatch, given=None):
    """
    Return every launch object path's description makes, with only `given` arguments given.

    OpaqueFunctions are called the way `ros2 launch` calls them: with a context holding each
    declared argument's default, replaced by the value the user gave.
    """
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace = {'__name__': 'launch_file', '__file__': str(path)}
    exec(compile(path.read_text(), str(path), 'exec'), namespace)  # noqa: S102 - our own file
    description = namespace['generate_launch_description']()
    assert _kind(description) == 'LaunchDescription'
    objects = list(_walk(description))
    configurations = {o.args[0] if o.args else o.kwargs['name']: o.kwargs.get('default_value')
                      for o in objects if _kind(o) == 'DeclareLaunchArgument'}
    unknown = set(given or {}) - set(configurations)
    assert not unknown, f'not declared: {unknown}'
    configurations.update(given or {})
    for opaque in [o for o in objects if _kind(o) == 'OpaqueFunction']:
        objects.extend(_walk(opaque.kwargs['function'](_Context(dict(configurations)))))
    return objects


def _controller_node(objects):
    (node,) = [o for o in objects if _kind(o) in ('Node', 'LifecycleNode')
               and o.kwargs['executable'] == 'rt2_controller']
    return node


def _console_scripts():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = re.match(r'^\s*([\w-]+)\s*=\s*[\w.]+:\w+\s*$', node.value)
            if match:
                scripts.add(match.group(1))
    return scripts


def _path_parts(path_join):
    """Return the parts of a PathJoinSubstitution, nested ones flattened."""
    parts = []
    for part in path_join.args[0]:
        parts.extend(_path_parts(part) if _kind(part) == 'PathJoinSubstitution' else [part])
    return parts


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
    nodes = [o for o in objects if _kind(o) in ('Node', 'LifecycleNode')]
    assert nodes
    required = {'namespace', 'use_sim_time'}
    if any(node.kwargs.get('executable') == 'rt2_controller' for node in nodes):
        required |= {'params_file', 'policy_backend', 'policy_url', 'action_space'}
    assert required <= declared, f'launch arguments missing: {required - declared}'
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
            else:
                assert Path(entry).is_file(), entry
    for path_join in (o for o in objects if _kind(o) == 'PathJoinSubstitution'):
        target = _installed_file(_path_parts(path_join))
        assert target.is_file(), target


def test_demo_launch_runs_the_bundled_model(monkeypatch):
    objects = _load(DEMO_LAUNCH, monkeypatch)
    nodes = {o.kwargs['executable']: o for o in objects if _kind(o) in ('Node', 'LifecycleNode')}
    assert set(nodes) == {'rt2_sim', 'rt2_controller'}
    assert nodes['rt2_sim'].kwargs['namespace'] == nodes['rt2_controller'].kwargs[
        'namespace'] == 'rt2_demo'
    values = effective_parameters(nodes['rt2_controller'].kwargs['parameters'])
    model = ROOT / 'models' / BUNDLED_MODEL_NAME
    assert values['policy.backend'] == 'local'
    assert Path(values['policy.model_path']) == model
    assert Path(values['action_space']) == model / 'action_space.yaml'
    assert values['enabled_on_start'] is True
    bundled = bundled_model_path()
    if bundled is None:
        pytest.skip('no bundled demo model under models/ (a checkout without it)')
    assert bundled == model, f'models/ holds {bundled.name}: set BUNDLED_MODEL_NAME to it'
    assert is_model_dir(model)


@pytest.fixture
def robot_params(tmp_path):
    """Write a user's params file whose values differ from every launch file's defaults."""
    path = tmp_path / 'my_robot.yaml'
    values = {'policy.backend': 'openpi', 'policy.url': 'ws://robot-gpu:8000',
              'policy.model_path': '/opt/models/mine', 'action_space': 'rt1_mobile',
              'output.frame_id': 'tool0', 'use_sim_time': True}
    path.write_text(yaml.safe_dump({'/**/rt2_controller': {'ros__parameters': values}}))
    return path, values


@pytest.mark.parametrize('path', [CONTROLLER_LAUNCH, SERVO_LAUNCH, DEMO_LAUNCH],
                         ids=lambda p: p.name)
def test_params_file_alone_keeps_its_values(path, monkeypatch, robot_params):
    params_file, values = robot_params
    objects = _load(path, monkeypatch, given={'params_file': str(params_file)})
    effective = effective_parameters(_controller_node(objects).kwargs['parameters'])
    for key, value in values.items():
        if path == DEMO_LAUNCH and key == 'use_sim_time':
            continue  # the demo's sim and controller share one use_sim_time argument
        assert effective[key] == value, f'{path.name} replaced {key} from params_file'


@pytest.mark.parametrize('path', [CONTROLLER_LAUNCH, SERVO_LAUNCH, DEMO_LAUNCH],
                         ids=lambda p: p.name)
def test_a_given_argument_overrides_the_params_file(path, monkeypatch, robot_params):
    params_file, _ = robot_params
    given = {'params_file': str(params_file), 'policy_backend': 'openai',
             'policy_url': 'http://other:9000', 'action_space': 'openvla',
             'use_sim_time': 'false'}
    objects = _load(path, monkeypatch, given=given)
    effective = effective_parameters(_controller_node(objects).kwargs['parameters'])
    assert effective['policy.backend'] == 'openai'
    assert effective['policy.url'] == 'http://other:9000'
    assert effective['action_space'] == 'openvla'
    assert effective['use_sim_time'] is False
    assert effective['policy.model_path'] == '/opt/models/mine'  # not given: the file's


@pytest.mark.parametrize('path', [CONTROLLER_LAUNCH, SERVO_LAUNCH], ids=lambda p: p.name)
def test_without_arguments_the_shipped_file_decides(path, monkeypatch):
    objects = _load(path, monkeypatch)
    effective = effective_parameters(_controller_node(objects).kwargs['parameters'])
    shipped = effective_parameters([str(ROOT / 'config' / 'rt2_controller.yaml')])
    if path == SERVO_LAUNCH:
        assert effective.pop('output.mode') == 'twist'  # what the servo launch is for
        shipped.pop('output.mode')
    assert effective == shipped  # the same action space (rt2) in both launch files


def test_servo_launch_remaps_to_servo_and_documents_the_command_type(monkeypatch):
    objects = _load(SERVO_LAUNCH, monkeypatch)
    node = _controller_node(objects)
    remaps = dict(node.kwargs['remappings'])
    assert remaps['servo/delta_twist_cmds'] == '/servo_node/delta_twist_cmds'
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


@pytest.mark.parametrize('path', [CONTROLLER_LAUNCH, SERVO_LAUNCH, DEMO_LAUNCH],
                         ids=lambda p: p.name)
def test_rviz_true_starts_rviz2_on_the_namespaces_topics(path, monkeypatch):
    def rviz_nodes(objects):
        return [o for o in objects if _kind(o) == 'Node' and o.kwargs['executable'] == 'rviz2']

    assert not rviz_nodes(_load(path, monkeypatch))  # rviz:=false by default
    (rviz,) = rviz_nodes(_load(path, monkeypatch, given={'rviz': 'true', 'namespace': 'robot7'}))
    assert rviz.kwargs['package'] == 'rviz2' and rviz.kwargs['arguments'][0] == '-d'
    config = Path(rviz.kwargs['arguments'][1])
    text = config.read_text()
    config.unlink()
    layout = yaml.safe_load(text)
    topics = {d['Name']: d['Topic']['Value'] for d in layout['Visualization Manager']['Displays']
              if 'Topic' in d}
    assert topics == {'rt2 command': '/robot7/rt2_controller/markers',
                      'end effector': '/robot7/ee_pose',
                      'rt2 annotated image': '/robot7/rt2_controller/annotated_image'}


def test_rviz_topics_follow_any_namespace():
    template = (ROOT / 'config' / 'rt2.rviz').read_text()
    assert rviz_config_text('/rt2', template) == template
    cases = (('', ''), ('/', ''), ('a/b/', '/a/b'), ('/fleet/arm_2', '/fleet/arm_2'))
    for namespace, prefix in cases:
        text = rviz_config_text(namespace, template)
        assert f'Value: {prefix}/rt2_controller/markers' in text
        assert 'Value: /rt2/' not in text

"""
Build rt2_controller's parameter list for the launch files, without the launch package.

ROS applies a node's parameter sources in order, the later winning. A launch argument that is
always passed after params_file (with a non-empty default) silently replaces that file's value,
so `params_file:=my_robot.yaml` would lose the robot's backend, URL and action space. Here a
launch argument overrides the file only when the user gave it (its value is not empty): the
launch files declare these arguments with an empty default and call `controller_parameters`
from an OpaqueFunction with the performed values. Being pure, this is what the tests check.
"""
from typing import Dict, List, Mapping, Optional, Tuple, Union

# (launch argument, controller parameter, type) for the arguments that may override params_file.
OVERRIDABLE: Tuple[Tuple[str, str, type], ...] = (
    ('policy_backend', 'policy.backend', str),
    ('policy_url', 'policy.url', str),
    ('model_path', 'policy.model_path', str),
    ('action_space', 'action_space', str),
    ('frame_id', 'output.frame_id', str),
    ('use_sim_time', 'use_sim_time', bool),
)
ARGUMENT_TO_PARAMETER = {argument: (parameter, kind) for argument, parameter, kind in OVERRIDABLE}
SHIPPED_PARAMS = ('config', 'rt2_controller.yaml')
# (name, default, description) of the launch arguments every controller launch file declares.
CONTROLLER_ARGUMENTS: Tuple[Tuple[str, str, str], ...] = (
    ('params_file', '', 'Parameter file for rt2_controller (empty: the shipped '
                        'config/rt2_controller.yaml)'),
    ('policy_backend', '', 'Overrides params_file when given: openvla_http, openai, openpi, '
                           'local, expert or module:Class'),
    ('policy_url', '', 'Overrides params_file when given: URL of the policy server'),
    ('action_space', '', 'Overrides params_file when given: action space preset or YAML path'),
    ('use_sim_time', '', 'Overrides params_file when given: true to use /clock'),
)

ParameterSource = Union[str, Dict[str, object]]


def _convert(argument: str, text: str, kind: type) -> object:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered not in ('true', 'false'):
            raise ValueError(f'launch argument {argument}:={text} must be true or false')
        return lowered == 'true'
    return text


def given_overrides(arguments: Mapping[str, str]) -> Dict[str, object]:
    """Return the controller parameters set by the launch arguments the user gave (non-empty)."""
    overrides: Dict[str, object] = {}
    for argument, text in arguments.items():
        if argument not in ARGUMENT_TO_PARAMETER or text is None or str(text) == '':
            continue
        parameter, kind = ARGUMENT_TO_PARAMETER[argument]
        overrides[parameter] = _convert(argument, str(text), kind)
    return overrides


def shipped_params_file() -> str:
    """Return the path of the shipped config/rt2_controller.yaml (source, colcon or pip)."""
    from rt2_ros.resources import find_data
    return str(find_data(*SHIPPED_PARAMS))


def controller_parameters(arguments: Mapping[str, str],
                          preset: Optional[Mapping[str, object]] = None,
                          fixed: Optional[Mapping[str, object]] = None) -> List[ParameterSource]:
    """
    Return the `parameters=` list of rt2_controller for the performed launch arguments.

    Order, later winning: params_file (the shipped file when not given); `preset` - a launch
    file's own defaults, applied only when the user gave no params_file (the demo's bundled
    model); `fixed` - what the launch file is for (twist output for Servo), whatever the file
    says; then the launch arguments the user gave.
    """
    params_file = str(arguments.get('params_file') or '')
    sources: List[ParameterSource] = [params_file or shipped_params_file()]
    layer: Dict[str, object] = {}
    if not params_file and preset:
        layer.update(preset)
    layer.update(fixed or {})
    layer.update(given_overrides(arguments))
    if layer:
        sources.append(layer)
    return sources


def effective_parameters(sources: List[ParameterSource], node_name: str = 'rt2_controller'
                         ) -> Dict[str, object]:
    """
    Return the values a node named node_name ends up with from sources, applied in order.

    Files are read the way rclpy reads --params-file for one node: entries whose key is the
    node name, a wildcard (`/**`) or ends with `/<node_name>`.
    """
    import yaml

    values: Dict[str, object] = {}
    for source in sources:
        if isinstance(source, dict):
            values.update(source)
            continue
        with open(source, encoding='utf-8') as stream:
            data = yaml.safe_load(stream) or {}
        for key, body in data.items():
            key = str(key)
            if key in (node_name, '/**') or key.endswith('/' + node_name):
                values.update((body or {}).get('ros__parameters', {}))
    return values


# -- rviz ---------------------------------------------------------------------------------------
SHIPPED_RVIZ = ('config', 'rt2.rviz')
RVIZ_TEMPLATE_NAMESPACE = '/rt2'  # the namespace config/rt2.rviz is written for


def wants(arguments: Mapping[str, str], name: str) -> bool:
    """Return whether a true/false launch argument is true (as launch's IfCondition reads it)."""
    return str(arguments.get(name, 'false')).strip().lower() in ('true', '1')


def rviz_config_text(namespace: str, template: str) -> str:
    """
    Return the rviz layout with every topic under the template's /rt2 moved to `namespace`.

    config/rt2.rviz names absolute topics (rviz has no notion of the robot's namespace); the
    launch files rewrite those for the namespace they start the controller in.
    """
    target = '/' + namespace.strip('/') if namespace.strip('/') else ''
    lines = []
    for line in template.splitlines(keepends=True):
        head, sep, value = line.partition('Value: ')
        if sep and not head.strip() and value.startswith(RVIZ_TEMPLATE_NAMESPACE + '/'):
            value = target + value[len(RVIZ_TEMPLATE_NAMESPACE):]
        lines.append(head + sep + value)
    return ''.join(lines)


def rviz_nodes(arguments: Mapping[str, str]) -> List[Dict[str, object]]:
    """
    Return the launch_ros Node arguments of rviz2 for rviz:=true (none when it is false).

    The layout for the namespace is written to a fresh file under the temporary directory.
    """
    if not wants(arguments, 'rviz'):
        return []
    import tempfile

    from rt2_ros.resources import find_data
    template = find_data(*SHIPPED_RVIZ).read_text(encoding='utf-8')
    text = rviz_config_text(str(arguments.get('namespace', '')), template)
    handle, path = tempfile.mkstemp(prefix='rt2_', suffix='.rviz')
    with open(handle, 'w', encoding='utf-8') as stream:
        stream.write(text)
    return [{'package': 'rviz2', 'executable': 'rviz2', 'name': 'rviz2', 'output': 'screen',
             'arguments': ['-d', path]}]

"""
The closed-loop demo on a ROS 2 install: the tabletop simulator driven by rt2_controller.

    ros2 launch rt2_ros rt2_sim_demo.launch.py                       # the bundled demo model
    ros2 launch rt2_ros rt2_sim_demo.launch.py family:=place_on seed:=3
    ros2 launch rt2_ros rt2_sim_demo.launch.py policy_backend:=openvla_http \
        policy_url:=http://gpu-box:8000 action_space:=openvla

rt2_sim starts the episode given by split / family / seed and publishes its instruction;
rt2_controller (enabled: the simulated arm moves) runs the policy on the camera through its
safety stage. Next episode: `ros2 param set /rt2_demo/rt2_sim seed 4` and
`ros2 service call /rt2_demo/rt2_sim/reset std_srvs/srv/Trigger`. Watch
/rt2_demo/rt2_controller/annotated_image (rqt_image_view or rviz) and
/rt2_demo/rt2_sim/success. The default model is the bundled demo model installed under
share/rt2_ros/models (an absolute path, as policy.model_path needs); its own action_space.yaml
fixes the action space and decision period. Those demo defaults apply when no params_file is
given; with params_file:=..., that file's values count and an argument overrides them only when
given (rt2_ros.launch_params). `rt2 demo` does the same in one process, without a
ROS install, and writes a video and plots.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import LifecycleNode, Node
from rt2_ros.launch_params import controller_parameters, rviz_nodes
from rt2_ros.models.bundled import BUNDLED_MODEL_NAME
from rt2_ros.resources import find_data
from rt2_ros.sim.limits import SIM_PROPRIOCEPTION_PARAMS

ARGUMENTS = (
    ('namespace', 'rt2_demo', 'Namespace of the simulated robot and its controller'),
    ('params_file', '', 'Parameter file for rt2_controller (empty: the shipped '
                        'config/rt2_controller.yaml with the demo model)'),
    ('policy_backend', '', 'Overrides the demo model / params_file when given: local, '
                           'openvla_http, openai or openpi'),
    ('policy_url', '', 'Overrides params_file when given: URL of the policy server'),
    ('model_path', '', 'Overrides params_file when given: checkpoint directory of the local '
                       'backend (absolute; default: the bundled demo model)'),
    ('action_space', '', 'Overrides params_file when given: action space preset or YAML '
                         '(default: the action space of the bundled model)'),
    ('use_sim_time', 'false', 'Use /clock'),
    ('split', 'seen', 'task split: one_block, two_blocks, seen, unseen_objects, '
                      'unseen_phrasing, reasoning, train'),
    ('family', 'pick', 'task family: pick, place_on, move_to, push_next_to (empty: drawn)'),
    ('seed', '0', 'episode seed'),
    ('variation', 'none', 'scene appearance variation: none, mild, strong'),
    ('rviz', 'false', 'true: also start rviz2 with config/rt2.rviz moved to this namespace'),
)
# A simulator: let the arm move, and read its gripper joint, whatever params_file says.
FIXED = {'enabled_on_start': True, **SIM_PROPRIOCEPTION_PARAMS}


def demo_preset() -> dict:
    """Return the demo's defaults (the bundled model), used when no params_file is given."""
    model_dir = find_data('models', BUNDLED_MODEL_NAME)
    return {'policy.backend': 'local', 'policy.model_path': str(model_dir),
            'action_space': str(model_dir / 'action_space.yaml')}


def _nodes(context) -> list:
    arguments = dict(context.launch_configurations)
    namespace = arguments['namespace']
    sim_time = arguments['use_sim_time'].strip().lower() == 'true'
    arguments['use_sim_time'] = 'true' if sim_time else 'false'
    sim = Node(
        package='rt2_ros', executable='rt2_sim', name='rt2_sim', namespace=namespace,
        output='screen',
        parameters=[{
            'split': arguments['split'],
            'family': arguments['family'],
            'seed': int(arguments['seed']),
            'variation': arguments['variation'],
            'camera_rate_hz': 10.0,
            'use_sim_time': sim_time,
        }])
    controller = LifecycleNode(
        package='rt2_ros', executable='rt2_controller', name='rt2_controller',
        namespace=namespace, output='screen', emulate_tty=True,
        parameters=controller_parameters(
            arguments, preset=None if arguments['params_file'] else demo_preset(), fixed=FIXED))
    return [sim, controller] + [Node(**rviz) for rviz in rviz_nodes(arguments)]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])

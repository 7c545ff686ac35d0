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
fixes the action space and decision period. `rt2 demo` does the same in one process, without a
ROS install, and writes a video and plots.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from rt2_ros.models.bundled import BUNDLED_MODEL_NAME

SIM_ARGUMENTS = (
    ('split', 'seen', 'task split: train, seen, unseen_objects, unseen_phrasing, reasoning'),
    ('family', 'pick', 'task family: pick, place_on, move_to, push_next_to (empty: drawn)'),
    ('seed', '0', 'episode seed'),
    ('variation', 'none', 'scene appearance variation: none, mild, strong'),
)


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('rt2_ros')
    model_dir = PathJoinSubstitution([share, 'models', BUNDLED_MODEL_NAME])
    arguments = [
        DeclareLaunchArgument('namespace', default_value='rt2_demo',
                              description='Namespace of the simulated robot and its controller'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([share, 'config', 'rt2_controller.yaml']),
            description='Parameter file for rt2_controller (the arguments below override it)'),
        DeclareLaunchArgument('policy_backend', default_value='local',
                              description='local (a checkpoint in the controller process), '
                              'openvla_http, openai or openpi'),
        DeclareLaunchArgument('policy_url', default_value='http://127.0.0.1:8000',
                              description='URL of the policy server (remote backends)'),
        DeclareLaunchArgument('model_path', default_value=model_dir,
                              description='Checkpoint directory for the local backend '
                              '(absolute; default: the bundled demo model)'),
        DeclareLaunchArgument(
            'action_space',
            default_value=PathJoinSubstitution([model_dir, 'action_space.yaml']),
            description="Action space preset or YAML (default: the bundled model's own)"),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock'),
    ] + [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in SIM_ARGUMENTS]
    namespace = LaunchConfiguration('namespace')
    sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    sim = Node(
        package='rt2_ros', executable='rt2_sim', name='rt2_sim', namespace=namespace,
        output='screen',
        parameters=[{
            'split': LaunchConfiguration('split'),
            'family': LaunchConfiguration('family'),
            'seed': ParameterValue(LaunchConfiguration('seed'), value_type=int),
            'variation': LaunchConfiguration('variation'),
            'camera_rate_hz': 10.0,
            'use_sim_time': sim_time,
        }])
    controller = LifecycleNode(
        package='rt2_ros', executable='rt2_controller', name='rt2_controller',
        namespace=namespace, output='screen', emulate_tty=True,
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'policy.backend': LaunchConfiguration('policy_backend'),
                'policy.url': LaunchConfiguration('policy_url'),
                'policy.model_path': LaunchConfiguration('model_path'),
                'action_space': LaunchConfiguration('action_space'),
                'enabled_on_start': True,  # a simulator: let the arm move
                'use_sim_time': sim_time,
            },
        ])
    return LaunchDescription(arguments + [sim, controller])

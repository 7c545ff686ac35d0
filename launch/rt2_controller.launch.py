"""
Launch rt2_controller for one robot.

    ros2 launch rt2_ros rt2_controller.launch.py namespace:=rt2 \
        policy_backend:=openvla_http policy_url:=http://gpu-box:8000 action_space:=openvla

The node is a lifecycle node that configures and activates itself (autostart) and starts in dry
run; enable actuation with `ros2 service call /<namespace>/rt2_controller/enable
std_srvs/srv/SetBool "{data: true}"`. Parameters come from params_file (the shipped
config/rt2_controller.yaml by default); the arguments below override it.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution(
        [FindPackageShare('rt2_ros'), 'config', 'rt2_controller.yaml'])
    arguments = [
        DeclareLaunchArgument('namespace', default_value='rt2',
                              description='Namespace of the robot (topics are relative to it)'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Parameter file for rt2_controller'),
        DeclareLaunchArgument('policy_backend', default_value='openvla_http',
                              description='openvla_http, openai, openpi or local'),
        DeclareLaunchArgument('policy_url', default_value='http://127.0.0.1:8000',
                              description='URL of the policy server'),
        DeclareLaunchArgument('action_space', default_value='rt2',
                              description='Action space preset name or YAML path'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock (simulation or bag playback)'),
    ]
    controller = LifecycleNode(
        package='rt2_ros',
        executable='rt2_controller',
        name='rt2_controller',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'policy.backend': LaunchConfiguration('policy_backend'),
                'policy.url': LaunchConfiguration('policy_url'),
                'action_space': LaunchConfiguration('action_space'),
                'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                               value_type=bool),
            },
        ],
    )
    return LaunchDescription(arguments + [controller])

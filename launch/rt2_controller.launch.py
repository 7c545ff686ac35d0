"""
Launch rt2_controller for one robot.

    ros2 launch rt2_ros rt2_controller.launch.py namespace:=rt2 params_file:=my_robot.yaml
    ros2 launch rt2_ros rt2_controller.launch.py \
        policy_backend:=openvla_http policy_url:=http://gpu-box:8000 action_space:=openvla

The node is a lifecycle node that configures and activates itself (autostart) and starts in dry
run; enable actuation with `ros2 service call /<namespace>/rt2_controller/enable
std_srvs/srv/SetBool "{data: true}"`. Parameters come from params_file (the shipped
config/rt2_controller.yaml by default); an argument below overrides that file only when given
(rt2_ros.launch_params). rviz:=true also starts rviz2 on this namespace's topics.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import LifecycleNode, Node
from rt2_ros.launch_params import CONTROLLER_ARGUMENTS, controller_parameters, rviz_nodes

ARGUMENTS = (
    ('namespace', 'rt2', 'Namespace of the robot (topics are relative to it)'),
    *CONTROLLER_ARGUMENTS,
    ('rviz', 'false', 'true: also start rviz2 with config/rt2.rviz moved to this namespace'),
)


def _nodes(context) -> list:
    arguments = dict(context.launch_configurations)
    namespace = arguments.get('namespace', '')
    nodes = [LifecycleNode(
        package='rt2_ros', executable='rt2_controller', name='rt2_controller',
        namespace=namespace, output='screen', emulate_tty=True,
        parameters=controller_parameters(arguments))]
    return nodes + [Node(**rviz) for rviz in rviz_nodes(arguments)]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])

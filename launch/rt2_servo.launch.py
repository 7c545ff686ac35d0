"""
Launch rt2_controller in front of a MoveIt Servo robot.

    ros2 launch rt2_ros rt2_servo.launch.py policy_url:=http://gpu-box:8000 \
        servo_node:=/servo_node gripper_topic:=/gripper_controller/commands

What differs from rt2_controller.launch.py:
- servo/delta_twist_cmds is remapped to <servo_node>/delta_twist_cmds, where Servo listens, and
  gripper/commands to the gripper's forward_command_controller.
- Servo must be told to accept twists, and that call differs by distro. Jazzy and later:
      ros2 service call /servo_node/switch_command_type moveit_msgs/srv/ServoCommandType \
          "{command_type: 1}"
  (TWIST = 1); Humble: ros2 service call /servo_node/start_servo std_srvs/srv/Trigger {}.
  With switch_command_type:=true this file makes the Jazzy call once at start-up.
- Set Servo's command_in_type to speed_units (rt2_controller sends m/s and rad/s) and make
  output.frame_id (here base_link) Servo's robot_link_command_frame.
- Parameters come from params_file (the shipped config/rt2_controller.yaml by default); an
  argument below overrides that file only when given. output.mode is always twist here.
- rt2_controller needs the end-effector pose on ee_pose (geometry_msgs/PoseStamped in
  base_link) for its workspace box; publish it from TF with a small relay if your robot does
  not.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from rt2_ros.launch_params import CONTROLLER_ARGUMENTS, controller_parameters, rviz_nodes

ARGUMENTS = (
    ('namespace', 'rt2', 'Namespace of rt2_controller'),
    *CONTROLLER_ARGUMENTS,
    ('frame_id', '', "Overrides params_file when given: Servo's robot_link_command_frame"),
    ('servo_node', '/servo_node', 'Fully qualified name of the MoveIt Servo node'),
    ('gripper_topic', '/gripper_controller/commands',
     'forward_command_controller topic of the gripper'),
    ('switch_command_type', 'false',
     'Call <servo_node>/switch_command_type (TWIST) once (Jazzy and later)'),
    ('rviz', 'false', 'true: also start rviz2 with config/rt2.rviz moved to this namespace'),
)
# What this launch file is for, whatever params_file says.
FIXED = {'output.mode': 'twist'}


def _controller(context) -> list:
    arguments = dict(context.launch_configurations)
    servo_node = arguments['servo_node']
    return [LifecycleNode(
        package='rt2_ros', executable='rt2_controller', name='rt2_controller',
        namespace=arguments['namespace'], output='screen', emulate_tty=True,
        parameters=controller_parameters(arguments, fixed=FIXED),
        remappings=[
            ('servo/delta_twist_cmds', servo_node + '/delta_twist_cmds'),
            ('gripper/commands', arguments['gripper_topic']),
        ])] + [Node(**rviz) for rviz in rviz_nodes(arguments)]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    switch_to_twist = ExecuteProcess(
        cmd=['ros2', 'service', 'call', [LaunchConfiguration('servo_node'),
                                         '/switch_command_type'],
             'moveit_msgs/srv/ServoCommandType', '{command_type: 1}'],
        output='screen',
        condition=IfCondition(LaunchConfiguration('switch_command_type')),
    )
    return LaunchDescription(declared + [OpaqueFunction(function=_controller), switch_to_twist])

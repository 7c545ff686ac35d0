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
- rt2_controller needs the end-effector pose on ee_pose (geometry_msgs/PoseStamped in
  base_link) for its workspace box; publish it from TF with a small relay if your robot does
  not.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution(
        [FindPackageShare('rt2_ros'), 'config', 'rt2_controller.yaml'])
    servo_node = LaunchConfiguration('servo_node')
    arguments = [
        DeclareLaunchArgument('namespace', default_value='rt2',
                              description='Namespace of rt2_controller'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Parameter file for rt2_controller'),
        DeclareLaunchArgument('policy_backend', default_value='openvla_http',
                              description='openvla_http, openai, openpi or local'),
        DeclareLaunchArgument('policy_url', default_value='http://127.0.0.1:8000',
                              description='URL of the policy server'),
        DeclareLaunchArgument('action_space', default_value='openvla',
                              description='Action space preset name or YAML path'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='Use /clock (simulation or bag playback)'),
        DeclareLaunchArgument('servo_node', default_value='/servo_node',
                              description='Fully qualified name of the MoveIt Servo node'),
        DeclareLaunchArgument('gripper_topic', default_value='/gripper_controller/commands',
                              description='forward_command_controller topic of the gripper'),
        DeclareLaunchArgument('frame_id', default_value='base_link',
                              description="Servo's robot_link_command_frame"),
        DeclareLaunchArgument('switch_command_type', default_value='false',
                              description='Call <servo_node>/switch_command_type (TWIST) once '
                                          '(Jazzy and later)'),
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
                'output.mode': 'twist',
                'output.frame_id': LaunchConfiguration('frame_id'),
                'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                               value_type=bool),
            },
        ],
        remappings=[
            ('servo/delta_twist_cmds', [servo_node, '/delta_twist_cmds']),
            ('gripper/commands', LaunchConfiguration('gripper_topic')),
        ],
    )
    switch_to_twist = ExecuteProcess(
        cmd=['ros2', 'service', 'call', [servo_node, '/switch_command_type'],
             'moveit_msgs/srv/ServoCommandType', '{command_type: 1}'],
        output='screen',
        condition=IfCondition(LaunchConfiguration('switch_command_type')),
    )
    return LaunchDescription(arguments + [controller, switch_to_twist])

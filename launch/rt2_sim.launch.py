"""
Start the tabletop simulator (and optionally the scripted expert driving it).

    ros2 launch rt2_ros rt2_sim.launch.py split:=reasoning seed:=3
    ros2 launch rt2_ros rt2_sim.launch.py expert:=true namespace:=/robot1

The closed-loop demo with the controller and the demo model is launch/rt2_sim_demo.launch.py.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

ARGUMENTS = (
    ('namespace', '', 'namespace of the sim (and expert) nodes'),
    ('split', 'train', 'task split: train, seen, unseen_objects, unseen_phrasing, reasoning'),
    ('family', '', 'task family (empty: drawn from the split)'),
    ('seed', '0', 'episode seed'),
    ('variation', 'none', 'scene appearance variation: none, mild, strong'),
    ('camera_rate_hz', '30.0', 'camera frame rate'),
    ('use_sim_time', 'false', 'follow /clock'),
    ('expert', 'false', 'also start the scripted expert (rt2_sim_expert)'),
)


def generate_launch_description() -> LaunchDescription:
    config = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    sim_time = ParameterValue(config['use_sim_time'], value_type=bool)
    sim = Node(
        package='rt2_ros', executable='rt2_sim', name='rt2_sim',
        namespace=config['namespace'], output='screen',
        parameters=[{
            'split': config['split'],
            'family': config['family'],
            'seed': ParameterValue(config['seed'], value_type=int),
            'variation': config['variation'],
            'camera_rate_hz': ParameterValue(config['camera_rate_hz'], value_type=float),
            'use_sim_time': sim_time,
        }])
    expert = Node(
        package='rt2_ros', executable='rt2_sim_expert', name='rt2_sim_expert',
        namespace=config['namespace'], output='screen',
        parameters=[{'use_sim_time': sim_time}],
        condition=IfCondition(config['expert']))
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    return LaunchDescription(declared + [sim, expert])

"""
Rosbag2 tools without rosbag2_py: read, write, evaluate and export bags (pure Python).

Built on `rosbags`, so a GPU box or a CI runner without a ROS install can read the robot's
recordings. Only the `*_node.py` modules here import rclpy (play, record, replay-test).
"""

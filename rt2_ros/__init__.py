"""
rt2_ros: RT-2 style vision-language-action control for ROS 2.

The pure-Python parts (action codecs, policy clients, safety stage, simulator) never import rclpy,
so they can be used and tested without a ROS installation; only the node modules need it.
"""

__version__ = '0.1.0'

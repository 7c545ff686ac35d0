"""The ROS layer's shared pieces: message conversions, actuator outputs, rviz and diagnostics."""

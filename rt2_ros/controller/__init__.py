"""
rt2_controller: the pure decision logic and the ROS node that wraps it.

Pure modules (no rclpy): safety (the only gate to actuators), action_queue (steps on the control
clock, chunk merging, stale results), state (the state machine), core (everything the node
decides), mapping and rotation (action -> velocities), images (camera buffers -> RGB),
inference (worker threads), params (the parameter table), stats, annotate. node.py is the
lifecycle node; rt2_ros/ros/ holds its message helpers.
"""

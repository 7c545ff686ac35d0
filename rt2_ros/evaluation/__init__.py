"""Closed-loop evaluation of policies in the simulator: statistics, fast pure runs, ROS runs."""

"""
`rt2 demo`: the simulator, the controller and a policy in one process, with a report.

Pure parts (episode plan, results, video, plots) import no rclpy; the composition lives in
demo_node.py.
"""

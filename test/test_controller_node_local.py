"""
rt2_controller with a real (tiny, random) transformers VLA in the node: pixels to commands.

The one end-to-end check with a model rather than a scripted server: the local backend loads a
checkpoint built from config, decodes constrained action tokens, and the node turns them into
safe commands. A random model's actions are meaningless but always valid.
"""
from geometry_msgs.msg import TwistStamped
import pytest
from std_msgs.msg import Float64MultiArray
from support.ros_harness import NodeProcess, RosHarness
from tiny_models import tiny_checkpoint

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_local_tiny_model_drives_safe_commands():
    checkpoint = tiny_checkpoint('rt2')
    params = {'policy.backend': 'local', 'policy.model_path': str(checkpoint),
              'policy.device': 'cpu', 'policy.timeout_s': 30.0, 'action_space': 'rt2',
              'limits.max_linear_speed': 0.05, 'limits.max_angular_speed': 0.2,
              'watchdog.image_timeout_s': 2.0}
    with NodeProcess(params=params) as node, RosHarness() as h:
        node.wait_for_log('active', timeout=120)
        actions = h.record('~/action', Float64MultiArray)
        twists = h.record('servo/delta_twist_cmds', TwistStamped)
        h.start_camera(rate_hz=15)
        h.publish_instruction('pick up the red block')
        decision = actions.wait_for(timeout=60).msg
        assert decision.layout.dim[1].label.startswith('terminate,dx')
        assert len(decision.data) == 8
        assert h.call_enable(True).success
        items = twists.wait_count(50, timeout=30)
        for item in items:
            t = item.msg.twist
            assert (t.linear.x ** 2 + t.linear.y ** 2 + t.linear.z ** 2) ** 0.5 <= 0.05 + 1e-9
            assert (t.angular.x ** 2 + t.angular.y ** 2 + t.angular.z ** 2) ** 0.5 <= 0.2 + 1e-9
        h.stop_camera()

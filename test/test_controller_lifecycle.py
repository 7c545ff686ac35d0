"""
rt2_controller as a managed node: actuators only while active, a failed configure is survivable.

The node is enabled from the start and sees camera frames, an instruction and a policy that
always says "move" throughout, so in every state only the lifecycle keeps the arm still. Each
inactive state is watched for a whole second; each deactivation must finish its stop sequence
before the transition returns (every command's own stamp precedes the reply).
"""
from geometry_msgs.msg import TwistStamped
import pytest
from std_msgs.msg import Float64MultiArray
from support.ros_harness import NodeProcess, RosHarness
from support.scripted_policy_server import action, ScriptedPolicyServer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MOVE = [1, 0.02, 0.0, 0.0, 0.0, 0.0, 0.05, 1.0]
WATCH_S = 1.0  # how long each non-active state is watched for actuator traffic


def _stamp(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _moving(msg):
    return abs(msg.twist.linear.x) > 0.0


class Actuators:
    """Recorders of every actuator topic the node has in twist mode with a gripper."""

    def __init__(self, h):
        self.twists = h.record('servo/delta_twist_cmds', TwistStamped)
        self.gripper = h.record('gripper/commands', Float64MultiArray)

    def marks(self):
        return self.twists.mark(), self.gripper.mark()

    def assert_silent(self, what):
        start = self.marks()
        assert self.twists.quiet_for(WATCH_S, since=start[0]), f'twist while {what}'
        assert self.gripper.quiet_for(0.0, since=start[1]), f'gripper command while {what}'

    def deactivation_is_complete(self, h, label):
        """
        Run a leaving-active transition; nothing the node sent may postdate its reply.

        Twists sent before the reply may still arrive after it (another writer than the
        service's), so the window judges them by their own stamps, not by arrival.
        """
        start = self.twists.mark()
        assert h.lifecycle_transition(label)
        replied = h.now()
        with pytest.raises(TimeoutError):  # watch the whole window for a twist sent later
            self.twists.wait_for(lambda m: _stamp(m) > replied, since=start, timeout=WATCH_S)
        sent = self.twists.items(start)
        assert sent and not _moving(sent[-1].msg), 'the arm was not stopped'


def test_actuators_are_silent_in_every_state_but_active():
    namespace = '/rt2_managed'
    params = {'autostart': False, 'enabled_on_start': True, 'action_space': 'rt2',
              'control_rate_hz': 50.0}
    with ScriptedPolicyServer() as server:
        server.set_default(action(MOVE))
        params['policy.url'] = server.url
        with NodeProcess(params=params, namespace=namespace) as node, \
                RosHarness(namespace=namespace) as h:
            actuators = Actuators(h)
            assert h.lifecycle_state(timeout=30) == 'unconfigured'
            h.start_camera(rate_hz=30)
            h.publish_instruction('push the block to the left')
            actuators.assert_silent('unconfigured')

            assert h.lifecycle_transition('configure')
            actuators.assert_silent('inactive after configure')

            assert h.lifecycle_transition('activate')
            actuators.twists.wait_for(_moving, since=actuators.twists.mark(), timeout=20)
            actuators.deactivation_is_complete(h, 'deactivate')
            actuators.assert_silent('inactive after deactivate')

            assert h.lifecycle_transition('activate')
            h.publish_instruction('push the block to the right')
            actuators.twists.wait_for(_moving, since=actuators.twists.mark(), timeout=20)
            actuators.deactivation_is_complete(h, 'deactivate')
            assert h.lifecycle_transition('cleanup')
            actuators.assert_silent('unconfigured after cleanup')

            assert h.lifecycle_transition('configure')
            assert h.lifecycle_transition('activate')
            h.publish_instruction('push the block forward')
            actuators.twists.wait_for(_moving, since=actuators.twists.mark(), timeout=20)
            actuators.deactivation_is_complete(h, 'shutdown_active')
            assert node.wait_exit(20) == 0
            h.stop_camera()
            assert 'Traceback' not in node.log()


def test_a_failed_configure_leaves_the_node_unconfigured_and_it_can_be_fixed():
    namespace = '/rt2_bad_config'
    params = {'policy.url': 'http://127.0.0.1:9', 'action_space': '/no/such/action_space.yaml'}
    with NodeProcess(params=params, namespace=namespace) as node, \
            RosHarness(namespace=namespace) as h:
        log = node.wait_for_log('the node stays unconfigured', timeout=60)
        assert 'configure failed: ' in log and '/no/such/action_space.yaml' in log, log
        assert node.alive()
        assert h.lifecycle_state(timeout=30) == 'unconfigured'
        assert all(r.successful for r in h.set_parameters({'action_space': 'rt2'}))
        assert h.lifecycle_transition('configure')
        assert h.lifecycle_state() == 'inactive'
        assert h.lifecycle_transition('activate')
        assert 'Traceback' not in node.log()

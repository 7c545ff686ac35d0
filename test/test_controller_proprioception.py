"""
The gripper's measured opening reaches a policy whose prompt states it (proprioception).

A real controller process (openai backend, `rt2_gripper` prompt template, gripper joint read
from joint_states) against the scripted OpenAI-compatible server on loopback, over real DDS:
the prompt the server receives says what the joint says; without a fresh reading the node asks
nothing and halts on the policy error instead of guessing, and resumes once readings come back.
"""
import threading

import pytest
from std_msgs.msg import String
from support.ros_harness import NodeProcess, RosHarness
from support.scripted_policy_server import ScriptedPolicyServer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

JOINT = 'finger_joint'
OPEN, SHUT = 0.04, 0.0  # a parallel gripper's finger position in metres
POSE_TIMEOUT = 0.5


def _prompts(server, since: int = 0):
    return [e['prompt'] for e in server.requests()[since:]
            if e.get('protocol') == 'openai' and e.get('prompt')]


def _wait_for_prompt(server, recorder, text: str, since: int, timeout: float = 20.0) -> str:
    """Wait (on the node's decisions) until a prompt containing text reached the server."""
    for _ in range(int(timeout / 0.5)):
        found = [p for p in _prompts(server, since) if text in p]
        if found:
            return found[-1]
        try:
            recorder.wait_for(since=recorder.mark(), timeout=0.5)
        except TimeoutError:
            pass
    raise AssertionError(f'no prompt with {text!r} within {timeout} s; got '
                         f'{_prompts(server, since)[-3:]}')


def test_prompt_states_the_measured_gripper_and_nothing_is_asked_without_a_fresh_reading():
    params = {
        'policy.backend': 'openai', 'policy.prompt_template': 'rt2_gripper',
        'action_space': 'rt2', 'proprioception.gripper_joint': JOINT,
        'gripper.open_position': OPEN, 'gripper.closed_position': SHUT,
        'watchdog.pose_timeout_s': POSE_TIMEOUT, 'enabled_on_start': True,
        'inference.retry_interval_s': 0.2, 'halt.auto_resume': True,
    }
    with ScriptedPolicyServer() as server:
        params['policy.url'] = server.url
        with NodeProcess(params=params) as node, RosHarness() as h:
            node.wait_for_log('active', timeout=60)
            state = h.record_latched('~/state', String)
            h.start_camera(rate_hz=30)
            h.publish_instruction('pick up the red block')
            # No joint_states yet: the node cannot fill the prompt, so it halts on the policy
            # error and the server is never asked.
            halted = state.wait_for(lambda m: m.data.endswith(':policy_error'), timeout=30)
            assert 'halt' in halted.msg.data
            assert not _prompts(server)

            opening = {'value': 0.5 * OPEN}
            lock = threading.Lock()

            def joints():
                with lock:
                    return {'wheel_left_joint': 3.2, JOINT: opening['value']}

            h.start_joint_stream(joints, rate_hz=50)
            shut = _wait_for_prompt(server, state, 'the gripper is closed', 0)
            assert shut == ('Q: the gripper is closed. what action should the robot take to '
                            'pick up the red block? A:')
            mark = len(server.requests())
            with lock:
                opening['value'] = OPEN
            _wait_for_prompt(server, state, 'the gripper is open', mark)

            # The driver dies: once its last reading is older than the pose timeout, no prompt
            # claims a gripper state any more and the node halts again.
            h.stop_joint_stream()
            state_mark = state.mark()
            state.wait_for(lambda m: m.data.endswith(':policy_error'), since=state_mark,
                           timeout=10)
            # A reading from the future (a driver whose clock runs ahead) is no reading either.
            mark = len(server.requests())
            h.publish_joint_states({JOINT: OPEN}, stamp=h.now() + 10 * POSE_TIMEOUT)
            threading.Event().wait(1.0)  # an observation window: five retries at 0.2 s
            assert not any(m.data.startswith('running') for m in state.messages(state_mark))
            assert not _prompts(server, mark)

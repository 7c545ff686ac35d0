"""
Start rt2_sim episodes from another process: the ROS side of "reset to this task and seed".

rt2_sim takes the episode from its parameters (`split`, `family`, `seed`, `variation`) when its
`~/reset` (std_srvs/Trigger) is called - plain ROS interfaces, no generated service types. This
client does the two calls in order and returns the episode JSON the sim answers with. It needs
its node spun by an executor in another thread (it waits on futures, not on the executor).
"""
import json
import threading
from typing import Any, Dict, Optional

from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger


def call(client, request, timeout: float):
    """Call a service and wait for the answer (the client's node is spun elsewhere)."""
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f'service {client.srv_name} did not answer within {timeout} s')
    return future.result()


class SimEpisodeClient:
    """Set an rt2_sim's episode parameters and reset it."""

    def __init__(self, node: Node, sim_node: str = 'rt2_sim') -> None:
        self.reset_client = node.create_client(Trigger, f'{sim_node}/reset')
        self.params_client = node.create_client(SetParameters, f'{sim_node}/set_parameters')

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until the sim's services are up."""
        return (self.reset_client.wait_for_service(timeout_sec=timeout)
                and self.params_client.wait_for_service(timeout_sec=timeout))

    def start(self, seed: Optional[int] = None, split: Optional[str] = None,
              family: Optional[str] = None, variation: Optional[str] = None,
              timeout: float = 10.0) -> Dict[str, Any]:
        """
        Start an episode; arguments left None keep the sim's current parameter values.

        Returns the sim's episode JSON (episode number, instruction, task). Raises ValueError
        for a value the sim rejects (unknown split, ...) and RuntimeError if the reset fails.
        """
        values = {'seed': seed, 'split': split, 'family': family, 'variation': variation}
        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=value).to_parameter_msg()
                              for name, value in values.items() if value is not None]
        if request.parameters:
            answer = call(self.params_client, request, timeout)
            errors = [r.reason for r in answer.results if not r.successful]
            if errors:
                raise ValueError('; '.join(errors))
        reply = call(self.reset_client, Trigger.Request(), timeout)
        if not reply.success:
            raise RuntimeError(f'rt2_sim reset failed: {reply.message}')
        return json.loads(reply.message)

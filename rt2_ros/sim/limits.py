"""
The simulator's safety limits: one preset for every place a policy moves the simulated arm.

`rt2 eval-sim` (both the ROS lanes and `--fast`), `rt2 demo`, the expert's demonstrations and
DAgger rollouts all execute actions through the controller's safety stage with these values, so a
success rate measured in one of them says what the others will show.

- Linear speed 0.45 m/s: the rt2 space moves at most 5 cm per axis per step, and the expert
  saturates each axis, not the norm, so its fastest step is sqrt(3) x 5 cm in the sims' 0.2 s
  decision period (0.433 m/s). Every expert action passes unclipped (tested).
- Angular speed 1.5 rad/s; the expert keeps the hand upright.
- The workspace box is the simulated arm's reach (SimConfig), which also exercises the clamp,
  with its floor 2 cm under the table top: the arm itself stops the fingertips on the table,
  and a floor at the table would slow every grasp's last centimetres (the clamp extrapolates
  the pose's age, tens of milliseconds over ROS).

SIM_PROPRIOCEPTION_PARAMS tells the controller which joint_states entry is the gripper.
SIM_DECISION_PARAMS is the other half of executing as the data was recorded: observe, then act.
The next decision is asked for when the previous step has been executed, so each decision sees
the result of the last (pipelined requests would show it mid-motion frames, which neither the
expert's demonstrations nor the pure rollouts ever contain).
"""
from typing import Any, Dict

from rt2_ros.controller.params import defaults, safety_limits
from rt2_ros.controller.safety import SafetyLimits

SIM_REACH_MIN = [0.10, -0.40, -0.02]
SIM_REACH_MAX = [0.75, 0.40, 0.40]
SIM_LIMIT_PARAMS: Dict[str, Any] = {
    'limits.max_linear_speed': 0.45,
    'limits.max_angular_speed': 1.5,
    'limits.workspace_min': SIM_REACH_MIN,
    'limits.workspace_max': SIM_REACH_MAX,
}
# The simulated gripper in joint_states: its position is the opening, 0 shut .. 1 fully open (the
# units of its gripper commands, so gripper.open_position / closed_position keep their defaults).
# Every controller driving the sim reads it, for models whose prompt states the gripper.
SIM_GRIPPER_JOINT = 'gripper_joint'
SIM_PROPRIOCEPTION_PARAMS: Dict[str, Any] = {'proprioception.gripper_joint': SIM_GRIPPER_JOINT}
SIM_DECISION_PARAMS: Dict[str, Any] = {
    'inference.request_threshold': 0.0,
    'inference.latency_aware': False,
}


def sim_safety_limits(control_rate_hz: float = 50.0) -> SafetyLimits:
    """Return the preset as SafetyLimits, built as rt2_controller builds its own."""
    values = defaults()
    values.update(SIM_LIMIT_PARAMS)
    values['control_rate_hz'] = float(control_rate_hz)
    return safety_limits(values)

"""
Start the node processes of evaluation lanes: one `rt2_sim` + one `rt2_controller` each.

The controller gets its parameters from a params file like any deployment; `controller_params`
is the evaluation configuration and says why each value differs from the shipped defaults.
Pure module (subprocess only); the ROS side is rt2_ros.evaluation.ros_eval_node.
"""
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from rt2_ros.params_file import params_file_text
from rt2_ros.sim.limits import SIM_DECISION_PARAMS, SIM_LIMIT_PARAMS, SIM_PROPRIOCEPTION_PARAMS

EXECUTABLE_MODULES = {'rt2_controller': 'rt2_ros.controller.node', 'rt2_sim': 'rt2_ros.sim.node'}


def controller_params(policy: Dict[str, Any], decision_period_s: float) -> Dict[str, Any]:
    """
    Return controller parameters for closed-loop evaluation in rt2_sim.

    - decision_period_s: the period the policy was trained at (the sim's demos use 0.2 s).
    - limits and decision timing: the simulator's presets (rt2_ros.sim.limits), the same as
      every other rollout (observe, then act).
    - enabled_on_start: no operator to call ~/enable; viz off to spare the CPU.
    """
    params = {
        'action_space': 'rt2',
        'decision_period_s': float(decision_period_s),
        **SIM_LIMIT_PARAMS,
        **SIM_DECISION_PARAMS,
        **SIM_PROPRIOCEPTION_PARAMS,
        'enabled_on_start': True,
        'autostart': True,
        'viz.rate_hz': 0.0,
        'viz.annotated_image': False,
        'policy.timeout_s': 10.0,
        'watchdog.image_timeout_s': 2.0,
    }
    params.update(policy)
    return params


def sim_params(camera_rate_hz: float = 50.0) -> Dict[str, Any]:
    """rt2_sim parameters: a camera fast enough that the newest frame is < 20 ms old."""
    return {'camera_rate_hz': float(camera_rate_hz), 'split': 'seen', 'seed': 0}


def executable(name: str) -> List[str]:
    """Return the console script next to this Python, on PATH, or `python -m` its module."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, '-m', EXECUTABLE_MODULES[name]]


class NodeProcesses:
    """The processes of all lanes, with their logs; stopped with SIGINT (then SIGKILL)."""

    def __init__(self, log_dir: Optional[str] = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix='rt2_eval_') if log_dir is None else None
        self.dir = Path(log_dir or self._tmp.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.processes: List[subprocess.Popen] = []
        self.logs: List[Path] = []

    def start(self, name: str, namespace: str, params: Dict[str, Any],
              remaps: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        tag = f'{namespace.strip("/").replace("/", "_")}_{name}'
        params_file = self.dir / f'{tag}.yaml'
        params_file.write_text(params_file_text(name, params))
        command = executable(name) + ['--ros-args', '-r', f'__ns:={namespace}',
                                      '--params-file', str(params_file)]
        for source, target in (remaps or {}).items():
            command += ['-r', f'{source}:={target}']
        log = self.dir / f'{tag}.log'
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        with open(log, 'w') as handle:
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        self.processes.append(process)
        self.logs.append(log)
        return process

    def check_alive(self) -> None:
        """Raise RuntimeError with the log tail of a process that exited."""
        for process, log in zip(self.processes, self.logs):
            if process.poll() is not None:
                tail = log.read_text(errors='replace')[-2000:] if log.exists() else ''
                raise RuntimeError(f'{log.stem} exited with {process.returncode}:\n{tail}')

    def stop(self, timeout: float = 10.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()

"""
Closed-loop evaluation over ROS: rt2_sim + the real rt2_controller (safety stage included).

Each *lane* is a namespace with its own `rt2_sim` and `rt2_controller` processes, connected
through their default relative topics exactly as on a robot; several lanes run side by side.
This node plays the operator and the referee of every lane:

1. It sets the sim's `split` / `seed` and calls `rt2_sim/reset` (SimEpisodeClient).
2. It waits until the sim has published camera frames of the new episode (seen on the
   privileged `rt2_sim/state`), so the controller's newest image cannot be the old scene.
   The sim's own instruction output is remapped away (see `sim_command`) and this node
   publishes the instruction on the lane's `instruction` topic (latched), which starts the
   controller's episode - like an operator would.
3. The controller runs its policy and drives the sim through `servo/delta_twist_cmds` and
   `gripper/commands` after its safety stage. The episode ends when the controller reports
   `~/terminated`, after `max_steps` accepted decisions (`~/action`) plus one decision period,
   or at a wall-clock timeout.
4. Success is the sim's task predicate in the first state published after the end, the same
   rule as the pure `run_episode`. Then an empty instruction idles the controller.

Decision latency is measured from outside: with `inference.request_threshold: 0` the controller
asks for the next decision when the previous step has finished, so the time between two
accepted decisions minus the decision period is what a decision costs end to end (image
conversion, policy, reply handling, the wait for the next control tick). The controller's own
policy-latency percentiles from `/diagnostics` are reported too.
"""
from dataclasses import dataclass, field
import json
import os
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rt2_ros.sim.episode_client_node import SimEpisodeClient
from std_msgs.msg import Bool, Float64MultiArray, String

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
SIM_INSTRUCTION_TOPIC = 'rt2_sim/instruction'  # where lanes remap the sim's own instruction
FRESH_FRAMES = 2   # frames of the new episode to see before starting the controller


@dataclass
class EpisodeRecord:
    """What happened in one evaluated episode."""

    lane: str
    split: str
    seed: int
    family: str = ''
    referent: str = ''
    instruction: str = ''
    success: bool = False
    terminated: bool = False
    decisions: int = 0
    end: str = ''                 # terminated | max_steps | timeout | error
    wall_s: float = 0.0
    decision_intervals_s: List[float] = field(default_factory=list)
    controller_states: List[str] = field(default_factory=list)
    error: str = ''

    def to_dict(self) -> Dict[str, Any]:
        return {'lane': self.lane, 'split': self.split, 'seed': self.seed,
                'family': self.family, 'referent': self.referent,
                'instruction': self.instruction, 'success': self.success,
                'terminated': self.terminated, 'decisions': self.decisions, 'end': self.end,
                'wall_s': round(self.wall_s, 3), 'controller_states': self.controller_states,
                'error': self.error}


class _Signal:
    """A topic's recent values (absolute indices survive trimming) and a condition to wait on."""

    KEEP = 2000

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._items: List[Any] = []
        self._dropped = 0

    def add(self, item: Any) -> None:
        with self.cond:
            self._items.append(item)
            if len(self._items) > 2 * self.KEEP:
                self._dropped += len(self._items) - self.KEEP
                del self._items[:-self.KEEP]
            self.cond.notify_all()

    def count(self) -> int:
        """Return how many values arrived so far (an index for since=)."""
        with self.cond:
            return self._dropped + len(self._items)

    def since(self, index: int) -> List[Any]:
        with self.cond:
            return list(self._items[max(0, index - self._dropped):])

    def wait(self, predicate: Callable[[Any], bool], timeout: float,
             since: int = 0) -> Optional[Any]:
        """Return the first value from index `since` on that satisfies predicate, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            index = since
            while True:
                for item in self._items[max(0, index - self._dropped):]:
                    index += 1
                    if predicate(item):
                        return item
                index = max(index, self._dropped + len(self._items))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)


class EvalLane:
    """One sim + controller pair seen from this node."""

    def __init__(self, node: Node, namespace: str) -> None:
        ns = namespace.rstrip('/')
        self.namespace = ns or '/'
        self.node = node
        self.sim = SimEpisodeClient(node, f'{ns}/rt2_sim')
        self.instruction_pub = node.create_publisher(String, f'{ns}/instruction', LATCHED)
        self.actions = _Signal()
        self.terminated = _Signal()
        self.states = _Signal()
        self.controller_state = _Signal()
        node.create_subscription(Float64MultiArray, f'{ns}/rt2_controller/action',
                                 lambda m: self.actions.add(time.monotonic()), RELIABLE)
        node.create_subscription(Bool, f'{ns}/rt2_controller/terminated',
                                 lambda m: self.terminated.add((time.monotonic(), m.data)),
                                 LATCHED)
        node.create_subscription(String, f'{ns}/rt2_controller/state',
                                 lambda m: self.controller_state.add(m.data), LATCHED)
        node.create_subscription(String, f'{ns}/rt2_sim/state', self._on_state, RELIABLE)

    def _on_state(self, msg: String) -> None:
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        self.states.add((time.monotonic(), int(data.get('episode', -1)),
                         bool(data.get('success', False))))

    def wait_ready(self, timeout: float) -> None:
        """Wait for the sim's services and a running controller (its latched state)."""
        if not self.sim.wait_ready(timeout):
            raise TimeoutError(f'{self.namespace}: rt2_sim services did not appear')
        if self.controller_state.wait(lambda s: s.split(':')[0] in ('idle', 'running',
                                                                    'terminated'),
                                      timeout) is None:
            raise TimeoutError(f'{self.namespace}: rt2_controller did not become active')

    def run_episode(self, split: str, seed: int, max_steps: int, period_s: float,
                    timeout_s: float) -> EpisodeRecord:
        record = EpisodeRecord(self.namespace, split, int(seed))
        start = time.monotonic()
        try:
            info = self.sim.start(seed=int(seed), split=split, family='')
        except (TimeoutError, ValueError, RuntimeError) as exc:
            record.end, record.error = 'error', str(exc)
            return record
        episode = int(info['episode'])
        task = info.get('task', {})
        record.family, record.referent = task.get('family', ''), task.get('referent', '')
        record.instruction = info['instruction']
        seen = []
        fresh = self.states.wait(
            lambda s: s[1] == episode and (seen.append(s) or len(seen) >= FRESH_FRAMES), 10.0,
            since=max(0, self.states.count() - 50))
        if fresh is None:
            record.end, record.error = 'error', 'no camera frames of the new episode'
            return record
        actions_before = self.actions.count()
        term_before = self.terminated.count()
        states_before = self.controller_state.count()
        begun = time.monotonic()
        self.instruction_pub.publish(String(data=record.instruction))
        deadline = begun + timeout_s
        end_time = None
        while end_time is None:
            now = time.monotonic()
            if now > deadline:
                record.end = 'timeout'
                end_time = now
                break
            stop = [t for t, value in self.terminated.since(term_before) if value and t >= begun]
            if stop:
                record.end, record.terminated = 'terminated', True
                end_time = stop[0]
                break
            times = [t for t in self.actions.since(actions_before) if t >= begun]
            if len(times) >= max_steps:
                finish = times[max_steps - 1] + period_s
                if now >= finish:
                    record.end = 'max_steps'
                    end_time = finish
                    break
                wait = finish - now
            else:
                wait = 0.05
            # Wake on any new decision or terminate report, or when the last step is done.
            with self.actions.cond:
                self.actions.cond.wait(min(wait, 0.05))
        times = [t for t in self.actions.since(actions_before) if begun <= t <= end_time]
        record.decisions = min(len(times), max_steps)
        record.decision_intervals_s = [b - a for a, b in zip(times, times[1:])]
        record.controller_states = list(dict.fromkeys(self.controller_state.since(states_before)))
        after = self.states.wait(lambda s: s[1] == episode and s[0] > end_time, 5.0,
                                 since=max(0, self.states.count() - 100))
        self.instruction_pub.publish(String(data=''))
        if after is None:
            record.end, record.error = 'error', 'no sim state after the episode'
        else:
            record.success = after[2]
        record.wall_s = time.monotonic() - start
        return record


class EvaluatorNode(Node):
    """Runs episodes on several lanes at once; one thread per lane takes seeds from a queue."""

    def __init__(self, namespaces: List[str], **kwargs: Any) -> None:
        super().__init__('rt2_eval_sim', **kwargs)
        self.lanes = [EvalLane(self, ns) for ns in namespaces]
        self.diagnostics: Dict[str, Dict[str, str]] = {}
        self._diag_lock = threading.Lock()
        self.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                 RELIABLE)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self._diag_lock:
            for status in msg.status:
                self.diagnostics[status.hardware_id] = {kv.key: kv.value for kv in status.values}

    def controller_diagnostics(self) -> Dict[str, Dict[str, str]]:
        with self._diag_lock:
            return {k: dict(v) for k, v in self.diagnostics.items()}

    def run(self, split: str, seeds: List[int], max_steps: int, period_s: float,
            timeout_s: float, on_episode: Optional[Callable[[EpisodeRecord], None]] = None
            ) -> List[EpisodeRecord]:
        work: 'queue.Queue[int]' = queue.Queue()
        for seed in seeds:
            work.put(int(seed))
        records: List[EpisodeRecord] = []
        lock = threading.Lock()

        def worker(lane: EvalLane) -> None:
            while True:
                try:
                    seed = work.get_nowait()
                except queue.Empty:
                    return
                record = lane.run_episode(split, seed, max_steps, period_s, timeout_s)
                with lock:
                    records.append(record)
                if on_episode is not None:
                    on_episode(record)

        threads = [threading.Thread(target=worker, args=(lane,), daemon=True)
                   for lane in self.lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sorted(records, key=lambda r: r.seed)


def run_ros_evaluation(policy_params: Dict[str, Any], split: str, seeds: List[int],
                       lanes: int = 1, max_steps: int = 40, decision_period_s: float = 0.2,
                       ready_timeout_s: float = 180.0, log_dir: Optional[str] = None,
                       on_episode: Optional[Callable[[EpisodeRecord], None]] = None
                       ) -> Tuple[List[EpisodeRecord], Dict[str, Dict[str, str]]]:
    """
    Start `lanes` sim + controller pairs, evaluate every seed, stop them.

    Returns the episode records (by seed) and each controller's last /diagnostics values.
    """
    import rclpy
    from rt2_ros.evaluation.lanes import controller_params, NodeProcesses, sim_params
    from rt2_ros.ros.executors import make_executor

    processes = NodeProcesses(log_dir)
    base = f'/rt2_eval_{os.getpid()}'
    namespaces = [f'{base}_{k}' for k in range(int(lanes))]
    context = rclpy.Context()
    node = executor = spinner = None
    spinning = threading.Event()
    try:
        for ns in namespaces:
            processes.start('rt2_sim', ns, sim_params(),
                            remaps={'instruction': SIM_INSTRUCTION_TOPIC})
            processes.start('rt2_controller', ns,
                            controller_params(policy_params, decision_period_s))
        rclpy.init(context=context)
        node = EvaluatorNode(namespaces, context=context)
        executor, _ = make_executor('auto', context)  # the controller's default choice
        executor.add_node(node)

        def spin() -> None:
            # Spin until told to stop, so shutdown never pulls the context out from under a
            # wait in progress (rclpy raises 'the given context is not valid' in the thread).
            while spinning.is_set() and context.ok():
                executor.spin_once(timeout_sec=0.1)

        spinning.set()
        spinner = threading.Thread(target=spin, name='rt2-eval-executor', daemon=True)
        spinner.start()
        deadline = time.monotonic() + ready_timeout_s
        for lane in node.lanes:
            while True:
                processes.check_alive()
                try:
                    lane.wait_ready(2.0)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        timeout_s = max_steps * (decision_period_s + 2.0) + 20.0

        def checked(record: EpisodeRecord) -> None:
            processes.check_alive()
            if on_episode is not None:
                on_episode(record)

        records = node.run(split, seeds, max_steps, decision_period_s, timeout_s, checked)
        return records, node.controller_diagnostics()
    finally:
        spinning.clear()
        if spinner is not None:
            spinner.join(timeout=5.0)
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        if node is not None:
            node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
        processes.stop()

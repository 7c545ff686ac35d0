"""One execution path: the pure simulator executes actions with the controller's own parts."""
import numpy as np
import pytest
from rt2_ros.controller.safety import CAUSES
from rt2_ros.evaluation.lanes import controller_params
from rt2_ros.policy.base import Observation, PolicyConfig, PolicyUnavailable
from rt2_ros.policy.expert import SimExpertPolicy
from rt2_ros.policy.settings import PolicyConfigError
from rt2_ros.sim.expert import ExpertNoise, ScriptedExpert
from rt2_ros.sim.limits import SIM_DECISION_PARAMS, SIM_LIMIT_PARAMS, sim_safety_limits
from rt2_ros.sim.rollout import ActionExecutor
from rt2_ros.sim.splits import LADDER, TRAINING_SPLITS
from rt2_ros.sim.tasks import make_episode

NO_INTERVENTIONS = dict.fromkeys(CAUSES, 0)


def run_expert(split: str, seed: int, executor: ActionExecutor) -> bool:
    episode = make_episode(split, seed)
    sim = episode.build_sim()
    expert = ScriptedExpert(episode.task, ExpertNoise.none())
    for _ in range(40):
        executed, _ = expert.act(sim)
        if executor.execute(sim, executor.quantize(executed)):
            return episode.task.success(sim)
    return False


@pytest.mark.parametrize('split', LADDER + TRAINING_SPLITS)
def test_the_noise_free_expert_passes_the_sim_limits_unclipped(split):
    executor = ActionExecutor()
    wins = [run_expert(split, seed, executor) for seed in range(8)]
    assert all(wins), (split, wins)
    assert executor.safety.counts() == NO_INTERVENTIONS


def test_the_executor_clamps_with_the_controllers_safety_stage():
    # Half the decision period doubles every velocity: a full 5 cm step becomes 0.5 m/s, over
    # the preset's 0.45 m/s, and the safety stage clamps it on every control tick.
    executor = ActionExecutor(decision_period_s=0.1)
    assert executor.safety.limits == sim_safety_limits()
    sim = make_episode('one_block', 0).build_sim()
    before = sim.gripper.position.copy()
    bins = executor.quantize([1, 0.05, 0, 0, 0, 0, 0, 1])
    assert not executor.execute(sim, bins)
    moved = sim.gripper.position - before
    assert moved[0] == pytest.approx(0.45 * 0.1, abs=1e-6)
    assert executor.safety.counts()['linear_speed'] == 5  # 0.1 s at 50 Hz


def test_the_workspace_box_stops_the_arm_at_its_wall():
    executor = ActionExecutor()
    sim = make_episode('one_block', 1).build_sim()
    up = executor.quantize([1, 0, 0, 0.05, 0, 0, 0, 1])
    for _ in range(12):
        executor.execute(sim, up)
    high = SIM_LIMIT_PARAMS['limits.workspace_max'][2]
    assert sim.gripper.position[2] <= high + 1e-9
    assert executor.safety.counts()['workspace'] > 0


def test_ros_evaluation_lanes_use_the_sim_presets():
    params = controller_params({'policy.backend': 'expert'}, 0.2)
    for name, value in {**SIM_LIMIT_PARAMS, **SIM_DECISION_PARAMS}.items():
        assert params[name] == value, name


def test_the_expert_backend_answers_from_the_state_of_the_frame():
    episode = make_episode('two_blocks', 3)
    sim = episode.build_sim()
    asked = []

    def source(stamp, timeout_s):
        asked.append(stamp)
        return episode.task.to_dict(), sim.snapshot()

    policy = SimExpertPolicy(PolicyConfig(backend='expert', action_space='rt2'))
    with pytest.raises(PolicyUnavailable, match='simulator state'):
        policy.infer(Observation(np.zeros((8, 8, 3), np.uint8), episode.instruction))
    policy.attach_source(source)
    result = policy.infer(Observation(np.zeros((8, 8, 3), np.uint8), episode.instruction,
                                      stamp=12.5))
    executor = ActionExecutor()
    _, intended = ScriptedExpert(episode.task, ExpertNoise.none()).act(sim)
    assert asked == [12.5]
    assert result.raw == executor.text(executor.quantize(intended))
    assert result.action == pytest.approx(executor.values(executor.quantize(intended)))
    assert result.terminate == [False]


def test_the_expert_backend_acts_only_in_the_rt2_space():
    with pytest.raises(PolicyConfigError, match='rt2 action space'):
        SimExpertPolicy(PolicyConfig(backend='expert', action_space='openvla'))

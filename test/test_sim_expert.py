"""The scripted expert solves every family; demonstrations replay exactly as executed."""
import numpy as np
import pytest
from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.sim.expert import ExpertNoise
from rt2_ros.sim.rollout import (
    expert_episode, expert_success_rates, generate_demonstrations,
    make_renderer, run_episode,
)
from rt2_ros.sim.splits import FAMILIES
from rt2_ros.sim.tasks import make_episode


@pytest.mark.slow
@pytest.mark.parametrize('family', FAMILIES)
def test_expert_solves_each_family_over_100_seeds(family):
    rates = expert_success_rates('train', range(100), [family])[family]
    assert rates['success_rate'] >= 0.95, rates
    assert rates['mean_decisions'] <= 30, rates


def test_expert_solves_the_other_splits():
    for split in ('reasoning', 'unseen_objects', 'unseen_phrasing'):
        rates = expert_success_rates(split, range(200, 210), FAMILIES)
        for family, r in rates.items():
            assert r['success_rate'] >= 0.9, (split, family, r)


def test_demonstrations_are_token_exact_and_end_with_terminate():
    codec = make_codec(load_action_space('rt2'))
    demos = list(generate_demonstrations('train', range(3)))
    for demo in demos:
        assert demo.success and demo.terminated
        assert demo.images().shape == (len(demo.steps), 224, 224, 3)
        for step in demo.steps:
            decoded = codec.decode(step.text)
            assert np.array_equal(decoded.bins, step.bins)
            assert decoded.values == pytest.approx(step.action)
            assert np.all(np.abs(step.action[1:4]) <= 0.05 + 1e-9)
        assert demo.steps[-1].bins[0] == 0  # terminate token
        assert all(step.bins[0] == 1 for step in demo.steps[:-1])


def test_replaying_the_tokens_reproduces_the_episode():
    demo = expert_episode(make_episode('train', 7, family='place_on'), render=False)
    texts = iter(step.text for step in demo.steps)
    result = run_episode(lambda image, instruction: next(texts), 'train', 7,
                         family='place_on', max_steps=len(demo.steps))
    assert result.success and result.terminated and result.steps == len(demo.steps)
    assert np.array_equal(np.stack(result.actions), demo.actions())


def test_a_policy_that_never_moves_fails():
    result = run_episode(lambda image, instruction: [1, 0, 0, 0, 0, 0, 0, 1], 'train', 3,
                         max_steps=5)
    assert not result.success and not result.terminated and result.steps == 5


def test_recorded_points_are_where_the_expert_sends_the_fingertips():
    # A grounded plan names two image points: the expert's waypoint and the fingertips. The
    # expert moves dead-beat (all the way when within the 5 cm step), so after such a move the
    # fingertips' pixel must be where the waypoint's pixel was.
    episode = make_episode('train', 4)
    demo = expert_episode(episode, render=False, noise=ExpertNoise.none(), points=True)
    plain = expert_episode(episode, render=False, noise=ExpertNoise.none())
    assert [s.text for s in demo.steps] == [s.text for s in plain.steps]  # recording is passive
    assert all(s.points is None for s in plain.steps)
    reached = 0
    for now, after in zip(demo.steps, demo.steps[1:]):
        move = now.intended[1:4]
        if now.intended[0] == 1.0 and 0.005 < np.max(np.abs(move)) < 0.045:
            assert np.linalg.norm(after.points[1] - now.points[0]) < 1.5, now.points
            reached += 1
        elif np.max(np.abs(move)) >= 0.049:  # a cut-short move only heads that way
            before = np.linalg.norm(now.points[1] - now.points[0])
            assert np.linalg.norm(after.points[1] - now.points[0]) < before
    assert reached >= 2
    # The third point is the task's block's top centre: what "where is the <block>?" answers.
    renderer = make_renderer(episode, 224, 224)
    sim = episode.build_sim()
    block = sim.blocks[episode.task.target]
    top = renderer.pixels(sim, np.array([[*block.position[:2], block.top]]))[0]
    assert np.allclose(demo.steps[0].points[2], top)
    assert not np.allclose(demo.steps[-1].points[2], top)   # it moves when the block does


def test_table_points_give_the_sign_of_every_clear_horizontal_move():
    # On the table, image rows grow towards the camera (-x) and columns to the right (-y), so
    # the waypoint's and the fingertips' table points give each clear move's direction; in
    # the air, rows mix distance with height and do not.
    from rt2_ros.sim.rollout import POINT_ROWS
    wp, tip = POINT_ROWS.index('waypoint_ground'), POINT_ROWS.index('fingertips_ground')
    air_wp, air_tip = POINT_ROWS.index('waypoint'), POINT_ROWS.index('fingertips')
    agree, air_agree = [], []
    for seed in range(12):
        demo = expert_episode(make_episode('train', seed), render=False, points=True)
        for step in demo.steps:
            for axis in (0, 1):   # dx <-> image row, dy <-> image column
                move = step.intended_bins[1 + axis] - 127.5
                if abs(move) > 20:
                    agree.append(np.sign(move) == -np.sign(step.points[wp, axis] -
                                                           step.points[tip, axis]))
                    if axis == 0:
                        air_agree.append(np.sign(move) == -np.sign(step.points[air_wp, 0] -
                                                                   step.points[air_tip, 0]))
    assert len(agree) > 100 and all(agree)
    assert np.mean(air_agree) < 0.95       # forward-back: about 1 in 10 read wrongly in the air

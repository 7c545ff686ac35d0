"""Kinematic tabletop physics: reach, grasping, pushing, stacking, the base, determinism."""
import math

import numpy as np
import pytest
from rt2_ros.controller.rotation import rpy_to_rotvec
from rt2_ros.sim.objects import BlockSpec
from rt2_ros.sim.world import Block, GRIPPER, Gripper, MAX_WIDTH, SimConfig, TABLE, TabletopSim


def make_sim(*blocks, at=(0.40, 0.0, 0.15), opening=1.0):
    specs = [Block(BlockSpec(c, s, z), np.array(p, dtype=float), yaw)
             for (c, s, z, p, yaw) in blocks]
    return TabletopSim(specs, Gripper(position=np.array(at, dtype=float), opening=opening,
                                      target=opening))


def move(sim, velocity, seconds, yaw_rate=0.0):
    sim.set_velocity(velocity, yaw_rate)
    sim.step(int(round(seconds * sim.config.physics_rate_hz)))
    sim.stop()


def go_to(sim, target, speed=0.2):
    """Move the fingertips to target in straight lines (test helper, world = base here)."""
    for _ in range(200):
        error = np.asarray(target, dtype=float) - sim.gripper.position
        distance = float(np.linalg.norm(error))
        if distance < 1e-4:
            break
        step = min(distance, speed * sim.config.dt)
        sim.set_velocity(error / distance * step / sim.config.dt)
        sim.step()
    sim.stop()


def close_gripper(sim, seconds=0.3):
    sim.set_gripper(0.0)
    sim.step(int(seconds * sim.config.physics_rate_hz))


def test_velocity_integrates_and_reach_is_limited():
    sim = make_sim()
    move(sim, (0.1, -0.05, 0.02), 1.0)
    assert sim.gripper.position == pytest.approx([0.5, -0.05, 0.17], abs=1e-9)
    move(sim, (1.0, 0.0, 1.0), 2.0)  # far beyond the reach
    cfg = SimConfig()
    assert sim.gripper.position[0] == pytest.approx(cfg.reach_max[0])
    assert sim.gripper.position[2] == pytest.approx(cfg.reach_max[2])
    move(sim, (0.0, 0.0, -1.0), 2.0)  # into the table: fingertips stop on it
    assert sim.gripper.position[2] == pytest.approx(0.0)


def test_grasp_lift_and_release():
    sim = make_sim(('red', 'cube', 'medium', (0.40, 0.0, 0.0), 0.3))
    go_to(sim, (0.40, 0.0, 0.006))
    assert sim.blocks[0].position[:2] == pytest.approx([0.40, 0.0])  # open fingers miss it
    close_gripper(sim)
    assert sim.gripper.held == 0 and sim.blocks[0].support == GRIPPER
    assert 0.03 < sim.gripper.width < MAX_WIDTH  # stopped on the block, not closed
    go_to(sim, (0.45, 0.10, 0.15))
    assert sim.blocks[0].position == pytest.approx([0.45, 0.10, 0.144], abs=2e-3)
    sim.set_gripper(1.0)
    sim.step(10)
    assert sim.gripper.held is None
    assert sim.blocks[0].support == TABLE and sim.blocks[0].position[2] == 0.0


def test_closing_beside_a_block_does_not_grasp_it():
    sim = make_sim(('red', 'cube', 'medium', (0.40, 0.0, 0.0), 0.0))
    go_to(sim, (0.40, 0.0, 0.07))  # above the block's top: nothing between the fingers
    close_gripper(sim)
    assert sim.gripper.held is None and sim.gripper.width == 0.0
    sim2 = make_sim(('red', 'cube', 'medium', (0.50, 0.0, 0.0), 0.0))
    go_to(sim2, (0.40, 0.0, 0.006))  # 10 cm away
    close_gripper(sim2)
    assert sim2.gripper.held is None


def test_fingers_land_on_a_block_instead_of_passing_through():
    sim = make_sim(('red', 'cube', 'large', (0.40, 0.045, 0.0), 0.0))
    go_to(sim, (0.40, 0.0, 0.02))  # one finger is over the block
    assert sim.gripper.position[2] == pytest.approx(0.05, abs=1e-6)


def test_closed_fingers_push_a_block_along_the_motion():
    sim = make_sim(('blue', 'cylinder', 'medium', (0.40, 0.0, 0.0), 0.0), at=(0.33, 0.0, 0.15))
    close_gripper(sim)
    go_to(sim, (0.33, 0.0, 0.008))
    go_to(sim, (0.45, 0.0, 0.008), speed=0.1)
    block = sim.blocks[0]
    assert block.position[0] == pytest.approx(0.45 + 0.012 + 0.02, abs=2e-3)
    assert abs(block.position[1]) < 1e-6 and block.support == TABLE


def test_pushed_block_pushes_its_neighbour():
    sim = make_sim(('blue', 'cube', 'medium', (0.40, 0.0, 0.0), 0.0),
                   ('green', 'cube', 'medium', (0.45, 0.0, 0.0), 0.0), at=(0.33, 0.0, 0.15))
    close_gripper(sim)
    go_to(sim, (0.33, 0.0, 0.008))
    go_to(sim, (0.40, 0.0, 0.008), speed=0.1)
    assert sim.blocks[1].position[0] > 0.46
    assert sim.blocks[1].position[0] - sim.blocks[0].position[0] >= 0.04 - 1e-6


def test_stack_on_another_block_and_carry_the_stack():
    sim = make_sim(('red', 'cube', 'small', (0.35, 0.1, 0.0), 0.0),
                   ('blue', 'cube', 'large', (0.45, -0.05, 0.0), 0.0), at=(0.35, 0.1, 0.15))
    go_to(sim, (0.35, 0.1, 0.006))
    close_gripper(sim)
    go_to(sim, (0.35, 0.1, 0.12))
    go_to(sim, (0.45, -0.05, 0.12))
    go_to(sim, (0.45, -0.05, 0.0))  # the held block stops on the blue cube's top
    assert sim.blocks[0].position[2] == pytest.approx(0.05, abs=1e-6)
    sim.set_gripper(1.0)
    sim.step(10)
    assert sim.blocks[0].support == 1
    # Pick the bottom block: the top one rides along.
    go_to(sim, (0.45, -0.05, 0.10))
    go_to(sim, (0.45, -0.05, 0.006))
    close_gripper(sim)
    go_to(sim, (0.40, 0.0, 0.10))
    assert sim.blocks[1].support == GRIPPER and sim.blocks[0].support == 1
    assert sim.blocks[0].position[2] == pytest.approx(sim.blocks[1].top, abs=1e-6)
    assert sim.blocks[0].position[:2] == pytest.approx(sim.blocks[1].position[:2], abs=1e-6)


def test_block_released_off_the_edge_of_another_slides_to_the_table():
    sim = make_sim(('red', 'cube', 'small', (0.30, 0.1, 0.0), 0.0),
                   ('blue', 'cube', 'small', (0.45, 0.0, 0.0), 0.0), at=(0.30, 0.1, 0.15))
    go_to(sim, (0.30, 0.1, 0.006))
    close_gripper(sim)
    go_to(sim, (0.30, 0.1, 0.10))
    go_to(sim, (0.45, 0.024, 0.10))  # centre beyond the blue cube's edge (half side 0.015)
    go_to(sim, (0.45, 0.024, 0.0))
    sim.set_gripper(1.0)
    sim.step(10)
    red, blue = sim.blocks
    assert red.support == TABLE and red.position[2] == 0.0
    assert abs(red.position[1] - blue.position[1]) >= 0.03 - 1e-6


def test_base_motion_carries_arm_and_camera_not_blocks():
    sim = make_sim(('red', 'cube', 'small', (0.40, 0.1, 0.0), 0.0))
    ee_before = sim.gripper.position.copy()
    sim.set_base_velocity(-0.1, 0.05, 0.0)
    sim.step(50)
    assert sim.base[:2] == pytest.approx([-0.1, 0.05])
    assert sim.gripper.position == pytest.approx(ee_before)  # base_link coordinates
    assert sim.ee_world()[0][:2] == pytest.approx(ee_before[:2] + [-0.1, 0.05])
    assert sim.blocks[0].position[:2] == pytest.approx([0.40, 0.1])
    sim.set_base_velocity(0.5, 0.0, 0.0)  # cannot drive into the table
    sim.step(100)
    assert sim.base[0] == pytest.approx(0.0)


def test_non_finite_commands_are_ignored():
    sim = make_sim()
    sim.set_velocity((math.nan, 0.0, 0.0), 0.0)
    sim.set_gripper(math.inf)
    sim.step(10)
    assert sim.gripper.position == pytest.approx([0.40, 0.0, 0.15])
    assert sim.gripper.target == 1.0


def test_same_commands_same_state():
    def run():
        sim = make_sim(('red', 'cube', 'medium', (0.40, 0.0, 0.0), 0.7),
                       ('blue', 'triangle', 'small', (0.45, 0.05, 0.0), 0.2))
        go_to(sim, (0.40, 0.0, 0.006))
        close_gripper(sim)
        go_to(sim, (0.45, 0.05, 0.12))
        return sim.snapshot()
    assert run() == run()


@pytest.mark.parametrize('rpy', [(0.0, 0.0, 0.2), (0.1, -0.2, 0.25), (0.25, 0.25, -0.25)])
def test_rpy_to_rotvec_matches_the_rotation(rpy):
    roll, pitch, yaw = rpy

    def rot(axis, angle):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m
    expected = rot(2, yaw) @ rot(1, pitch) @ rot(0, roll)  # extrinsic x, then y, then z
    v = rpy_to_rotvec((roll, pitch, yaw))  # the one conversion, the controller's
    angle = float(np.linalg.norm(v))
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rodrigues = np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
    assert rodrigues == pytest.approx(expected, abs=1e-9)

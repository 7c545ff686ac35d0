"""The camera: deterministic images in which blocks, colours and the gripper's height show."""
import numpy as np
import pytest
from rt2_ros.sim.objects import COLOURS
from rt2_ros.sim.render import CameraSpec, Renderer, SceneLook
from rt2_ros.sim.rollout import make_renderer
from rt2_ros.sim.tasks import make_episode


def colour_pixels(image, rgb, tolerance=40):
    """Count pixels within tolerance of a colour or of its shaded (darker) versions."""
    pixels = image.reshape(-1, 3).astype(float)
    target = np.array(rgb, dtype=float)
    # Shading scales a colour: compare directions and allow 45..110 % brightness.
    scale = (pixels @ target) / (target @ target)
    residual = np.linalg.norm(pixels - scale[:, None] * target, axis=1)
    return int(np.sum((residual < tolerance) & (scale > 0.45) & (scale < 1.1)))


@pytest.mark.parametrize('size', [(224, 224), (640, 480)])
def test_same_episode_renders_identical_bytes(size):
    first = make_episode('train', 11)
    second = make_episode('train', 11)
    a = make_renderer(first, *size).render(first.build_sim())
    b = make_renderer(second, *size).render(second.build_sim())
    assert a.shape == (size[1], size[0], 3) and a.dtype == np.uint8
    assert a.tobytes() == b.tobytes()
    other = make_episode('train', 12)
    assert make_renderer(other, *size).render(other.build_sim()).tobytes() != a.tobytes()


def test_every_block_colour_is_visible():
    for seed in range(6):
        episode = make_episode('seen', seed)
        image = make_renderer(episode).render(episode.build_sim())
        for block in episode.blocks:
            count = colour_pixels(image, COLOURS[block.spec.colour])
            assert count >= 25, (seed, block.spec.name, count)


def test_gripper_height_changes_the_image_through_its_shadow():
    episode = make_episode('train', 3)
    sim = episode.build_sim()
    renderer = Renderer(CameraSpec(), SceneLook())
    sim.gripper.position[:] = (0.45, 0.0, 0.04)
    low = renderer.render(sim)
    sim.gripper.position[2] = 0.14
    high = renderer.render(sim)
    # The shadow lies on the table under the gripper: project the point below the fingers.
    rotation, centre = renderer.camera_pose(sim)
    cam = (np.array([0.45, 0.0, 0.0]) - centre) @ rotation.T
    u, v = (cam[:2] / cam[2] * renderer.camera.focal + [112, 112]).astype(int)
    patch = (slice(v - 3, v + 4), slice(u - 3, u + 4))
    table = np.array(SceneLook().table_rgb, dtype=float)
    assert np.abs(low[patch].astype(float) - high[patch].astype(float)).max() > 20
    assert np.linalg.norm(low[patch].mean(axis=(0, 1)) - table) > 20  # fingers/shadow here


def test_variation_changes_the_look_not_the_task():
    plain = make_episode('train', 5, variation='none')
    varied = make_episode('train', 5, variation='strong')
    assert plain.instruction == varied.instruction
    assert [b.position.tolist() for b in plain.blocks] == \
        [b.position.tolist() for b in varied.blocks]
    a = make_renderer(plain).render(plain.build_sim())
    b = make_renderer(varied).render(varied.build_sim())
    assert a.tobytes() != b.tobytes()

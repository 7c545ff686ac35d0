"""Task splits: deterministic, held-out objects and phrasings really held out, unambiguous."""
import functools

import numpy as np
import pytest
from rt2_ros.sim.objects import COLOUR_OF_THINGS, SIZE_ORDER
from rt2_ros.sim.splits import (
    FAMILIES, HELD_OUT_COMBOS, HELD_OUT_TEMPLATES, LADDER, ONE_BLOCK_FAMILIES, SPLITS, TEMPLATES,
    TRAIN_TEMPLATES, TRAINING_SPLITS,
)
from rt2_ros.sim.tasks import CLOSEST_MARGIN, make_episode

SEEDS = range(150)


@functools.lru_cache(maxsize=None)
def episodes(split):
    return [make_episode(split, seed) for seed in SEEDS]


def combos(episode):
    return {(b.spec.colour, b.spec.shape) for b in episode.blocks}


def test_episodes_are_deterministic_and_splits_differ():
    a, b = make_episode('train', 42), make_episode('train', 42)
    assert a.task == b.task and a.gripper_start == b.gripper_start
    assert [x.position.tolist() for x in a.blocks] == [x.position.tolist() for x in b.blocks]
    assert make_episode('seen', 42).task.instruction != a.task.instruction or \
        make_episode('seen', 42).blocks[0].position.tolist() != a.blocks[0].position.tolist()


def test_train_never_shows_held_out_objects():
    for episode in episodes('train') + episodes('seen'):
        assert not combos(episode) & set(HELD_OUT_COMBOS)


def test_unseen_objects_acts_on_held_out_combinations():
    found = set()
    for episode in episodes('unseen_objects'):
        target = episode.blocks[episode.task.target].spec
        assert (target.colour, target.shape) in HELD_OUT_COMBOS
        assert target.name in episode.instruction
        found.add((target.colour, target.shape))
    assert found == set(HELD_OUT_COMBOS)


def test_phrasing_splits_use_disjoint_templates():
    assert set(TRAIN_TEMPLATES).isdisjoint(HELD_OUT_TEMPLATES)
    for family in FAMILIES:
        assert any(t in HELD_OUT_TEMPLATES for t in TEMPLATES[family])
    seen_ids = {e.task.template_id for e in episodes('train')}
    held_ids = {e.task.template_id for e in episodes('unseen_phrasing')}
    assert seen_ids == set(TRAIN_TEMPLATES)
    assert held_ids == set(HELD_OUT_TEMPLATES)


def test_every_split_covers_its_families():
    for name, split in SPLITS.items():
        assert {e.task.family for e in episodes(name)} == set(split.families), name
    assert set(SPLITS['one_block'].families) == set(ONE_BLOCK_FAMILIES) == {'pick', 'move_to'}
    assert SPLITS['two_blocks'].families == FAMILIES


def test_ladder_rungs_have_their_block_counts_and_differ_from_training():
    for name, count in (('one_block', 1), ('train_one_block', 1), ('two_blocks', 2),
                        ('train_two_blocks', 2)):
        assert {len(e.blocks) for e in episodes(name)} == {count}, name
    assert {len(e.blocks) for e in episodes('seen')} == {3, 4, 5}
    assert LADDER[:3] == ('one_block', 'two_blocks', 'seen') and set(LADDER) <= set(SPLITS)
    assert not set(LADDER) & set(TRAINING_SPLITS)
    # a rung's scenes are not its training split's scenes
    rung = {tuple(e.blocks[0].position.round(6)) for e in episodes('one_block')}
    trained = {tuple(e.blocks[0].position.round(6)) for e in episodes('train_one_block')}
    assert not rung & trained


def test_existing_splits_keep_their_scenes():
    # The rung splits added a field; the scenes of the old splits must not change.
    episode = make_episode('seen', 3)
    assert episode.task.instruction == 'push the red cube towards the green triangle'
    assert len(episode.blocks) == 3


def test_reasoning_referents_have_exactly_one_answer():
    forms = set()
    for episode in episodes('reasoning'):
        task, blocks = episode.task, episode.blocks
        target = blocks[task.target]
        others = [b for i, b in enumerate(blocks) if i != task.target]
        forms.add(task.referent)
        assert target.spec.name not in episode.instruction
        rank = SIZE_ORDER.index
        if task.referent == 'smallest':
            assert all(rank(b.spec.size) > rank(target.spec.size) for b in others)
        elif task.referent == 'largest':
            assert all(rank(b.spec.size) < rank(target.spec.size) for b in others)
        elif task.referent == 'colour_of':
            assert all(b.spec.colour != target.spec.colour for b in others)
            assert any(thing in episode.instruction
                       for thing in COLOUR_OF_THINGS[target.spec.colour])
        elif task.referent == 'closest':
            anchor = blocks[task.anchor]
            assert anchor.spec.name in episode.instruction and task.anchor != task.target
            dist = sorted(float(np.linalg.norm(b.position[:2] - anchor.position[:2]))
                          for i, b in enumerate(blocks) if i != task.anchor)
            mine = float(np.linalg.norm(target.position[:2] - anchor.position[:2]))
            assert mine == dist[0] and dist[1] - mine >= CLOSEST_MARGIN
    assert forms == {'smallest', 'largest', 'closest', 'colour_of'}


def test_blocks_are_distinct_and_apart_and_nothing_starts_solved():
    for name in SPLITS:
        for episode in episodes(name)[:60]:
            names = [b.spec.name for b in episode.blocks]
            assert len(set(names)) == len(names)
            sim = episode.build_sim()
            assert not episode.task.success(sim)


def test_unknown_split_or_family_is_a_clear_error():
    with pytest.raises(ValueError, match='unknown split'):
        make_episode('nope', 0)
    with pytest.raises(ValueError, match='unknown family'):
        make_episode('train', 0, family='dance')

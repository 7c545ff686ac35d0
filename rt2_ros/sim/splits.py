"""
Task families, instruction templates and the train / evaluation splits - as data.

The splits follow the RT-2 paper's evaluation: `seen` repeats training tasks and objects in new
scenes; `unseen_objects` asks for colour x shape combinations that never appear in `train` (not
even as distractors); `unseen_phrasing` uses instruction templates never used in `train`;
`reasoning` names the block through a property - smallest, largest, closest to another block, or
the colour of a well-known thing - which robot data never does, so a model can only follow it by
transferring what vision-language data taught it (the co-fine-tuning argument of the paper).

Below `seen` sit two easier rungs, so any policy shows within minutes where it stands:
`one_block` (a single block on the table: the families that need no second block) and
`two_blocks` (one distractor, so the name matters). `train_one_block` and `train_two_blocks`
are their training counterparts, for recipes that climb the ladder.

Every episode is a pure function of (split, seed): the split's `salt` goes into the random
generator, so seed 7 of `train` and seed 7 of `seen` are different scenes. Changing anything
below changes the data sets built from it; treat it like a data-set version.
"""
from dataclasses import dataclass
from typing import Dict, Tuple

FAMILIES: Tuple[str, ...] = ('pick', 'place_on', 'move_to', 'push_next_to')
REFERENT_FORMS: Tuple[str, ...] = ('direct', 'smallest', 'largest', 'closest', 'colour_of')
REASONING_FORMS: Tuple[str, ...] = ('smallest', 'largest', 'closest', 'colour_of')
# Scene appearance variation levels (render.sample_look): none, a new room, a very new room.
VARIATION_LEVELS: Tuple[str, ...] = ('none', 'mild', 'strong')

# Held out of `train` entirely: each colour and each shape still appears in train with others.
HELD_OUT_COMBOS: Tuple[Tuple[str, str], ...] = (
    ('red', 'cylinder'),
    ('green', 'cube'),
    ('blue', 'triangle'),
    ('yellow', 'cube'),
    ('purple', 'cylinder'),
)

# Instruction templates per family: id -> text. `{x}` is the block to act on (a referent phrase,
# below), `{y}` another block named directly, `{region}` a place on the table.
TEMPLATES: Dict[str, Dict[str, str]] = {
    'pick': {
        'pick/0': 'pick up the {x}',
        'pick/1': 'grab the {x}',
        'pick/2': 'lift the {x}',
        'pick/3': 'pick the {x} up',
        'pick/h0': 'raise the {x} off the table',
        'pick/h1': 'take hold of the {x} and lift it',
    },
    'place_on': {
        'place_on/0': 'put the {x} on the {y}',
        'place_on/1': 'place the {x} on top of the {y}',
        'place_on/2': 'stack the {x} on the {y}',
        'place_on/h0': 'set the {x} down on the {y}',
        'place_on/h1': 'move the {x} onto the {y}',
    },
    'move_to': {
        'move_to/0': 'move the {x} to the {region}',
        'move_to/1': 'bring the {x} to the {region}',
        'move_to/2': 'put the {x} in the {region}',
        'move_to/h0': 'carry the {x} over to the {region}',
        'move_to/h1': 'relocate the {x} to the {region}',
    },
    'push_next_to': {
        'push_next_to/0': 'push the {x} next to the {y}',
        'push_next_to/1': 'push the {x} towards the {y}',
        'push_next_to/2': 'slide the {x} next to the {y}',
        'push_next_to/h0': 'nudge the {x} over to the {y}',
        'push_next_to/h1': 'shove the {x} until it is beside the {y}',
    },
}

# How `{x}` is written for each referent form. `{name}` is 'colour shape', `{anchor}` another
# block's name, `{thing}` something of the block's colour (objects.COLOUR_OF_THINGS).
REFERENT_PHRASES: Dict[str, Tuple[str, ...]] = {
    'direct': ('{name}',),
    'smallest': ('smallest block', 'smallest object'),
    'largest': ('largest block', 'biggest block'),
    'closest': ('block closest to the {anchor}', 'block nearest to the {anchor}'),
    'colour_of': ('block with the colour of {thing}', 'block that is the colour of {thing}'),
}

# Table regions (world frame, metres): the goal point the expert aims for and the box that
# counts as success. Left is +y (the robot's left, the camera image's left).
REGIONS: Dict[str, Dict[str, Tuple[float, ...]]] = {
    'left side of the table': {'goal': (0.40, 0.19), 'box': (0.18, 0.14, 0.62, 0.50)},
    'right side of the table': {'goal': (0.40, -0.19), 'box': (0.18, -0.50, 0.62, -0.14)},
    'far side of the table': {'goal': (0.60, 0.0), 'box': (0.52, -0.50, 0.80, 0.50)},
    'near side of the table': {'goal': (0.22, 0.0), 'box': (0.0, -0.50, 0.28, 0.50)},
    'far left corner of the table': {'goal': (0.58, 0.18), 'box': (0.50, 0.12, 0.80, 0.50)},
    'far right corner of the table': {'goal': (0.58, -0.18), 'box': (0.50, -0.50, 0.80, -0.12)},
    'near left corner of the table': {'goal': (0.25, 0.17), 'box': (0.0, 0.12, 0.30, 0.50)},
    'near right corner of the table': {'goal': (0.25, -0.17), 'box': (0.0, -0.50, 0.30, -0.12)},
}


@dataclass(frozen=True)
class Split:
    """Which tasks, phrasings and objects a split draws from."""

    name: str
    description: str
    salt: int
    families: Tuple[str, ...]
    templates: Tuple[str, ...]
    referents: Tuple[str, ...]
    # 'train': held-out combos never appear; 'held_out': the block to act on is a held-out combo.
    objects: str
    block_counts: Tuple[int, ...] = (3, 4, 5)   # blocks per scene, drawn uniformly


def _ids(held_out: bool) -> Tuple[str, ...]:
    return tuple(tid for family in FAMILIES for tid in TEMPLATES[family]
                 if ('/h' in tid) == held_out)


TRAIN_TEMPLATES = _ids(held_out=False)
# The families a scene with a single block allows (the others act on a second, named block).
ONE_BLOCK_FAMILIES: Tuple[str, ...] = ('pick', 'move_to')


def _family_templates(families: Tuple[str, ...]) -> Tuple[str, ...]:
    return tuple(tid for tid in TRAIN_TEMPLATES if tid.split('/')[0] in families)


HELD_OUT_TEMPLATES = _ids(held_out=True)

SPLITS: Dict[str, Split] = {s.name: s for s in (
    Split('train', 'what the demo model trains on: direct references, training phrasings, '
          'no held-out objects', 1, FAMILIES, TRAIN_TEMPLATES, ('direct',), 'train'),
    Split('seen', 'tasks, phrasings and objects as in train, in new scenes', 2, FAMILIES,
          TRAIN_TEMPLATES, ('direct',), 'train'),
    Split('unseen_objects', 'the block to act on is a colour x shape combination held out of '
          'train', 3, FAMILIES, TRAIN_TEMPLATES, ('direct',), 'held_out'),
    Split('unseen_phrasing', 'instruction templates held out of train', 4, FAMILIES,
          HELD_OUT_TEMPLATES, ('direct',), 'train'),
    Split('reasoning', 'the block is named by a property: smallest, largest, closest to '
          'another block, colour of a known thing', 5, FAMILIES, TRAIN_TEMPLATES,
          REASONING_FORMS, 'train'),
    Split('one_block', 'a single block on the table; pick and move_to, as in train', 6,
          ONE_BLOCK_FAMILIES, _family_templates(ONE_BLOCK_FAMILIES), ('direct',), 'train', (1,)),
    Split('two_blocks', 'the block to act on and one other block; every family, as in train',
          7, FAMILIES, TRAIN_TEMPLATES, ('direct',), 'train', (2,)),
    Split('train_one_block', 'training scenes of the one_block rung', 8, ONE_BLOCK_FAMILIES,
          _family_templates(ONE_BLOCK_FAMILIES), ('direct',), 'train', (1,)),
    Split('train_two_blocks', 'training scenes of the two_blocks rung', 9, FAMILIES,
          TRAIN_TEMPLATES, ('direct',), 'train', (2,)),
)}
# The evaluation ladder, easiest first: where a policy stands, rung by rung.
LADDER: Tuple[str, ...] = ('one_block', 'two_blocks', 'seen', 'unseen_objects',
                           'unseen_phrasing', 'reasoning')
TRAINING_SPLITS: Tuple[str, ...] = ('train', 'train_one_block', 'train_two_blocks')


def get_split(name: str) -> Split:
    """Return a split by name, with a clear error for an unknown one."""
    try:
        return SPLITS[name]
    except KeyError:
        raise ValueError(f'unknown split {name!r}; splits: {", ".join(SPLITS)}') from None

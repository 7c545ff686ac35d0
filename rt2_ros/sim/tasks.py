"""
Episodes: a scene and an instruction drawn from a split, and the check that says it succeeded.

`make_episode(split, seed)` is deterministic. Scenes are drawn so that the instruction has exactly
one answer (a unique colour for "the colour of a banana", a clear margin for "the block closest
to ...", a free goal spot, a clear path to push along) - an ambiguous task would teach a learner
noise and make success rates meaningless.
"""
from dataclasses import asdict, dataclass, field
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rt2_ros.sim.objects import (
    BlockSpec, COLOUR_OF_THINGS, COLOURS, SHAPES, SIZE_ORDER,
)
from rt2_ros.sim.render import sample_look, SceneLook
from rt2_ros.sim.splits import (
    get_split, HELD_OUT_COMBOS, REFERENT_PHRASES, REGIONS, Split, TEMPLATES,
)
from rt2_ros.sim.world import Block, GRIPPER, Gripper, SimConfig, TABLE, TabletopSim

# Where blocks are placed at the start (world frame, metres).
SPAWN_MIN = (0.27, -0.18)
SPAWN_MAX = (0.53, 0.18)
MIN_GAP = 0.035          # between block footprints at the start
CLOSEST_MARGIN = 0.05    # the closest block is this much closer than the runner-up
PICK_LIFT = 0.06         # a picked block's bottom must be this high
NEXT_TO_GAP = 0.03       # push: the blocks' footprints at most this far apart
GRIPPER_HOME = (0.30, 0.0, 0.20)


@dataclass(frozen=True)
class Task:
    """What to do in an episode and how to tell it is done."""

    split: str
    seed: int
    family: str
    referent: str
    template_id: str
    instruction: str
    target: int                      # index of the block to act on (X)
    reference: Optional[int] = None  # Y for place_on / push_next_to
    anchor: Optional[int] = None     # the block 'closest to' refers to
    region: Optional[str] = None     # move_to

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def success(self, sim: TabletopSim) -> bool:
        """Tell whether the world is in a state the instruction asked for."""
        return check_success(self, sim)


@dataclass
class Episode:
    """A task with its initial scene, gripper pose and camera look."""

    task: Task
    blocks: List[Block]
    gripper_start: Tuple[float, float, float]
    look: SceneLook = field(default_factory=SceneLook)

    def build_sim(self, config: SimConfig = SimConfig()) -> TabletopSim:
        """Return a fresh simulator in the episode's initial state."""
        gripper = Gripper(position=np.array(self.gripper_start, dtype=float), opening=1.0,
                          target=1.0)
        return TabletopSim(self.blocks, gripper, config)

    @property
    def instruction(self) -> str:
        return self.task.instruction


def footprint_gap(a: Block, b: Block) -> float:
    """Return the distance between two blocks' coarse footprints (negative when overlapping)."""
    return float(np.linalg.norm(a.position[:2] - b.position[:2])) - a.spec.radius - b.spec.radius


def check_success(task: Task, sim: TabletopSim) -> bool:
    """Return the task's success predicate on a world state."""
    x = sim.blocks[task.target]
    if task.family == 'pick':
        return x.support == GRIPPER and float(x.position[2]) >= PICK_LIFT
    if task.family == 'place_on':
        return x.support == task.reference
    if task.family == 'move_to':
        x0, y0, x1, y1 = REGIONS[task.region]['box']
        px, py = float(x.position[0]), float(x.position[1])
        return x.support == TABLE and x0 <= px <= x1 and y0 <= py <= y1
    if task.family == 'push_next_to':
        y = sim.blocks[task.reference]
        return (x.support == TABLE and y.support == TABLE
                and footprint_gap(x, y) <= NEXT_TO_GAP)
    raise ValueError(f'unknown family {task.family!r}')


def _combos(split: Split) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    every = [(c, s) for c in COLOURS for s in SHAPES]
    held = [c for c in every if c in HELD_OUT_COMBOS]
    seen = [c for c in every if c not in HELD_OUT_COMBOS]
    return seen, held


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _draw_specs(rng: np.random.Generator, split: Split, count: int,
                referent: str) -> List[BlockSpec]:
    """Draw distinct colour x shape blocks; index 0 is the one to act on."""
    seen, held = _combos(split)
    if split.objects == 'held_out':
        first = _pick(rng, held)
        pool = [c for c in seen + held if c != first]
    else:
        first = _pick(rng, seen)
        pool = [c for c in seen if c != first]
    order = rng.permutation(len(pool))
    combos = [first] + [pool[k] for k in order[:count - 1]]
    if referent == 'colour_of':
        # The target's colour must be unique in the scene.
        others = [c for c in (seen if split.objects == 'train' else seen + held)
                  if c[0] != first[0]]
        order = rng.permutation(len(others))
        chosen: List[Tuple[str, str]] = []
        for k in order:
            if others[k][0] not in {c[0] for c in chosen}:
                chosen.append(others[k])
            if len(chosen) == count - 1:
                break
        combos = [first] + chosen
    sizes = [_pick(rng, SIZE_ORDER) for _ in combos]
    if referent in ('smallest', 'largest'):
        if referent == 'smallest':
            target_rank = int(rng.integers(0, 2))
            sizes = [SIZE_ORDER[target_rank]] + [
                SIZE_ORDER[int(rng.integers(target_rank + 1, 3))] for _ in combos[1:]]
        else:
            target_rank = int(rng.integers(1, 3))
            sizes = [SIZE_ORDER[target_rank]] + [
                SIZE_ORDER[int(rng.integers(0, target_rank))] for _ in combos[1:]]
    return [BlockSpec(c, s, z) for (c, s), z in zip(combos, sizes)]


def _place(rng: np.random.Generator, specs: List[BlockSpec]) -> Optional[List[Block]]:
    blocks: List[Block] = []
    for spec in specs:
        for _ in range(60):
            xy = rng.uniform(SPAWN_MIN, SPAWN_MAX)
            yaw = float(rng.uniform(0.0, 2.0 * math.pi))
            block = Block(spec, np.array([xy[0], xy[1], 0.0]), yaw)
            if all(footprint_gap(block, other) >= MIN_GAP for other in blocks):
                blocks.append(block)
                break
        else:
            return None
    return blocks


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _scene_ok(family: str, referent: str, blocks: List[Block], reference: Optional[int],
              anchor: Optional[int], region: Optional[str]) -> bool:
    x = blocks[0]
    xy = x.position[:2]
    if referent == 'closest':
        a = blocks[anchor]
        dists = sorted((float(np.linalg.norm(b.position[:2] - a.position[:2])), i)
                       for i, b in enumerate(blocks) if i != anchor)
        if dists[0][1] != 0 or dists[1][0] - dists[0][0] < CLOSEST_MARGIN:
            return False
    if family == 'move_to':
        x0, y0, x1, y1 = REGIONS[region]['box']
        if x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1:
            return False
        goal = np.array(REGIONS[region]['goal'])
        if np.linalg.norm(goal - xy) < 0.12:
            return False
        for other in blocks[1:]:
            room = float(np.linalg.norm(other.position[:2] - goal))
            if room < x.spec.radius + other.spec.radius + 0.04:
                return False
    if family == 'push_next_to':
        y = blocks[reference]
        if footprint_gap(x, y) < 0.08:
            return False
        direction = (y.position[:2] - xy) / np.linalg.norm(y.position[:2] - xy)
        behind = xy - direction * (x.spec.radius + 0.05)
        if not (0.20 <= behind[0] <= 0.56 and -0.19 <= behind[1] <= 0.19):
            return False
        for i, other in enumerate(blocks):
            if i in (0, reference):
                continue
            clearance = x.spec.radius + other.spec.radius + 0.02
            if _segment_distance(other.position[:2], behind, y.position[:2]) < clearance:
                return False
    return True


def _referent_phrase(rng: np.random.Generator, referent: str, blocks: List[Block],
                     anchor: Optional[int]) -> str:
    phrase = _pick(rng, REFERENT_PHRASES[referent])
    x = blocks[0].spec
    return phrase.format(name=x.name,
                         anchor=blocks[anchor].spec.name if anchor is not None else '',
                         thing=_pick(rng, COLOUR_OF_THINGS[x.colour]))


def make_episode(split: str, seed: int, family: Optional[str] = None,
                 variation: str = 'none') -> Episode:
    """
    Return the episode of a split for a seed (optionally forcing the task family).

    The block to act on is drawn first and then shuffled into a random position in the block
    list, so its index says nothing. `variation` changes only the look (a separate random
    stream), never the task or scene.
    """
    spec = get_split(split)
    if family is not None and family not in spec.families:
        raise ValueError(f'unknown family {family!r} for split {split}; '
                         f'families: {", ".join(spec.families)}')
    rng = np.random.default_rng([spec.salt, int(seed)])
    drawn_family = _pick(rng, spec.families)
    family = family or drawn_family
    template_ids = [t for t in spec.templates if t.startswith(family + '/')]
    template_id = _pick(rng, template_ids)
    referent = _pick(rng, spec.referents)
    # Drawn once: retrying a scene must not bias which regions (or tasks) come out.
    region = _pick(rng, sorted(REGIONS)) if family == 'move_to' else None
    count = _pick(rng, spec.block_counts)
    for _ in range(500):
        specs = _draw_specs(rng, spec, count, referent)
        blocks = _place(rng, specs)
        if blocks is None:
            continue
        reference = 1 if family in ('place_on', 'push_next_to') else None
        anchor = None
        if referent == 'closest':
            choices = [i for i in range(1, count) if i != reference]
            if not choices:
                continue
            anchor = _pick(rng, choices)
        if _scene_ok(family, referent, blocks, reference, anchor, region):
            break
    else:
        raise RuntimeError(f'no valid scene for {split} seed {seed} family {family}')
    phrase = _referent_phrase(rng, referent, blocks, anchor)
    order = rng.permutation(count).tolist()
    shuffled = [blocks[k] for k in order]
    where = {old: new for new, old in enumerate(order)}
    names = {'x': phrase,
             'y': blocks[reference].spec.name if reference is not None else '',
             'region': region or ''}
    instruction = TEMPLATES[family][template_id].format(**names)
    start = np.array(GRIPPER_HOME) + rng.uniform(-1.0, 1.0, size=3) * np.array([0.02, 0.03, 0.02])
    look = sample_look(np.random.default_rng([spec.salt, int(seed), 1]), variation)
    task = Task(split=split, seed=int(seed), family=family, referent=referent,
                template_id=template_id, instruction=instruction, target=where[0],
                reference=where[reference] if reference is not None else None,
                anchor=where[anchor] if anchor is not None else None, region=region)
    return Episode(task, shuffled, tuple(float(v) for v in start), look)


def describe_scene(sim: TabletopSim) -> List[Dict[str, Any]]:
    """List the blocks with the facts a question-answering data set can ask about."""
    out = []
    for i, block in enumerate(sim.blocks):
        out.append({'index': i, 'name': block.spec.name, 'colour': block.spec.colour,
                    'shape': block.spec.shape, 'size': block.spec.size,
                    'position': [float(v) for v in block.position],
                    'support': block.support})
    return out

"""
Vision-language data about sim scenes: the stand-in for RT-2's web VQA and captioning data.

RT-2's point is that what a VLM learns from web data - what things look like, what words mean,
which object a phrase refers to - transfers to control when robot data is co-trained with it.
No web data exists here, so this builds the same kinds of data about tabletop scenes:
captions, colours, shapes, counts, left/right, near/far, sizes, closeness, world knowledge
("what colour is a banana?") and grounding (pointing at the object a phrase refers to, like
RefCOCO data in PaLI's mixture), plus a small thesaurus of tabletop words (what a web corpus
teaches about "shove" and "push").

It deliberately covers what robot data does not: scenes are drawn from every colour x shape
combination (robot data never shows the held-out ones) and referring expressions use the
`reasoning` split's referent phrases (smallest, largest, closest to, colour of). It never
contains an instruction template or an evaluation episode: scenes come from this module's own
sampler, not from the splits. One question type, `reach` (outside the default mix), is answered
in action bins: the move from a random gripper pose towards hovering over a block a phrase
names - geometry, not a task's demonstration.
"""
from dataclasses import dataclass
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from rt2_ros.actions import load_action_space
from rt2_ros.actions.binning import values_to_bins
from rt2_ros.sim.expert import HOVER_CLEARANCE, saturate_step
from rt2_ros.sim.objects import BlockSpec, COLOUR_OF_THINGS, COLOURS, SHAPES, SIZE_ORDER
from rt2_ros.sim.render import CameraSpec, Renderer, sample_look
from rt2_ros.sim.splits import REFERENT_PHRASES
from rt2_ros.sim.world import Block, Gripper, TabletopSim
from rt2_ros.training.examples import ExampleSet, resize_image

CAMERA_SIZE = 224
SPAWN_MIN = (0.25, -0.20)
SPAWN_MAX = (0.56, 0.20)
MIN_GAP = 0.03
SIDE_MARGIN = 0.03        # left/right and near/far questions need this clear a difference
CLOSEST_MARGIN = 0.04
NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six')
_RT2_SPACE = load_action_space('rt2')   # the action space robot labels are written in
POINT_GRID = 256          # pointing answers are image coordinates in 0..255 (y then x)
BLOCK_RANGE = (2, 5)      # blocks per scene, inclusive (fewer: an easier grounding curriculum)

# A thesaurus entry: word -> the plainer word a reader would use. Generic English about moving
# things on a table (what web text teaches a language model), not instruction templates.
THESAURUS: Dict[str, str] = {
    'raise': 'lift', 'hoist': 'lift', 'elevate': 'lift', 'lift': 'raise',
    'grab': 'pick', 'grasp': 'pick', 'seize': 'grab', 'hold': 'grasp', 'take': 'pick',
    'nudge': 'push', 'shove': 'push', 'slide': 'push', 'press': 'push', 'push': 'shove',
    'carry': 'move', 'relocate': 'move', 'bring': 'move', 'transfer': 'move', 'shift': 'move',
    'set': 'put', 'place': 'put', 'stack': 'put', 'lay': 'put', 'put': 'place',
    'onto': 'on', 'atop': 'on', 'upon': 'on', 'beside': 'next', 'alongside': 'next',
    'near': 'next', 'towards': 'to', 'toward': 'to', 'biggest': 'largest', 'largest': 'biggest',
    'nearest': 'closest', 'closest': 'nearest', 'tiniest': 'smallest', 'smallest': 'tiniest',
}


@dataclass(frozen=True)
class SceneFacts:
    """A sampled scene and the facts questions are asked about."""

    specs: Tuple[BlockSpec, ...]
    xy: np.ndarray        # (N, 2) world positions
    pixels: np.ndarray    # (N, 2) image (row, col) of each block's top centre, 224 camera
    gripper_pixel: np.ndarray  # (2,) image (row, col) of the point between the fingertips
    gripper_xyz: Tuple[float, float, float]
    gripper_open: bool


def sample_scene(rng: np.random.Generator, variation: str = 'none',
                 block_range: Tuple[int, int] = BLOCK_RANGE
                 ) -> Tuple[TabletopSim, Renderer, SceneFacts]:
    """Draw blocks (any colour x shape, held-out combos included) and a gripper pose."""
    every = [(c, s) for c in COLOURS for s in SHAPES]
    while True:
        count = int(rng.integers(block_range[0], block_range[1] + 1))
        order = rng.permutation(len(every))[:count]
        specs = [BlockSpec(every[k][0], every[k][1], SIZE_ORDER[int(rng.integers(3))])
                 for k in order]
        blocks: List[Block] = []
        for spec in specs:
            for _ in range(60):
                xy = rng.uniform(SPAWN_MIN, SPAWN_MAX)
                block = Block(spec, np.array([xy[0], xy[1], 0.0]),
                              float(rng.uniform(0, 2 * math.pi)))
                if all(_gap(block, other) >= MIN_GAP for other in blocks):
                    blocks.append(block)
                    break
        if len(blocks) == count:
            break
    gripper_open = bool(rng.random() < 0.8)
    opening = 1.0 if gripper_open else 0.0
    tip = (float(rng.uniform(0.18, 0.58)), float(rng.uniform(-0.22, 0.22)),
           float(rng.uniform(0.09, 0.22)))
    sim = TabletopSim(blocks, Gripper(position=np.array(tip), opening=opening, target=opening))
    look = sample_look(rng, variation)
    renderer = Renderer(CameraSpec(width=CAMERA_SIZE, height=CAMERA_SIZE), look)
    points = np.array([[b.position[0], b.position[1], b.top] for b in sim.blocks] + [tip])
    pixels = renderer.pixels(sim, points)
    facts = SceneFacts(tuple(specs), np.array([b.position[:2] for b in sim.blocks]),
                       pixels[:-1], pixels[-1], tip, gripper_open)
    return sim, renderer, facts


def grid_point(pixel: np.ndarray, camera_size: int = CAMERA_SIZE) -> Tuple[int, int]:
    """Return a camera pixel (row, col) on the pointing answers' 0..255 grid."""
    row, col = np.clip(np.asarray(pixel) / camera_size * POINT_GRID, 0, POINT_GRID - 1).astype(int)
    return int(row), int(col)


def point_text(pixel: np.ndarray, camera_size: int = CAMERA_SIZE) -> str:
    """Write a camera pixel (row, col) as a pointing answer: 'row col' on the 0..255 grid."""
    row, col = grid_point(pixel, camera_size)
    return f'{row} {col}'


def _gap(a: Block, b: Block) -> float:
    return float(np.linalg.norm(a.position[:2] - b.position[:2])) - a.spec.radius - b.spec.radius


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ', '.join(items[:-1]) + ' and ' + items[-1]


def _size_rank(spec: BlockSpec) -> int:
    return SIZE_ORDER.index(spec.size)


def vqa_prompt(question: str) -> str:
    """Return the prompt for a question, in the Q/A form RT-2 also uses for actions."""
    return f'Q: {question} A:'


class QuestionMaker:
    """Questions with one right answer about a scene (a question without one is skipped)."""

    def __init__(self, facts: SceneFacts, rng: np.random.Generator) -> None:
        self.f = facts
        self.rng = rng
        self.names = [s.name for s in facts.specs]

    def _choice(self, items):
        return items[int(self.rng.integers(len(items)))]

    # -- referents (the reasoning split's phrases, resolved on this scene) -------------------

    def referents(self) -> List[Tuple[str, int]]:
        """(phrase, block index) pairs that pick exactly one block here."""
        specs, out = self.f.specs, []
        for i, name in enumerate(self.names):
            out.append((name, i))
        ranks = [_size_rank(s) for s in specs]
        smallest, largest = min(ranks), max(ranks)
        if ranks.count(smallest) == 1 and len(specs) > 1:
            out.append((self._choice(REFERENT_PHRASES['smallest']), ranks.index(smallest)))
        if ranks.count(largest) == 1 and len(specs) > 1:
            out.append((self._choice(REFERENT_PHRASES['largest']), ranks.index(largest)))
        if len(specs) >= 3:
            anchor = int(self.rng.integers(len(specs)))
            dist = np.linalg.norm(self.f.xy - self.f.xy[anchor], axis=1)
            dist[anchor] = np.inf
            order = np.argsort(dist)
            if dist[order[1]] - dist[order[0]] >= CLOSEST_MARGIN:
                phrase = self._choice(REFERENT_PHRASES['closest']).format(
                    anchor=self.names[anchor])
                out.append((phrase, int(order[0])))
        colours = [s.colour for s in specs]
        for i, colour in enumerate(colours):
            if colours.count(colour) == 1:
                thing = self._choice(COLOUR_OF_THINGS[colour])
                out.append((self._choice(REFERENT_PHRASES['colour_of']).format(thing=thing), i))
        return out

    # -- question types -----------------------------------------------------------------------

    def caption(self) -> Optional[Tuple[str, str]]:
        left_to_right = np.argsort(-self.f.xy[:, 1])
        words = [f'a {self.f.specs[i].size} {self.names[i]}' for i in left_to_right]
        prompt = self._choice(('caption the image', 'describe the scene', 'what is on the table?'))
        return prompt, _join(words)

    def count(self) -> Optional[Tuple[str, str]]:
        if self.rng.random() < 0.5:
            return 'how many blocks are there?', NUMBER_WORDS[len(self.names)]
        colour = self._choice(list(COLOURS))
        n = sum(s.colour == colour for s in self.f.specs)
        return f'how many {colour} blocks are there?', NUMBER_WORDS[n]

    def colour(self) -> Optional[Tuple[str, str]]:
        shapes = [s.shape for s in self.f.specs]
        i = int(self.rng.integers(len(shapes)))
        if shapes.count(shapes[i]) != 1:
            return None
        return f'what colour is the {shapes[i]}?', self.f.specs[i].colour

    def shape(self) -> Optional[Tuple[str, str]]:
        colours = [s.colour for s in self.f.specs]
        i = int(self.rng.integers(len(colours)))
        if colours.count(colours[i]) != 1:
            return None
        return f'what shape is the {colours[i]} block?', self.f.specs[i].shape

    def size(self) -> Optional[Tuple[str, str]]:
        i = int(self.rng.integers(len(self.names)))
        return f'what size is the {self.names[i]}?', self.f.specs[i].size

    def exists(self) -> Optional[Tuple[str, str]]:
        colour, shape = self._choice(list(COLOURS)), self._choice(SHAPES)
        if self.rng.random() < 0.5:
            i = int(self.rng.integers(len(self.names)))
            colour, shape = self.f.specs[i].colour, self.f.specs[i].shape
        present = any(s.colour == colour and s.shape == shape for s in self.f.specs)
        return f'is there a {colour} {shape}?', 'yes' if present else 'no'

    def _pair(self) -> Optional[Tuple[int, int]]:
        if len(self.names) < 2:
            return None
        a, b = self.rng.permutation(len(self.names))[:2]
        return int(a), int(b)

    def left_right(self) -> Optional[Tuple[str, str]]:
        pair = self._pair()
        if pair is None:
            return None
        a, b = pair
        dy = self.f.xy[a, 1] - self.f.xy[b, 1]
        if abs(dy) < SIDE_MARGIN:
            return None
        return (f'is the {self.names[a]} left or right of the {self.names[b]}?',
                'left' if dy > 0 else 'right')

    def near_far(self) -> Optional[Tuple[str, str]]:
        pair = self._pair()
        if pair is None:
            return None
        a, b = pair
        dx = self.f.xy[a, 0] - self.f.xy[b, 0]
        if abs(dx) < SIDE_MARGIN:
            return None
        return (f'which is closer to the robot, the {self.names[a]} or the {self.names[b]}?',
                self.names[a] if dx < 0 else self.names[b])

    def which(self) -> Optional[Tuple[str, str]]:
        referents = [r for r in self.referents() if r[0] != self.names[r[1]]]
        if not referents:
            return None
        phrase, i = self._choice(referents)
        return f'what is the {phrase}?', self.names[i]

    def point(self) -> Optional[Tuple[str, str]]:
        phrase, i = self._choice(self.referents())
        return f'where is the {phrase}?', point_text(self.f.pixels[i])

    def point_gripper(self) -> Optional[Tuple[str, str]]:
        return 'where is the gripper?', point_text(self.f.gripper_pixel)

    def reach(self) -> Optional[Tuple[str, str]]:
        """
        Ask which move takes the gripper towards hovering over a block, answered in action bins.

        Pointing puts the block and the gripper in image coordinates; an action needs their
        difference in the robot's frame, scaled and clipped like the expert's step. The robot
        data shows that mapping only for the one block each episode is about; this asks it for
        any block a phrase picks, on scenes with every colour x shape. The base sits at the
        world origin in these scenes, so world and base frames agree.
        """
        phrase, i = self._choice(self.referents())
        spec = self.f.specs[i]
        target = np.array([self.f.xy[i, 0], self.f.xy[i, 1], spec.height + HOVER_CLEARANCE])
        step = saturate_step(target - np.array(self.f.gripper_xyz))
        translation = _RT2_SPACE.indices('translation')
        action = np.zeros(_RT2_SPACE.size)
        action[translation] = step
        action[_RT2_SPACE.gripper_index] = 1.0
        bins = values_to_bins(_RT2_SPACE, action)[translation]
        return (f'what move puts the gripper over the {phrase}?',
                ' '.join(str(int(b)) for b in bins))

    def knowledge(self) -> Optional[Tuple[str, str]]:
        colour = self._choice(list(COLOUR_OF_THINGS))
        return f'what colour is {self._choice(COLOUR_OF_THINGS[colour])}?', colour

    def gripper(self) -> Optional[Tuple[str, str]]:
        return 'is the gripper open or closed?', 'open' if self.f.gripper_open else 'closed'

    def thesaurus(self) -> Optional[Tuple[str, str]]:
        word = self._choice(sorted(THESAURUS))
        prompt = self._choice(('what is another word for {w}?', 'what does {w} mean?'))
        return prompt.format(w=word), THESAURUS[word]


# Question type -> relative weight. Grounding (point, which) gets the most: it is what links a
# phrase to a place in the picture, which is what an action needs.
DEFAULT_WEIGHTS: Dict[str, float] = {
    'caption': 1.0, 'count': 0.6, 'colour': 0.6, 'shape': 0.6, 'size': 0.6, 'exists': 0.6,
    'left_right': 1.0, 'near_far': 0.6, 'which': 1.5, 'point': 3.0, 'point_gripper': 1.0,
    'knowledge': 0.5,
    'gripper': 0.3, 'thesaurus': 0.4,
}


# Every question type; `reach` is outside the default mix so that recipes written before it
# existed still reproduce their checkpoints.
QUESTION_TYPES: Tuple[str, ...] = tuple(DEFAULT_WEIGHTS) + ('reach',)


def question_kinds(weights: Dict[str, float]) -> List[str]:
    """Return the question types a weight table draws; ValueError for unknown types or none."""
    unknown = sorted(set(weights) - set(QUESTION_TYPES))
    if unknown:
        raise ValueError(f'unknown question types: {", ".join(unknown)}; known: '
                         f'{", ".join(QUESTION_TYPES)}')
    kinds = sorted(k for k, w in weights.items() if w > 0)
    if not kinds:
        raise ValueError('every question type has weight 0')
    return kinds


def vqa_examples(count: int, image_size: int, seed: int, questions_per_image: int = 4,
                 weights: Optional[Dict[str, float]] = None, variation: str = 'none',
                 progress: Optional[Callable[[int], None]] = None,
                 block_range: Tuple[int, int] = BLOCK_RANGE) -> ExampleSet:
    """Return `count` question/answer examples over count / questions_per_image scenes."""
    if not 1 <= block_range[0] <= block_range[1]:
        raise ValueError(f'block_range must be (low, high) with 1 <= low <= high, got '
                         f'{block_range!r}')
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    kinds = question_kinds(weights)
    p = np.array([weights[k] for k in kinds], dtype=float)
    p /= p.sum()
    rng = np.random.default_rng([int(seed), 0x7A]) if seed is not None else None
    images: List[np.ndarray] = []
    out = ExampleSet(images=np.zeros((0, image_size, image_size, 3), np.uint8))
    while len(out) < count:
        sim, renderer, facts = sample_scene(rng, variation, block_range)
        row = len(images)
        images.append(resize_image(renderer.render(sim), image_size))
        maker = QuestionMaker(facts, rng)
        asked = set()
        for _ in range(4 * questions_per_image):
            if len(asked) >= questions_per_image or len(out) >= count:
                break
            kind = kinds[int(rng.choice(len(kinds), p=p))]
            qa = getattr(maker, kind)()
            if qa is None or qa[0] in asked:
                continue
            asked.add(qa[0])
            out.add(row, vqa_prompt(qa[0]), qa[1], 'vqa', kind)
        if progress is not None:
            progress(len(out))
    out.images = np.stack(images) if images else out.images
    return out

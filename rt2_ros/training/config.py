"""
The training recipe as one reviewable record, saved beside every checkpoint.

Every number that changes the trained weights is here, so a checkpoint's `training.json` is
enough to reproduce it with `rt2 train --config training.json` (same seed, same threads).
"""
from dataclasses import asdict, dataclass, field, fields
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from rt2_ros.policy.prompts import PromptError, resolve_template
from rt2_ros.training.model import ModelSize


class TrainConfigError(ValueError):
    """A training recipe is inconsistent."""


@dataclass
class DaggerRound:
    """One DAgger round: roll the current model out, label its states with the expert."""

    at_step: int            # collect when training reaches this step
    episodes: int           # train-split episodes rolled out (seeds after the expert's)


# What a robot answer writes before its action: nothing (plain RT-2), or a grounded plan - the
# image points of where the hand is going and of the hand itself ('points'), after the point
# of the block the instruction names ('target_points'), those two dropped onto the table
# ('ground_points'), and with whether the fingers are open or closed ('ground_points_gripper';
# robot_data.planned_answer).
ROBOT_PLANS = ('none', 'points', 'target_points', 'ground_points', 'ground_points_gripper')
# Where is the <block>? / where is the gripper?: the questions of the grounding stages.
POINTING_QUESTIONS: Dict[str, float] = {'point': 3.0, 'point_gripper': 1.0}


def parse_blocks(text: str) -> List[int]:
    """Read a blocks-per-scene range, N or LOW-HIGH, as [low, high]."""
    low, _, high = text.partition('-')
    try:
        return [int(low), int(high or low)]
    except ValueError:
        raise TrainConfigError(f'expected N or LOW-HIGH blocks, got {text!r}') from None


def check_question_weights(weights: Dict[str, float], name: str) -> None:
    """Refuse a question mix with a negative weight or no positive one."""
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise TrainConfigError(f'{name}: question weights must be >= 0, with a positive weight')


@dataclass
class VqaStage:
    """
    A VQA-only stage at the start of the run, before co-fine-tuning.

    RT-2 starts from a vision-language model that already finds what a phrase names; a model
    trained from scratch here must learn that first. The grounding probe measured that it does
    when first asked where the only block is (one-block scenes) and then which of several
    blocks a name means, and not when it meets several blocks from the start (experiments/notes/
    why_the_bundled_model_fails.md). Each stage's batches are all its own questions.
    """

    steps: int
    blocks: List[int] = field(default_factory=lambda: [2, 5])   # [low, high] per scene
    examples: int = 16000
    questions: Dict[str, float] = field(default_factory=lambda: dict(POINTING_QUESTIONS))

    def validate(self, name: str = 'stage') -> None:
        if self.steps < 1 or self.examples < 1:
            raise TrainConfigError(f'{name} needs at least one step and example')
        if len(self.blocks) != 2 or not 1 <= self.blocks[0] <= self.blocks[1]:
            raise TrainConfigError(f'{name}: blocks must be [low, high] with 1 <= low <= high, '
                                   f'got {self.blocks!r}')
        check_question_weights(self.questions, name)

    @staticmethod
    def parse(text: str) -> 'VqaStage':
        """Read BLOCKS:STEPS (e.g. 1:1500 or 2-5:1500), the command-line form of a stage."""
        blocks, sep, steps = text.partition(':')
        try:
            if not sep:
                raise ValueError
            stage = VqaStage(steps=int(steps), blocks=parse_blocks(blocks))
        except (ValueError, TrainConfigError):
            raise TrainConfigError(f'expected BLOCKS:STEPS such as 1:1500 or 2-5:1500, '
                                   f'got {text!r}') from None
        stage.validate(f'stage {text!r}')
        return stage


@dataclass
class TrainConfig:
    """Data, model and optimisation settings of `rt2 train`."""

    seed: int = 0
    # -- robot data (a training split of the sim: train, train_one_block, train_two_blocks) --
    robot_split: str = 'train'
    robot_families: Optional[List[str]] = None  # force families (cycling over seeds)
    robot_episodes: int = 2500
    robot_first_seed: int = 0
    label: str = 'intended'            # DART: the expert's noise-free action as label
    robot_plan: str = 'none'           # else answers plan in image points, then act
    # the robot rows' prompt (rt2_ros.policy.prompts); `rt2_gripper` states the gripper's
    # opening, which the exported model then needs at run time (proprioception)
    prompt_template: str = 'rt2'
    dagger: List[DaggerRound] = field(default_factory=list)
    # share of each batch asking where the target, the gripper and the goal are on the robot
    # frames themselves (robot_data.grounding_questions); 0 = none
    grounding_fraction: float = 0.0
    # -- vision-language data --
    vqa_examples: int = 30000
    robot_fraction: float = 0.5        # share of each batch from robot data; 1.0 = robot only
    vqa_questions: Optional[Dict[str, float]] = None  # type -> weight; None: the default mix
    stages: List[VqaStage] = field(default_factory=list)  # VQA-only steps that open the run
    # -- model --
    model: ModelSize = field(default_factory=ModelSize)
    # -- optimisation --
    steps: int = 6000
    batch_size: int = 32
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ordinal_sigma: float = 4.0         # bins; soft targets for action / coordinate integers
    ordinal_weight: float = 0.5        # share of the soft target (0 = plain cross-entropy)
    structured_init: bool = True       # 2D sin-cos patch positions, ordered integer tokens
    # -- running --
    checkpoint_every: int = 500
    threads: int = 2
    workers: int = 2

    def validate(self) -> None:
        if not 0.0 < self.robot_fraction <= 1.0:
            raise TrainConfigError('robot_fraction must be in (0, 1]')
        if self.robot_fraction < 1.0 and self.vqa_examples < 1:
            raise TrainConfigError('robot_fraction < 1 needs vqa_examples > 0')
        from rt2_ros.sim.splits import get_split, TRAINING_SPLITS
        if self.robot_split not in TRAINING_SPLITS:
            raise TrainConfigError(f'robot_split must be one of {", ".join(TRAINING_SPLITS)}, '
                                   f'not {self.robot_split!r}')
        if self.robot_families is not None:
            allowed = get_split(self.robot_split).families
            bad = [f for f in self.robot_families if f not in allowed]
            if bad or not self.robot_families:
                raise TrainConfigError(f'robot_families must be a non-empty list of '
                                       f'{", ".join(allowed)} (split {self.robot_split})')
        if not 0.0 <= self.grounding_fraction < 1.0:
            raise TrainConfigError('grounding_fraction must be in [0, 1)')
        if self.label not in ('intended', 'executed'):
            raise TrainConfigError("label must be 'intended' or 'executed'")
        try:
            resolve_template(self.prompt_template)
        except PromptError as exc:
            raise TrainConfigError(f'prompt_template: {exc}') from None
        if self.robot_plan not in ROBOT_PLANS:
            raise TrainConfigError(f'robot_plan must be one of {", ".join(ROBOT_PLANS)}, not '
                                   f'{self.robot_plan!r}')
        for name in ('robot_episodes', 'steps', 'batch_size', 'threads', 'workers',
                     'checkpoint_every'):
            if int(getattr(self, name)) < 1:
                raise TrainConfigError(f'{name} must be at least 1')
        if self.robot_first_seed < 0 or self.seed < 0:
            raise TrainConfigError('seeds must be >= 0')
        if not 0 < self.min_learning_rate <= self.learning_rate:
            raise TrainConfigError('need 0 < min_learning_rate <= learning_rate')
        steps = [r.at_step for r in self.dagger]
        if steps != sorted(steps) or any(s < 1 or s >= self.steps for s in steps):
            raise TrainConfigError('DAgger rounds must be at increasing steps inside the run')
        if any(r.episodes < 1 for r in self.dagger):
            raise TrainConfigError('a DAgger round needs at least one episode')
        if self.vqa_questions is not None:
            check_question_weights(self.vqa_questions, 'vqa_questions')
        for k, stage in enumerate(self.stages):
            stage.validate(f'stage {k + 1}')
        if self.stages and self.stage_steps >= self.steps:
            raise TrainConfigError(f'the stages take {self.stage_steps} of {self.steps} steps; '
                                   'leave steps for the robot data')
        if self.dagger and self.dagger[0].at_step <= self.stage_steps:
            raise TrainConfigError('DAgger rounds must come after the VQA stages')

    @property
    def stage_steps(self) -> int:
        return sum(int(s.steps) for s in self.stages)

    def stage_at(self, step: int) -> Optional[Tuple[int, int]]:
        """Return (stage index, step within it) for a step inside the VQA stages, else None."""
        start = 0
        for k, stage in enumerate(self.stages):
            if step < start + stage.steps:
                return k, step - start
            start += stage.steps
        return None

    @property
    def robot_only(self) -> bool:
        return self.robot_fraction >= 1.0

    def train_seed_ranges(self) -> List[range]:
        """Every `train`-split seed range the run uses (evaluation must avoid them)."""
        ranges = [range(self.robot_first_seed, self.robot_first_seed + self.robot_episodes)]
        start = ranges[0].stop
        for r in self.dagger:
            ranges.append(range(start, start + r.episodes))
            start += r.episodes
        return ranges

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Dict[str, Any]) -> 'TrainConfig':
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainConfigError(f'unknown training settings: {", ".join(unknown)}')
        values = dict(data)
        if 'model' in values:
            model_known = {f.name for f in fields(ModelSize)}
            bad = sorted(set(values['model']) - model_known)
            if bad:
                raise TrainConfigError(f'unknown model settings: {", ".join(bad)}')
            values['model'] = ModelSize(**values['model'])
        try:
            if 'dagger' in values:
                values['dagger'] = [DaggerRound(**r) for r in values['dagger']]
            if 'stages' in values:
                values['stages'] = [VqaStage(**s) for s in values['stages']]
            config = TrainConfig(**values)
        except TypeError as exc:
            raise TrainConfigError(str(exc)) from None
        config.validate()
        return config

    @staticmethod
    def load(path: Union[str, Path]) -> 'TrainConfig':
        try:
            data = json.loads(Path(path).read_text(encoding='utf-8'))
        except (OSError, ValueError) as exc:
            raise TrainConfigError(f'cannot read {path}: {exc}') from None
        if isinstance(data, dict) and 'config' in data and isinstance(data['config'], dict):
            data = data['config']  # a checkpoint's training.json
        if not isinstance(data, dict):
            raise TrainConfigError(f'{path} is not a JSON object')
        return TrainConfig.from_dict(data)

"""
The training recipe as one reviewable record, saved beside every checkpoint.

Every number that changes the trained weights is here, so a checkpoint's `training.json` is
enough to reproduce it with `rt2 train --config training.json` (same seed, same threads).
"""
from dataclasses import asdict, dataclass, field, fields
import json
from pathlib import Path
from typing import Any, Dict, List, Union

from rt2_ros.training.model import ModelSize


class TrainConfigError(ValueError):
    """A training recipe is inconsistent."""


@dataclass
class DaggerRound:
    """One DAgger round: roll the current model out, label its states with the expert."""

    at_step: int            # collect when training reaches this step
    episodes: int           # train-split episodes rolled out (seeds after the expert's)


@dataclass
class TrainConfig:
    """Data, model and optimisation settings of `rt2 train`."""

    seed: int = 0
    # -- robot data (sim `train` split) --
    robot_episodes: int = 2500
    robot_first_seed: int = 0
    label: str = 'intended'            # DART: the expert's noise-free action as label
    dagger: List[DaggerRound] = field(default_factory=list)
    # -- vision-language data --
    vqa_examples: int = 30000
    robot_fraction: float = 0.5        # share of each batch from robot data; 1.0 = robot only
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
        if self.label not in ('intended', 'executed'):
            raise TrainConfigError("label must be 'intended' or 'executed'")
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
        if 'dagger' in values:
            values['dagger'] = [DaggerRound(**r) for r in values['dagger']]
        try:
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

"""
What `rt2 demo` runs: the episodes (split, family, seed) and the settings of the run.

Scenes come from the sim's splits: every episode is a pure function of (split, seed) with the
split's salt in the random generator, so the default split `seen` gives scenes the demo model
never trained on (it trains on `train`) while asking for the same kinds of tasks.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from rt2_ros.sim.splits import FAMILIES, get_split, VARIATION_LEVELS

DEFAULT_SPLIT = 'seen'
DEFAULT_EPISODES = 4
# A rung the demo picks by default must have been measured at least this good.
GOOD_RUNG = 0.75
MAX_SEED = 2**31 - 1  # rt2_sim's seed parameter range
VIDEO_FORMATS = ('gif', 'mp4', 'none')
TRAINING_SPLIT = 'train'


@dataclass(frozen=True)
class PlannedEpisode:
    """One episode to run: the sim's ~/reset parameters."""

    index: int
    split: str
    family: str
    seed: int
    variation: str = 'none'


def plan_episodes(split: str, families: Sequence[str], episodes: int, first_seed: int,
                  variation: str = 'none') -> List[PlannedEpisode]:
    """
    Return `episodes` episodes cycling through `families`, seeds first_seed, first_seed + 1, ...

    One seed per episode (not per family) so no two episodes share a scene. Raises ValueError
    for an unknown split, family or variation.
    """
    spec = get_split(split)
    if not families:
        raise ValueError('no task family given')
    for family in families:
        if family not in spec.families:
            raise ValueError(f'unknown family {family!r}; families: {", ".join(spec.families)}')
    if variation not in VARIATION_LEVELS:
        raise ValueError(f'unknown variation {variation!r}; one of {", ".join(VARIATION_LEVELS)}')
    if episodes < 1:
        raise ValueError('at least one episode')
    if not 0 <= first_seed <= MAX_SEED - (episodes - 1):
        raise ValueError(f'seeds {first_seed}..{first_seed + episodes - 1} are outside '
                         f'0..{MAX_SEED}')
    return [PlannedEpisode(i, split, families[i % len(families)], first_seed + i, variation)
            for i in range(episodes)]


@dataclass
class PolicyChoice:
    """
    The policy the controller is configured with, and how to describe it honestly.

    parameters are rt2_controller parameters (policy.*, action_space). trained is False for a
    randomly initialised model: its actions are valid but meaningless; None when unknown (a
    user's model or server). label is the short form written on every video frame.
    """

    parameters: Dict[str, Any]
    description: str
    trained: Optional[bool]
    label: str = ''


@dataclass
class DemoSettings:
    """Everything run_demo needs besides the policy."""

    plan: List[PlannedEpisode]
    out_dir: Path
    video: str = 'gif'
    headless: bool = True
    namespace: str = '/rt2_demo'
    max_decisions: int = 40
    episode_timeout_s: float = 30.0
    camera_rate_hz: float = 10.0
    linger_s: float = 1.0
    controller_overrides: Dict[str, Any] = field(default_factory=dict)
    verbose: bool = False


def all_families() -> List[str]:
    """Return the sim's task families in their canonical order."""
    return list(FAMILIES)


def default_split(rungs: Dict[str, Dict[str, Any]], families: Sequence[str] = ()) -> str:
    """
    Return the split a demo runs by default: the hardest rung the model is good at.

    Rungs are tried hardest first along the ladder (only those that have every family asked
    for). Without a good rung the demo runs the rung where the model does best, so a newcomer
    sees what it can do rather than a row of failures; with no success measured anywhere it
    runs DEFAULT_SPLIT, the model's tasks in scenes it never trained on.
    """
    from rt2_ros.sim.splits import LADDER
    usable = [split for split in LADDER if split in rungs and
              set(families) <= set(get_split(split).families)]
    rate = {split: float(rungs[split].get('success_rate', 0.0)) for split in usable}
    good = [split for split in usable if rate[split] >= GOOD_RUNG]
    if good:
        return good[-1]
    best = max(usable, key=rate.__getitem__, default=None)
    return best if best is not None and rate[best] > 0.0 else DEFAULT_SPLIT


def rung_summary(rungs: Dict[str, Dict[str, Any]]) -> str:
    """One line: the model's measured success per rung, easiest first."""
    from rt2_ros.sim.splits import LADDER
    parts = [f'{split} {100 * rungs[split]["success_rate"]:.0f} %'
             for split in LADDER if split in rungs]
    episodes = sorted({int(r.get('episodes', 0)) for r in rungs.values()})
    counted = f' ({"/".join(str(e) for e in episodes)} episodes each)' if episodes else ''
    return ', '.join(parts) + counted

"""
Action spaces as data: which dimensions a policy emits, their bounds, bins and meaning.

Each space is a YAML file (presets in config/action_spaces/). Keeping this out of code lets a team
move a model to a new robot by editing bounds, order or gripper convention without touching the
controller, and makes the units a reviewable artefact rather than a constant buried in a node.
"""
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from rt2_ros.actions.errors import ActionSpaceError
from rt2_ros.resources import find_data, share_roots
import yaml

ROLES = (
    'terminate', 'translation', 'rotation', 'gripper', 'base_translation', 'base_rotation',
    'other',
)
TOKENIZATIONS = ('text', 'vocab_ids')
BINNINGS = ('rt1_grid', 'openvla_centers')
ROUNDINGS = ('nearest', 'floor')
VOCAB_LAYOUTS = ('inverted_tail', 'block', 'table')
TERMINATE_LABEL = 'terminate'


@dataclass(frozen=True)
class Dimension:
    """One action dimension; discrete dims take the values 0..len(labels)-1."""

    name: str
    role: str
    kind: str
    low: float
    high: float
    bins: int
    unit: str = ''
    axis: Optional[str] = None
    labels: Tuple[str, ...] = ()

    @property
    def is_discrete(self) -> bool:
        return self.kind == 'discrete'

    @property
    def bin_width(self) -> float:
        """Distance between decoded values of neighbouring bins."""
        if self.is_discrete:
            return 1.0
        return (self.high - self.low) / (self.bins - 1)


@dataclass(frozen=True)
class VocabLayout:
    """
    Where the action bins live in a language model's vocabulary.

    inverted_tail: id = vocab_size - 1 - bin (OpenVLA). block: id = first_id + bin (PaLM-E style,
    overwritten rare tokens). table: id = ids[bin].
    """

    layout: str
    vocab_size: Optional[int] = None
    first_id: Optional[int] = None
    ids: Tuple[int, ...] = ()


@dataclass(frozen=True)
class ActionSpace:
    """A named, ordered set of dimensions plus how they are tokenized."""

    name: str
    description: str
    dimensions: Tuple[Dimension, ...]
    tokenization: str
    binning: str
    rounding: str
    bins: int
    nominal_rate_hz: float
    gripper_dimension: Optional[str]
    gripper_open_value: float
    gripper_closed_value: float
    vocab: Optional[VocabLayout] = None
    source: Optional[str] = None

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @property
    def size(self) -> int:
        return len(self.dimensions)

    def index(self, name: str) -> int:
        """Position of a dimension by name."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f'action space {self.name!r} has no dimension {name!r}') from None

    def indices(self, role: str) -> List[int]:
        """Positions of all dimensions with a role, in order (e.g. translation x, y, z)."""
        return [i for i, d in enumerate(self.dimensions) if d.role == role]

    @property
    def terminate_index(self) -> Optional[int]:
        found = self.indices('terminate')
        return found[0] if found else None

    @property
    def gripper_index(self) -> Optional[int]:
        return None if self.gripper_dimension is None else self.index(self.gripper_dimension)

    @property
    def lows(self) -> List[float]:
        return [d.low for d in self.dimensions]

    @property
    def highs(self) -> List[float]:
        return [d.high for d in self.dimensions]

    def gripper_openness(self, value: float) -> float:
        """Map the gripper dimension's value to 0 (closed) .. 1 (open), clipped."""
        span = self.gripper_open_value - self.gripper_closed_value
        fraction = (value - self.gripper_closed_value) / span
        return min(1.0, max(0.0, fraction))

    def with_vocab_size(self, vocab_size: int) -> 'ActionSpace':
        """Copy of an inverted-tail space for a language model with another vocabulary size."""
        if self.vocab is None or self.vocab.layout != 'inverted_tail':
            raise ActionSpaceError(
                f'action space {self.name!r} has no inverted_tail vocabulary; '
                '--vocab-size applies to vocabulary-id spaces like openvla')
        if vocab_size < self.bins:
            raise ActionSpaceError(f'vocab size {vocab_size} is smaller than {self.bins} bins')
        layout = VocabLayout('inverted_tail', vocab_size=int(vocab_size))
        return _replace(self, vocab=layout)


def _replace(space: ActionSpace, **changes: Any) -> ActionSpace:
    fields = dict(space.__dict__)
    fields.update(changes)
    return ActionSpace(**fields)


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ActionSpaceError(f'{where}: missing key {key!r}')
    return mapping[key]


def _choice(value: Any, allowed: Tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ActionSpaceError(f'{where}: {value!r} is not one of {", ".join(allowed)}')
    return str(value)


def _finite(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ActionSpaceError(f'{where}: {value!r} is not a number') from None
    if not math.isfinite(number):
        raise ActionSpaceError(f'{where}: {value!r} is not finite')
    return number


def _parse_dimension(raw: Any, bins: int, where: str) -> Dimension:
    if not isinstance(raw, Mapping):
        raise ActionSpaceError(f'{where}: a dimension must be a mapping, got {raw!r}')
    name = str(_require(raw, 'name', where))
    where = f'{where} ({name})'
    role = _choice(raw.get('role', 'other'), ROLES, f'{where} role')
    kind = _choice(_require(raw, 'type', where), ('continuous', 'discrete'), f'{where} type')
    axis = raw.get('axis')
    if kind == 'discrete':
        labels = tuple(str(label) for label in _require(raw, 'labels', where))
        if len(labels) < 2:
            raise ActionSpaceError(f'{where}: a discrete dimension needs at least 2 labels')
        return Dimension(name, role, kind, 0.0, float(len(labels) - 1), len(labels),
                         str(raw.get('unit', '')), axis, labels)
    low = _finite(_require(raw, 'low', where), f'{where} low')
    high = _finite(_require(raw, 'high', where), f'{where} high')
    if not low < high:
        raise ActionSpaceError(f'{where}: low {low} must be below high {high}')
    dim_bins = int(raw.get('bins', bins))
    if dim_bins < 2:
        raise ActionSpaceError(f'{where}: bins must be at least 2')
    return Dimension(name, role, kind, low, high, dim_bins, str(raw.get('unit', '')), axis)


def _parse_vocab(raw: Any, bins: int, where: str) -> VocabLayout:
    if not isinstance(raw, Mapping):
        raise ActionSpaceError(f'{where}: vocab must be a mapping')
    layout = _choice(raw.get('layout'), VOCAB_LAYOUTS, f'{where} vocab.layout')
    if layout == 'inverted_tail':
        size = int(_require(raw, 'vocab_size', f'{where} vocab'))
        if size < bins:
            raise ActionSpaceError(f'{where}: vocab_size {size} is smaller than {bins} bins')
        return VocabLayout(layout, vocab_size=size)
    if layout == 'block':
        first = int(_require(raw, 'first_id', f'{where} vocab'))
        if first < 0:
            raise ActionSpaceError(f'{where}: vocab.first_id must be >= 0')
        return VocabLayout(layout, first_id=first)
    ids = tuple(int(i) for i in _require(raw, 'ids', f'{where} vocab'))
    if len(ids) != bins or len(set(ids)) != bins or min(ids) < 0:
        raise ActionSpaceError(f'{where}: vocab.ids must be {bins} distinct non-negative ids')
    return VocabLayout(layout, ids=ids)


def parse_action_space(data: Mapping[str, Any], source: str = '<dict>') -> ActionSpace:
    """Validate a YAML mapping and build an ActionSpace; errors name the offending key."""
    if not isinstance(data, Mapping):
        raise ActionSpaceError(f'{source}: an action space must be a mapping')
    name = str(_require(data, 'name', source))
    tokenization = _choice(data.get('tokenization', 'text'), TOKENIZATIONS,
                           f'{source} tokenization')
    binning = _choice(data.get('binning', 'rt1_grid'), BINNINGS, f'{source} binning')
    rounding = _choice(data.get('rounding', 'nearest'), ROUNDINGS, f'{source} rounding')
    bins = int(data.get('bins', 256))
    raw_dims = _require(data, 'dimensions', source)
    if not isinstance(raw_dims, list) or not raw_dims:
        raise ActionSpaceError(f'{source}: dimensions must be a non-empty list')
    dims = tuple(_parse_dimension(raw, bins, f'{source} dimension {i}')
                 for i, raw in enumerate(raw_dims))
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise ActionSpaceError(f'{source}: dimension names must be unique, got {names}')
    if sum(d.role == 'terminate' for d in dims) > 1:
        raise ActionSpaceError(f'{source}: at most one terminate dimension')
    for dim in dims:
        if dim.role == 'terminate' and TERMINATE_LABEL not in dim.labels:
            raise ActionSpaceError(
                f'{source}: terminate dimension {dim.name!r} needs a {TERMINATE_LABEL!r} label')
    vocab = None
    if tokenization == 'vocab_ids':
        vocab = _parse_vocab(_require(data, 'vocab', source), bins, source)
        if any(d.bins > bins for d in dims):
            raise ActionSpaceError(f'{source}: a dimension has more bins than the vocab block')
    if binning == 'openvla_centers' and any(d.is_discrete for d in dims):
        raise ActionSpaceError(f'{source}: openvla_centers binning has no discrete dimensions')
    gripper = data.get('gripper') or {}
    gripper_dim = gripper.get('dimension')
    if gripper_dim is not None and gripper_dim not in names:
        raise ActionSpaceError(f'{source}: gripper.dimension {gripper_dim!r} is not a dimension')
    open_value = _finite(gripper.get('open_value', 1.0), f'{source} gripper.open_value')
    closed_value = _finite(gripper.get('closed_value', 0.0), f'{source} gripper.closed_value')
    if open_value == closed_value:
        raise ActionSpaceError(f'{source}: gripper open_value and closed_value must differ')
    rate = _finite(data.get('nominal_rate_hz', 3.0), f'{source} nominal_rate_hz')
    if rate <= 0:
        raise ActionSpaceError(f'{source}: nominal_rate_hz must be positive')
    return ActionSpace(
        name=name, description=str(data.get('description', '')), dimensions=dims,
        tokenization=tokenization, binning=binning, rounding=rounding, bins=bins,
        nominal_rate_hz=rate, gripper_dimension=gripper_dim, gripper_open_value=open_value,
        gripper_closed_value=closed_value, vocab=vocab, source=source)


def preset_names() -> List[str]:
    """Names of the shipped presets (files in config/action_spaces/)."""
    names = set()
    for root in share_roots():
        folder = root / 'config' / 'action_spaces'
        if folder.is_dir():
            names.update(p.stem for p in folder.glob('*.yaml'))
    return sorted(names)


def load_action_space(spec: Union[str, Path, Mapping[str, Any]]) -> ActionSpace:
    """Load a preset by name (rt2, openvla, rt1_mobile), a YAML path, or an already-parsed dict."""
    if isinstance(spec, Mapping):
        return parse_action_space(spec)
    text = str(spec)
    looks_like_path = text.endswith(('.yaml', '.yml')) or '/' in text or '\\' in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ActionSpaceError(f'action space file {text} does not exist')
    else:
        try:
            path = find_data('config', 'action_spaces', f'{text}.yaml')
        except FileNotFoundError:
            known = ', '.join(preset_names()) or 'none found'
            raise ActionSpaceError(
                f'unknown action space {text!r}; presets: {known}; or pass a YAML path') from None
    try:
        data: Dict[str, Any] = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as exc:
        raise ActionSpaceError(f'cannot read action space {path}: {exc}') from None
    return parse_action_space(data, source=str(path))

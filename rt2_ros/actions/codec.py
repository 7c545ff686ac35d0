"""
Action codecs: model output (text or vocabulary ids) <-> actions in an action space's units.

TextActionCodec writes each bin as a decimal integer, the PaLI-X way (RT-2-PaLI-X; also what an
OpenAI-compatible server returns), and reads the chain-of-thought form `Plan: ... Action: ...`.
VocabIdCodec maps bins to reserved vocabulary ids, the PaLM-E / OpenVLA way.
Decoding is strict: anything but exactly one valid action raises ActionDecodeError.
"""
from dataclasses import dataclass, field
import re
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from rt2_ros.actions.binning import bins_to_values, decoded_bounds, values_to_bins
from rt2_ros.actions.errors import ActionDecodeError, ActionEncodeError
from rt2_ros.actions.normalization import Unnormalizer
from rt2_ros.actions.regex import int_range_regex
from rt2_ros.actions.space import ActionSpace, TERMINATE_LABEL

MAX_TEXT_CHARS = 8192
_PLAN_RE = re.compile(r'plan\s*:', re.IGNORECASE)
_ACTION_RE = re.compile(r'action\s*:', re.IGNORECASE)
_INT_RE = re.compile(r'[0-9]+')
PLAN_MODES = ('none', 'optional', 'required')
DEFAULT_PLAN_CHARS = 200  # longest plan text the action regex allows


@dataclass(frozen=True)
class DecodedAction:
    """One validated action: values in the space's units plus what the model wrote."""

    space: str
    names: tuple
    values: np.ndarray
    bins: np.ndarray
    terminate: Optional[bool]
    labels: Dict[str, str] = field(default_factory=dict)
    plan: Optional[str] = None

    def value(self, name: str) -> float:
        return float(self.values[self.names.index(name)])

    def to_dict(self) -> Dict[str, Any]:
        return {
            'space': self.space,
            'names': list(self.names),
            'action': [float(v) for v in self.values],
            'bins': [int(b) for b in self.bins],
            'terminate': self.terminate,
            'labels': dict(self.labels),
            'plan': self.plan,
        }


class ActionCodec:
    """Shared bin logic; subclasses define the token representation."""

    def __init__(self, space: ActionSpace, unnormalizer: Optional[Unnormalizer] = None) -> None:
        if unnormalizer is not None and unnormalizer.q01.shape != (space.size,):
            raise ActionEncodeError(
                f'statistics have {unnormalizer.q01.shape[0]} dims, space {space.name} has '
                f'{space.size}')
        self.space = space
        self.unnormalizer = unnormalizer
        self._dim_bins = np.array([d.bins for d in space.dimensions], dtype=np.int64)

    def bounds(self) -> np.ndarray:
        """(2, n) smallest and largest decodable value per dimension, in output units."""
        raw = decoded_bounds(self.space)
        if self.unnormalizer is None:
            return raw
        mapped = self.unnormalizer.unnormalize(raw)
        return np.stack([mapped.min(axis=0), mapped.max(axis=0)])

    def values_to_bins(self, values: Sequence[float]) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if self.unnormalizer is not None:
            if array.ndim == 0 or array.shape[-1] != self.space.size:
                return values_to_bins(self.space, array)  # raises the shape error
            array = self.unnormalizer.normalize(array)
        return values_to_bins(self.space, array)

    def bins_to_values(self, bins: Sequence[int]) -> np.ndarray:
        values = bins_to_values(self.space, bins)
        if self.unnormalizer is not None:
            values = self.unnormalizer.unnormalize(values)
        return values

    def check_bins(self, bins: Sequence[int]) -> np.ndarray:
        """Validate a bin vector: right count, each inside its dimension's range."""
        array = np.asarray(bins, dtype=np.int64)
        if array.shape != (self.space.size,):
            raise ActionDecodeError(
                'count', f'expected {self.space.size} action tokens '
                f'({" ".join(self.space.names)}), got {array.size}')
        for i, dim in enumerate(self.space.dimensions):
            if not 0 <= array[i] < dim.bins:
                raise ActionDecodeError(
                    'out_of_range', f'token {i + 1} ({dim.name}) = {int(array[i])} is outside '
                    f'0..{dim.bins - 1}')
        return array

    def from_bins(self, bins: Sequence[int], plan: Optional[str] = None) -> DecodedAction:
        """Build a DecodedAction from bins (validated here)."""
        checked = self.check_bins(bins)
        values = self.bins_to_values(checked)
        labels = {d.name: d.labels[int(checked[i])]
                  for i, d in enumerate(self.space.dimensions) if d.is_discrete}
        terminate = None
        index = self.space.terminate_index
        if index is not None:
            terminate = labels[self.space.names[index]] == TERMINATE_LABEL
        return DecodedAction(self.space.name, self.space.names, values, checked, terminate,
                             labels, plan)


class TextActionCodec(ActionCodec):
    """Actions as space-separated decimal integers, optionally after `Plan: ... Action:`."""

    def encode(self, values: Sequence[float], plan: Optional[str] = None) -> str:
        bins = self.values_to_bins(values)
        if bins.ndim != 1:
            raise ActionEncodeError('encode takes one action, not a chunk')
        tokens = ' '.join(str(int(b)) for b in bins)
        if plan is None:
            return tokens
        if '\n' in plan or _ACTION_RE.search(plan):
            raise ActionEncodeError('a plan must be one line without "Action:"')
        text = plan.strip().rstrip('.').rstrip()
        if not text:
            raise ActionEncodeError('a plan must not be empty')
        return f'Plan: {text}. Action: {tokens}'

    def split_plan(self, text: str) -> tuple:
        """Split model text into (plan or None, action token text)."""
        body = text.strip()
        plan = None
        plan_match = _PLAN_RE.match(body)
        if plan_match:
            actions = list(_ACTION_RE.finditer(body, plan_match.end()))
            if not actions:
                raise ActionDecodeError('format', 'found "Plan:" but no "Action:" after it')
            last = actions[-1]
            plan = body[plan_match.end():last.start()].strip()
            if plan.endswith('.'):
                plan = plan[:-1].rstrip()
            body = body[last.end():]
        else:
            action_match = _ACTION_RE.match(body)
            if action_match:
                body = body[action_match.end():]
            elif _ACTION_RE.search(body) or _PLAN_RE.search(body):
                raise ActionDecodeError(
                    'format', 'unexpected text before "Plan:"/"Action:"; the output must start '
                    'with the plan or the action')
        return plan, body.strip()

    def decode(self, text: Union[str, bytes]) -> DecodedAction:
        """Parse model text into an action, or raise ActionDecodeError saying what was wrong."""
        if isinstance(text, bytes):
            try:
                text = text.decode('utf-8')
            except UnicodeDecodeError:
                raise ActionDecodeError('format', 'model output is not valid UTF-8') from None
        if not isinstance(text, str):
            raise ActionDecodeError('format', f'expected text, got {type(text).__name__}')
        if len(text) > MAX_TEXT_CHARS:
            raise ActionDecodeError('too_long', f'model output has {len(text)} characters, '
                                    f'more than {MAX_TEXT_CHARS}')
        if not text.strip():
            raise ActionDecodeError('empty', 'model output is empty')
        plan, body = self.split_plan(text)
        tokens = body.split()
        if not tokens:
            raise ActionDecodeError('empty', 'no action tokens after "Action:"')
        if len(tokens) != self.space.size:
            raise ActionDecodeError(
                'count', f'expected {self.space.size} action tokens '
                f'({" ".join(self.space.names)}), got {len(tokens)}')
        bins: List[int] = []
        for i, token in enumerate(tokens):
            if not _INT_RE.fullmatch(token) or len(token) > 6:
                shown = token if len(token) <= 20 else token[:20] + '...'
                raise ActionDecodeError(
                    'not_integer', f'token {i + 1} ({self.space.names[i]}) {shown!r} is not a '
                    'non-negative integer')
            bins.append(int(token))
        return self.from_bins(bins, plan)

    def token_regexes(self) -> List[str]:
        """Per-dimension regex of the valid integers, in order."""
        return [int_range_regex(0, d.bins - 1) for d in self.space.dimensions]

    def action_regex(self, plan: str = 'none', max_plan_chars: int = DEFAULT_PLAN_CHARS) -> str:
        r"""
        Regex for exactly one valid action string: the constraint sent to servers and used locally.

        plan: 'none' (bare action), 'optional' or 'required' (`Plan: <text>. Action: ...`).
        One optional leading space lets SentencePiece-style tokenizers write their usual "▁1"
        first token (decoding strips it). Plan text is printable ASCII (`[ -~]`), at most
        max_plan_chars characters, so the language is finite and its longest output is known
        (max_action_bytes), which bounds the tokens any decoding can take.
        """
        if plan not in PLAN_MODES:
            raise ValueError(f'plan must be none, optional or required, not {plan!r}')
        body = ' '.join(self.token_regexes())
        if plan != 'none':
            prefix = f'Plan: [ -~]{{1,{int(max_plan_chars)}}}\\. Action: '
            body = prefix + body if plan == 'required' else f'(?:{prefix})?{body}'
        return '(?: )?' + body

    def max_action_bytes(self, plan: str = 'none',
                         max_plan_chars: int = DEFAULT_PLAN_CHARS) -> int:
        """Return the longest string action_regex(plan, max_plan_chars) matches, in bytes."""
        digits = sum(len(str(d.bins - 1)) for d in self.space.dimensions)
        longest = 1 + digits + self.space.size - 1
        if plan != 'none':
            longest += len('Plan: ') + int(max_plan_chars) + len('. Action: ')
        return longest


class VocabIdCodec(ActionCodec):
    """Actions as one reserved vocabulary id per dimension."""

    def __init__(self, space: ActionSpace, unnormalizer: Optional[Unnormalizer] = None) -> None:
        if space.vocab is None:
            raise ActionEncodeError(f'action space {space.name} has no vocabulary layout')
        super().__init__(space, unnormalizer)
        vocab = space.vocab
        if vocab.layout == 'table':
            self._table = np.asarray(vocab.ids, dtype=np.int64)
            self._lookup = {int(token): b for b, token in enumerate(vocab.ids)}

    def bin_to_id(self, bins: np.ndarray) -> np.ndarray:
        vocab = self.space.vocab
        array = np.asarray(bins, dtype=np.int64)
        if vocab.layout == 'inverted_tail':
            return vocab.vocab_size - 1 - array
        if vocab.layout == 'block':
            return vocab.first_id + array
        return self._table[array]

    def id_to_bin(self, token_id: int) -> int:
        """Bin of one id, or ActionDecodeError('outside_block') for an id outside the block."""
        vocab = self.space.vocab
        bins = self.space.bins
        if vocab.layout == 'inverted_tail':
            offset = vocab.vocab_size - 1 - token_id
        elif vocab.layout == 'block':
            offset = token_id - vocab.first_id
        else:
            offset = self._lookup.get(token_id, -1)
        if not 0 <= offset < bins:
            raise ActionDecodeError('outside_block',
                                    f'token id {token_id} is outside the action block '
                                    f'{self.describe_block()}')
        return offset

    def describe_block(self) -> str:
        ids = self.block_ids()
        if self.space.vocab.layout == 'table':
            return f'({len(ids)} listed ids)'
        return f'{int(ids.min())}..{int(ids.max())}'

    def block_ids(self) -> np.ndarray:
        """All ids of the action block, indexed by bin."""
        return self.bin_to_id(np.arange(self.space.bins))

    def allowed_ids(self, position: int) -> np.ndarray:
        """Ids a constrained decoder may emit for the dimension at position."""
        dim = self.space.dimensions[position]
        return self.bin_to_id(np.arange(dim.bins))

    def encode(self, values: Sequence[float]) -> List[int]:
        bins = self.values_to_bins(values)
        if bins.ndim != 1:
            raise ActionEncodeError('encode takes one action, not a chunk')
        return [int(i) for i in self.bin_to_id(bins)]

    def decode(self, token_ids: Sequence[Any]) -> DecodedAction:
        """Decode ids into an action; wrong count, non-integers and foreign ids raise."""
        try:
            items = list(token_ids)
        except TypeError:
            raise ActionDecodeError('format', 'token ids must be a sequence of integers') from None
        if not items:
            raise ActionDecodeError('empty', 'no token ids')
        if len(items) != self.space.size:
            raise ActionDecodeError(
                'count', f'expected {self.space.size} token ids ({" ".join(self.space.names)}), '
                f'got {len(items)}')
        bins = []
        for i, item in enumerate(items):
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
                raise ActionDecodeError('not_integer',
                                        f'token {i + 1} ({self.space.names[i]}) {item!r} is not '
                                        'an integer id')
            bins.append(self.id_to_bin(int(item)))
        return self.from_bins(bins)


Codec = Union[TextActionCodec, VocabIdCodec]


def make_codec(space: ActionSpace, unnormalizer: Optional[Unnormalizer] = None) -> Codec:
    """Build the codec the space's tokenization calls for."""
    if space.tokenization == 'vocab_ids':
        return VocabIdCodec(space, unnormalizer)
    return TextActionCodec(space, unnormalizer)

"""
Constrained decoding for torch models: automaton states -> logits masks, per batch row.

A thin layer over rt2_ros.decoding.automaton. Masks are built once per (automaton state, budget
class) and cached on the device, so a decoding step costs one dictionary lookup per row and one
masked fill, not work proportional to the vocabulary. The same RowConstraints object drives both
rt2_ros's own decoding loop and transformers' `generate` (through ConstrainedLogitsProcessor and
ConstraintStoppingCriteria), so either path enforces the identical language.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from rt2_ros.decoding.automaton import TokenAutomaton
from rt2_ros.decoding.regex_dfa import ConstraintError
import torch
from transformers import LogitsProcessor, StoppingCriteria


class MaskTable:
    """
    Boolean masks (logits width) for the states of one automaton, built on first use.

    At most max_masks are kept (a lazily explored regex can visit a new state every step, and a
    mask of a 256k vocabulary is 256 kB of device memory); beyond that the cache starts over.
    """

    def __init__(self, automaton: TokenAutomaton, width: int, device: torch.device,
                 max_masks: int = 512) -> None:
        self.automaton = automaton
        self.width = int(width)
        self.device = device
        self.max_masks = max_masks
        self._masks: Dict[Tuple[int, int], torch.Tensor] = {}
        self._eos_only: Optional[torch.Tensor] = None

    def mask(self, state: int, budget: int) -> torch.Tensor:
        key = (state, min(budget, self.automaton.budget_cap(state)))
        cached = self._masks.get(key)
        if cached is None:
            ids = self.automaton.allowed(state, key[1])
            if ids.size and int(ids[-1]) >= self.width:
                raise ConstraintError(f'constraint allows token id {int(ids[-1])} but the model '
                                      f'has only {self.width} logits')
            cached = torch.zeros(self.width, dtype=torch.bool)
            cached[torch.from_numpy(ids)] = True
            cached = cached.to(self.device)
            if len(self._masks) >= self.max_masks:
                self._masks.clear()
            self._masks[key] = cached
        return cached

    def eos_only(self) -> torch.Tensor:
        """Mask for rows that are finished (what they emit is discarded)."""
        if self._eos_only is None:
            mask = torch.zeros(self.width, dtype=torch.bool)
            ids = self.automaton.eos_ids
            mask[torch.from_numpy(ids[ids < self.width])] = True
            if not mask.any():
                mask[0] = True
            self._eos_only = mask.to(self.device)
        return self._eos_only


class RowConstraints:
    """
    Per-row automaton state and token budget for one batched generation.

    Rows without a constraint (None) are free text that ends at an EOS id or the budget.
    """

    def __init__(self, tables: Sequence[Optional[MaskTable]], max_new_tokens: int,
                 eos_ids: Sequence[int]) -> None:
        self.tables = list(tables)
        self.eos_ids = {int(i) for i in eos_ids}
        self.states: List[Optional[int]] = []
        self.budgets = [int(max_new_tokens)] * len(self.tables)
        self.finished = [False] * len(self.tables)
        self.tokens: List[List[int]] = [[] for _ in self.tables]
        for table in self.tables:
            if table is None:
                self.states.append(None)
                continue
            automaton = table.automaton
            if automaton.min_tokens > max_new_tokens:
                raise ConstraintError(
                    f'max_new_tokens {max_new_tokens} is too small: a valid output needs at '
                    f'least {automaton.min_tokens} tokens')
            self.states.append(automaton.start)
        for row in range(len(self.tables)):
            self._check_finished(row)

    @property
    def all_finished(self) -> bool:
        return all(self.finished)

    def constrained(self) -> bool:
        return any(table is not None for table in self.tables)

    def masks(self) -> Optional[torch.Tensor]:
        """(rows, width) allowed-token masks, or None when no row is constrained."""
        if not self.constrained():
            return None
        rows = []
        for row, table in enumerate(self.tables):
            if table is None:
                rows.append(None)
            elif self.finished[row]:
                rows.append(table.eos_only())
            else:
                rows.append(table.mask(self.states[row], self.budgets[row]))
        reference = next(m for m in rows if m is not None)
        filled = [m if m is not None else torch.ones_like(reference) for m in rows]
        return torch.stack(filled)

    def apply(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores with every disallowed token at -inf (a new tensor)."""
        masks = self.masks()
        if masks is None:
            return scores
        width = min(scores.shape[-1], masks.shape[-1])
        out = torch.full_like(scores, float('-inf'))
        out[:, :width] = scores[:, :width].masked_fill(~masks[:, :width], float('-inf'))
        return out

    def advance(self, tokens: Sequence[int]) -> None:
        """Consume one new token per row; ConstraintError if a constrained row broke its rule."""
        for row, token in enumerate(tokens):
            if self.finished[row]:
                continue
            token = int(token)
            self.budgets[row] -= 1
            table = self.tables[row]
            if token in self.eos_ids or (table is not None and table.automaton.is_eos(token)):
                if table is not None and not table.automaton.accepting(self.states[row]):
                    raise ConstraintError(f'row {row}: end of text before the output was complete')
                self.finished[row] = True
                continue
            if table is not None:
                self.states[row] = table.automaton.advance(self.states[row], token)
            self.tokens[row].append(token)
            self._check_finished(row)

    def _check_finished(self, row: int) -> None:
        table = self.tables[row]
        state = self.states[row]
        if table is not None and table.automaton.must_stop(state):
            self.finished[row] = True
        elif self.budgets[row] <= 0:
            if table is not None and not table.automaton.accepting(state):
                raise ConstraintError(f'row {row}: token budget spent before the output was '
                                      'complete')
            self.finished[row] = True


class ConstrainedLogitsProcessor(LogitsProcessor):
    """
    transformers LogitsProcessor enforcing RowConstraints inside `model.generate`.

    It reads the tokens generate appended since its last call, so it needs no hooks; use it with
    ConstraintStoppingCriteria(self) to end rows as soon as their output is complete.
    """

    def __init__(self, rows: RowConstraints) -> None:
        self.rows = rows
        self._prompt_length: Optional[int] = None
        self._seen = 0

    def sync(self, input_ids: torch.Tensor) -> None:
        if self._prompt_length is None:
            self._prompt_length = int(input_ids.shape[1])
            return
        generated = int(input_ids.shape[1]) - self._prompt_length
        while self._seen < generated:
            column = input_ids[:, self._prompt_length + self._seen]
            self.rows.advance(column.tolist())
            self._seen += 1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        self.sync(input_ids)
        return self.rows.apply(scores)


class ConstraintStoppingCriteria(StoppingCriteria):
    """Stop each row of `generate` once its constrained output is complete."""

    def __init__(self, processor: ConstrainedLogitsProcessor) -> None:
        self.processor = processor

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs) -> torch.BoolTensor:
        self.processor.sync(input_ids)
        return torch.tensor(self.processor.rows.finished, dtype=torch.bool,
                            device=input_ids.device)

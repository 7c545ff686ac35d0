"""
Constrained decoding inside transformers' `model.generate`, through llguidance.

RT-2 only lets a model write valid action tokens. The constraint is a grammar: for text action
spaces the action space's own regex (TextActionCodec.action_regex, the one the openai backend
sends to vLLM, whose `guidance` backend is this same library), for vocabulary-id spaces (OpenVLA)
a grammar of token-id ranges, one per dimension. llguidance turns it into a mask of the tokens
that may come next, for any fast tokenizer (byte-level BPE, SentencePiece with byte fallback,
integers written as one token or digit by digit), computed per step without an up-front index.

GuidedLogitsProcessor applies the masks for a batch (one matcher per row, None = free text) and
GuidedStoppingCriteria ends a row once its output is complete, so no step is spent on an end
token the grammar already implies. Both read the tokens generate appended since their last call,
so the same objects serve greedy and sampled generation of any architecture.

A constraint is a help, never the safety check: callers decode the output strictly afterwards.
"""
from typing import Any, List, Optional, Sequence

import numpy as np
from rt2_ros.actions.codec import Codec, TextActionCodec, VocabIdCodec
from rt2_ros.decoding import ConstraintError
import torch
from transformers import LogitsProcessor, StoppingCriteria


def llguidance_tokenizer(tokenizer: Any, width: int, eos_ids: Sequence[int]) -> Any:
    """
    Return llguidance's view of a transformers tokenizer, for logits of `width` ids.

    Built once per model (it reads the whole vocabulary); width may exceed the tokenizer when
    a model pads its embedding matrix, and those ids are never allowed.
    """
    import llguidance.hf
    try:
        return llguidance.hf.from_tokenizer(tokenizer, n_vocab=int(width),
                                            eos_token=[int(i) for i in eos_ids])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ConstraintError(f'cannot constrain this tokenizer: {exc}') from None


def action_grammar(codec: Codec, plan: str = 'none') -> str:
    """
    Return the llguidance grammar of one action of codec's space.

    Text spaces: the codec's regex (the same one served models get). Vocabulary-id spaces:
    dimension i may only be one of its reserved ids, written as token-id ranges.
    """
    import llguidance
    if isinstance(codec, TextActionCodec):
        return llguidance.LLMatcher.grammar_from_regex(codec.action_regex(plan))
    if not isinstance(codec, VocabIdCodec):
        raise ConstraintError(f'no grammar for {type(codec).__name__}')
    if plan != 'none':
        raise ConstraintError('chain-of-thought plans need a text action space')
    items = []
    for position in range(codec.space.size):
        ids = sorted(int(i) for i in codec.allowed_ids(position))
        items.append('<[' + ','.join(_id_ranges(ids)) + ']>')
    return llguidance.LLMatcher.grammar_from_lark('start: ' + ' '.join(items))


def action_token_budget(codec: Codec, plan: str = 'none') -> int:
    """
    Return max_new_tokens that lets every valid action finish, end token included.

    Every token of a text action writes at least one byte, so the longest string of the action
    language (in bytes) plus the end token bounds any decoding; a vocabulary-id action is one
    token per dimension plus the end token.
    """
    if isinstance(codec, TextActionCodec):
        return codec.max_action_bytes(plan) + 1
    return codec.space.size + 1


def _id_ranges(ids: List[int]) -> List[str]:
    """Write sorted ids as llguidance token ranges: 5-9,12,20-30."""
    out: List[str] = []
    start = previous = ids[0]
    for token in ids[1:] + [None]:
        if token is not None and token == previous + 1:
            previous = token
            continue
        out.append(str(start) if start == previous else f'{start}-{previous}')
        if token is not None:
            start = previous = token
    return out


class Constraint:
    """One compiled grammar for one tokenizer; hands out a fresh matcher per generated row."""

    def __init__(self, lltokenizer: Any, grammar: str) -> None:
        import llguidance
        self._template = llguidance.LLMatcher(lltokenizer, grammar, log_level=0)
        if self._template.is_error():
            raise ConstraintError(self._template.get_error())

    def matcher(self) -> Any:
        return self._template.deep_copy()


class GuidedLogitsProcessor(LogitsProcessor):
    """
    Mask each row's logits to the tokens its matcher allows (rows with None are free text).

    Rows that are complete are left alone: GuidedStoppingCriteria has told generate they are
    finished, and generate writes the pad token in them whatever they score.
    """

    def __init__(self, matchers: Sequence[Optional[Any]], width: int,
                 eos_ids: Sequence[int]) -> None:
        self.matchers = list(matchers)
        self.width = int(width)
        self.eos_ids = sorted({int(i) for i in eos_ids})
        self.tokens: List[List[int]] = [[] for _ in self.matchers]
        self.ended = [False] * len(self.matchers)
        self._prompt_length: Optional[int] = None
        self._seen = 0
        words = (self.width + 31) // 32
        self._bitmask = np.zeros((len(self.matchers), words), dtype=np.int32)
        self._pointers = [int(self._bitmask[i].ctypes.data) for i in range(len(self.matchers))]
        self._finished = torch.zeros(len(self.matchers), dtype=torch.bool)

    def sync(self, input_ids: torch.Tensor) -> None:
        """Feed every token generate appended since the last call to its row's matcher."""
        if self._prompt_length is None:
            self._prompt_length = int(input_ids.shape[1])
            return
        generated = int(input_ids.shape[1]) - self._prompt_length
        while self._seen < generated:
            column = input_ids[:, self._prompt_length + self._seen].tolist()
            self._seen += 1
            for row, token in enumerate(column):
                self._advance(row, int(token))

    def _advance(self, row: int, token: int) -> None:
        if self.ended[row]:
            return
        matcher = self.matchers[row]
        if matcher is None:
            if token in self.eos_ids:
                self.ended[row] = True
            else:
                self.tokens[row].append(token)
            return
        if not matcher.consume_token(token):
            raise ConstraintError(f'row {row}: token {token} broke the constraint '
                                  f'({matcher.get_error()})')
        if token not in self.eos_ids:
            self.tokens[row].append(token)
        if matcher.is_stopped():
            self.ended[row] = True

    def finished(self, device: Any = None) -> torch.Tensor:
        """Tell per row whether its output is complete (constrained) or ended (free)."""
        if any(self.ended):
            self._finished = torch.tensor(self.ended, dtype=torch.bool)
        return self._finished if device is None else self._finished.to(device)

    def complete(self, row: int) -> bool:
        """Whether row's output is a whole sentence of its grammar (free rows: always)."""
        matcher = self.matchers[row]
        return matcher is None or matcher.is_accepting()

    def disallowed(self, rows: Sequence[int]) -> torch.Tensor:
        """(len(rows), width) masks, true for the tokens each of rows may not write next."""
        for index, row in enumerate(rows):
            matcher = self.matchers[row]
            matcher.unsafe_compute_mask_ptr(self._pointers[index], self._bitmask.shape[1] * 4)
            if matcher.is_error():
                raise ConstraintError(f'row {row}: {matcher.get_error()}')
        bits = np.unpackbits(self._bitmask[:len(rows)].view(np.uint8), axis=1,
                             count=self.width, bitorder='little')
        return torch.from_numpy(bits) == 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        self.sync(input_ids)
        # Rows generate has finished get the pad token whatever they score; free rows are free.
        rows = [row for row, matcher in enumerate(self.matchers)
                if matcher is not None and not self.ended[row]]
        if not rows:
            return scores
        disallowed = self.disallowed(rows).to(scores.device)
        width = min(scores.shape[-1], self.width)
        if len(rows) == len(self.matchers) and width == scores.shape[-1]:
            return scores.masked_fill(disallowed, float('-inf'))
        out = scores.clone()
        index = torch.tensor(rows, device=scores.device)
        picked = torch.full((len(rows), scores.shape[-1]), float('-inf'), dtype=scores.dtype,
                            device=scores.device)
        picked[:, :width] = scores[index, :width].masked_fill(disallowed[:, :width],
                                                              float('-inf'))
        out[index] = picked
        return out


class GuidedStoppingCriteria(StoppingCriteria):
    """End each row of `generate` as soon as its constrained output is complete."""

    def __init__(self, processor: GuidedLogitsProcessor) -> None:
        self.processor = processor

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs: Any) -> torch.BoolTensor:
        self.processor.sync(input_ids)
        return self.processor.finished(input_ids.device)

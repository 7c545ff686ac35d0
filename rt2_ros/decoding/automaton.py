"""
Token-level automata for constrained decoding: which token ids may come next, per state.

A model writes tokens, a constraint speaks characters (or, for vocabulary-id action spaces, ids).
A TokenAutomaton lifts a character DFA onto a vocabulary once, up front: from each reachable
state it walks the vocabulary as a trie, keeping the tokens whose whole text keeps the DFA alive,
and records where each leads. Nothing here depends on how a tokenizer splits text - integers as
single tokens (PaLI-X), digits one by one, or pieces like " 12" or "5 1" all work, because a
token is judged by its characters alone.

Every state also knows `dist`, the fewest tokens still needed to reach an accepting state. With a
token budget this makes termination a guarantee instead of a hope: a token is allowed only if the
output can still be completed within the tokens left, so a random model must finish with a valid
string by max_new_tokens (a plan in chain-of-thought form is cut short and closed in time).

A regex whose automaton is too large to enumerate (counted repeats of broad classes) gets a
LazyRegexAutomaton instead, which explores states as generation reaches them.

This module is torch-free so it can be property-tested directly; rt2_ros.decoding.logits turns
its id arrays into logits masks.
"""
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from typing import (
    Callable, Dict, Hashable, Iterable, Iterator, List, Optional, Sequence, Tuple,
)

import numpy as np

from rt2_ros.actions.codec import Codec, TextActionCodec, VocabIdCodec
from rt2_ros.decoding.regex_dfa import CharDfa, ConstraintError

MAX_TOKEN_STATES = 20_000
MAX_CACHED = 4096  # per-automaton cache entries kept before the cache is dropped and rebuilt
UNREACHABLE = 1 << 30
PLAN_MODES = ('none', 'optional', 'required')
# Plan text in the chain-of-thought form: readable words, no '.', ':' or newline, so the first
# ". Action: " ends the plan and the codec's Plan/Action split can never be confused.
PLAN_TEXT_REGEX = "[A-Za-z0-9][A-Za-z0-9 ,'_-]*"


class VocabTrie:
    """
    A vocabulary's token texts, sorted, walked as a trie without one object per character.

    Tokens sharing a prefix are contiguous in sorted order, so a trie node is a (lo, hi, depth)
    range and its children are found by bisection; a walk visits only the prefixes the DFA keeps
    alive, which for action states is a handful out of the whole vocabulary.
    """

    def __init__(self, texts: Sequence[Optional[str]]) -> None:
        pairs = sorted((text, i) for i, text in enumerate(texts) if text)
        self._keys = [text for text, _ in pairs]
        self._ids = [i for _, i in pairs]

    def __len__(self) -> int:
        return len(self._keys)

    def walk(self, step: Callable[[Hashable, str], Optional[Hashable]],
             state: Hashable) -> Iterator[Tuple[int, Hashable]]:
        """Yield (token id, state after its text) for every token the DFA survives from state."""
        keys, ids = self._keys, self._ids
        stack = [(0, len(keys), 0, state)]
        while stack:
            lo, hi, depth, current = stack.pop()
            i = lo
            while depth and i < hi and len(keys[i]) == depth:
                yield ids[i], current
                i += 1
            while i < hi:
                key = keys[i]
                ch = key[depth]
                if ord(ch) == 0x10FFFF:
                    j = hi
                else:
                    j = bisect_left(keys, key[:depth] + chr(ord(ch) + 1), i, hi)
                following = step(current, ch)
                if following is not None:
                    stack.append((i, j, depth + 1, following))
                i = j


@dataclass
class _State:
    ids: np.ndarray        # allowed (non-EOS) token ids, sorted by the dist of their target
    nexts: np.ndarray      # target state per id
    dists: np.ndarray      # dist of the target per id (ascending)
    lookup: Dict[int, int]
    accepting: bool
    dist: int


def _make_state(out: List[Tuple[int, int]], dist_of: Callable[[int], int], accepting: bool,
                dist: int) -> _State:
    live = [(token, target) for token, target in out if dist_of(target) < UNREACHABLE]
    live.sort(key=lambda pair: (dist_of(pair[1]), pair[0]))
    ids = np.array([t for t, _ in live], dtype=np.int64)
    nexts = np.array([s for _, s in live], dtype=np.int64)
    dists = np.array([dist_of(s) for _, s in live], dtype=np.int64)
    return _State(ids, nexts, dists, dict(live), accepting, dist)


class _TooLarge(ConstraintError):
    """Eager exploration exceeded its limits (the caller may fall back to a lazy automaton)."""


class TokenAutomaton:
    """
    Allowed next tokens per state of one constraint, with a token budget.

    States are small ints; `start` is where generation begins. A row is finished when it emitted
    an EOS id from an accepting state, when it reaches a `must_stop` state (accepting, nothing may
    follow - the EOS step is then implied and skipped) or when its budget is spent (only possible
    in an accepting state). This class holds every state, explored up front (`exact`: dist is
    the true fewest-token count and dead ends are pruned for the given vocabulary).
    """

    exact = True

    def __init__(self, states: List[_State], start: int, eos_ids: Sequence[int],
                 longest: Optional[int]) -> None:
        self._states = states
        self.start = start
        self.eos_ids = np.array(sorted({int(i) for i in eos_ids}), dtype=np.int64)
        self._eos = {int(i) for i in self.eos_ids}
        self.longest = longest
        self._allowed: Dict[Tuple[int, int], np.ndarray] = {}

    @classmethod
    def build(cls, start: Hashable,
              expand: Callable[[Hashable], Iterable[Tuple[int, Hashable]]],
              accepting: Callable[[Hashable], bool], eos_ids: Sequence[int],
              max_states: int = MAX_TOKEN_STATES,
              max_edges: Optional[int] = None) -> 'TokenAutomaton':
        """Explore every state reachable from start through expand, then prune dead ends."""
        index: Dict[Hashable, int] = {start: 0}
        keys: List[Hashable] = [start]
        edges: List[List[Tuple[int, int]]] = []
        total = 0
        queue = deque([start])
        while queue:
            key = queue.popleft()
            out: List[Tuple[int, int]] = []
            for token, target in expand(key):
                if target not in index:
                    if len(keys) >= max_states:
                        raise _TooLarge(
                            f'constraint needs more than {max_states} token-level states')
                    index[target] = len(keys)
                    keys.append(target)
                    queue.append(target)
                out.append((int(token), index[target]))
            total += len(out)
            if max_edges is not None and total > max_edges:
                raise _TooLarge(f'constraint needs more than {max_edges} token transitions')
            edges.append(out)
        accept = [bool(accepting(k)) for k in keys]
        dist = _distances(edges, accept)
        if dist[0] >= UNREACHABLE:
            raise ConstraintError('no sequence of tokens of this vocabulary can satisfy the '
                                  'constraint')
        states = [_make_state(out, dist.__getitem__, accept[i], dist[i])
                  for i, out in enumerate(edges)]
        return cls(states, 0, eos_ids, _longest(states))

    def _entry(self, state: int) -> _State:
        return self._states[state]

    # -- queries ----------------------------------------------------------------------------

    @property
    def num_states(self) -> int:
        return len(self._states)

    @property
    def min_tokens(self) -> int:
        """Fewest tokens that complete a valid output from the start."""
        return self._entry(self.start).dist

    def accepting(self, state: int) -> bool:
        return self._entry(state).accepting

    def dist(self, state: int) -> int:
        return self._entry(state).dist

    def must_stop(self, state: int) -> bool:
        """Tell whether the state accepts and no token may follow: the output is complete."""
        entry = self._entry(state)
        return entry.accepting and entry.ids.size == 0

    def budget_cap(self, state: int) -> int:
        """Budget from which more tokens no longer widen the allowed set."""
        entry = self._entry(state)
        return int(entry.dists[-1]) + 1 if entry.dists.size else 1

    def allowed(self, state: int, budget: int) -> np.ndarray:
        """
        Sorted token ids allowed next with `budget` tokens left (EOS included when accepting).

        A token is allowed only if its target can still be completed in budget - 1 tokens.
        """
        if budget <= 0:
            return np.zeros(0, dtype=np.int64)
        key = (state, min(budget, self.budget_cap(state)))
        cached = self._allowed.get(key)
        if cached is not None:
            return cached
        entry = self._entry(state)
        count = int(np.searchsorted(entry.dists, key[1] - 1, side='right'))
        ids = entry.ids[:count]
        if entry.accepting:
            ids = np.concatenate([ids, self.eos_ids])
        result = np.unique(ids)
        if len(self._allowed) >= MAX_CACHED:
            self._allowed.clear()
        self._allowed[key] = result
        return result

    def is_eos(self, token: int) -> bool:
        return int(token) in self._eos

    def advance(self, state: int, token: int) -> int:
        """State after a non-EOS token; ConstraintError if the token was not allowed."""
        target = self._entry(state).lookup.get(int(token))
        if target is None:
            raise ConstraintError(f'token {int(token)} is not allowed in constraint state '
                                  f'{state}')
        return target

    def accepts(self, tokens: Sequence[int]) -> bool:
        """Whether the token sequence (EOS optional at the end) is a complete valid output."""
        state = self.start
        for position, token in enumerate(tokens):
            if self.is_eos(token):
                return position == len(tokens) - 1 and self.accepting(state)
            target = self._entry(state).lookup.get(int(token))
            if target is None:
                return False
            state = target
        return self.accepting(state)


class LazyRegexAutomaton(TokenAutomaton):
    r"""
    A regex automaton whose states are explored only when generation reaches them.

    For regexes whose automaton is too large to enumerate (a counted repeat of a broad class
    followed by text the class also matches, e.g. `[^\n]{1,200}\. Action: ...`, has tens of
    thousands of states). dist is the fewest characters to a match, which equals the fewest
    tokens when the vocabulary has a token for each single character (byte-level and
    byte-fallback tokenizers do); a vocabulary without them can reach a dead end, which surfaces
    as ConstraintError, never as an invalid output. Cost: one vocabulary walk per new state.
    """

    exact = False

    def __init__(self, dfa: CharDfa, trie: VocabTrie, eos_ids: Sequence[int]) -> None:
        super().__init__([], 0, eos_ids, None)
        self._dfa = dfa
        self._trie = trie
        self._keys: List[int] = [dfa.start]
        self._index: Dict[int, int] = {dfa.start: 0}
        self._entries: Dict[int, _State] = {}

    def _intern(self, key: int) -> int:
        found = self._index.get(key)
        if found is None:
            found = len(self._keys)
            self._index[key] = found
            self._keys.append(key)
        return found

    def _entry(self, state: int) -> _State:
        entry = self._entries.get(state)
        if entry is None:
            key = self._keys[state]
            out = [(token, self._intern(target))
                   for token, target in self._trie.walk(self._dfa.step, key)]
            entry = _make_state(out, lambda s: self._dfa.min_chars(self._keys[s]),
                                self._dfa.accepting(key), self._dfa.min_chars(key))
            if len(self._entries) >= MAX_CACHED:
                self._entries.clear()  # rebuilt on demand: a long generation keeps memory flat
            self._entries[state] = entry
        return entry

    @property
    def num_states(self) -> int:
        return len(self._entries)


def _distances(edges: List[List[Tuple[int, int]]], accept: List[bool]) -> List[int]:
    """Fewest tokens from each state to an accepting one (reverse breadth-first search)."""
    reverse: List[List[int]] = [[] for _ in edges]
    for source, out in enumerate(edges):
        for target in {t for _, t in out}:
            reverse[target].append(source)
    dist = [0 if ok else UNREACHABLE for ok in accept]
    queue = deque(i for i, ok in enumerate(accept) if ok)
    while queue:
        state = queue.popleft()
        for source in reverse[state]:
            if dist[source] == UNREACHABLE:
                dist[source] = dist[state] + 1
                queue.append(source)
    return dist


def _longest(states: List[_State]) -> Optional[int]:
    """Most tokens any output can take, counting a final EOS; None if outputs are unbounded."""
    longest: Dict[int, int] = {}
    active = set()
    stack: List[Tuple[int, bool]] = [(0, False)]
    while stack:
        node, expanded = stack.pop()
        entry = states[node]
        targets = {int(s) for s in entry.nexts}
        if expanded:
            best = 1 if entry.accepting and entry.ids.size else 0
            for target in targets:
                best = max(best, 1 + longest[target])
            longest[node] = best
            active.discard(node)
            continue
        if node in longest:
            continue
        active.add(node)
        stack.append((node, True))
        for target in targets:
            if target in active:
                return None  # a cycle: outputs of any length
            if target not in longest:
                stack.append((target, False))
    return longest[0]


def regex_automaton(pattern: str, vocab: Sequence[Optional[str]], eos_ids: Sequence[int],
                    trie: Optional[VocabTrie] = None, max_states: int = 256,
                    max_edges: int = 50_000) -> TokenAutomaton:
    """
    Automaton of the token sequences whose text fully matches pattern.

    Explored up front (exact) while it stays within max_states / max_edges, else lazily.
    """
    dfa = CharDfa(pattern)
    walker = trie if trie is not None else VocabTrie(vocab)
    try:
        return TokenAutomaton.build(dfa.start, lambda s: walker.walk(dfa.step, s),
                                    dfa.accepting, eos_ids, max_states, max_edges)
    except _TooLarge:
        return LazyRegexAutomaton(CharDfa(pattern), walker, eos_ids)


def text_action_regex(codec: TextActionCodec, plan: str = 'none',
                      leading_space: bool = True) -> str:
    """
    Regex of the action strings a local model may write for a text action space.

    One optional leading space lets SentencePiece-style tokenizers write their usual "▁1"
    first token. plan: 'none', 'optional' or 'required' chain-of-thought `Plan: ... Action: `.
    """
    if plan not in PLAN_MODES:
        raise ConstraintError(f'plan must be one of {", ".join(PLAN_MODES)}, not {plan!r}')
    body = ' '.join(codec.token_regexes())
    prefix = f'Plan: {PLAN_TEXT_REGEX}\\. Action: '
    if plan == 'optional':
        body = f'(?:{prefix})?{body}'
    elif plan == 'required':
        body = prefix + body
    return ('(?: )?' if leading_space else '') + body


def vocab_id_automaton(codec: VocabIdCodec, eos_ids: Sequence[int]) -> TokenAutomaton:
    """Position i allows exactly dimension i's action ids; after the last, the output ends."""
    size = codec.space.size
    allowed = [codec.allowed_ids(i) for i in range(size)]

    def expand(position: int) -> Iterator[Tuple[int, int]]:
        if position < size:
            for token in allowed[position]:
                yield int(token), position + 1

    return TokenAutomaton.build(0, expand, lambda position: position == size, eos_ids)


def action_automaton(codec: Codec, vocab: Optional[Sequence[Optional[str]]],
                     eos_ids: Sequence[int], plan: str = 'none',
                     trie: Optional[VocabTrie] = None) -> TokenAutomaton:
    """Build the constraint for one action of codec's space (vocab: token texts, text spaces)."""
    if isinstance(codec, VocabIdCodec):
        if plan != 'none':
            raise ConstraintError('chain-of-thought plans need a text action space')
        return vocab_id_automaton(codec, eos_ids)
    if vocab is None:
        raise ConstraintError('a text action space needs the vocabulary texts')
    return regex_automaton(text_action_regex(codec, plan), vocab, eos_ids, trie,
                           max_states=MAX_TOKEN_STATES, max_edges=20_000_000)

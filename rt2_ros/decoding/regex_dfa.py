"""
Regular expressions compiled into a character automaton stepped one character at a time.

Constrained decoding must answer, for every token a model could emit next, "is the text still a
prefix of some match?". Python's `re` cannot answer prefix questions, and re-matching
`prefix + token` for every token at every step costs a regex call per vocabulary entry per step.
A DFA answers with one dictionary lookup per character, and its states are what the token masks
are cached on.

Python's own parser (`re._parser`; `sre_parse` before 3.11) reads the pattern, so the syntax is
exactly Python's. Constructs whose meaning is not a plain set of strings (back references,
look-around, atomic groups, possessive repeats, anchors other than at the very start or end) raise
ConstraintError rather than being approximated. IGNORECASE uses simple per-character case
folding. Determinization is lazy: only the states and characters actually met are built.
"""
from collections import deque
from typing import Callable, Dict, FrozenSet, List, Optional, Set, Tuple

try:  # Python >= 3.11
    from re import _constants as sre_constants, _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants
    import sre_parse

from rt2_ros.decoding import ConstraintError  # noqa: I100,E402

CharTest = Callable[[str], bool]

MAX_NFA_STATES = 200_000
MAX_DFA_STATES = 50_000
UNREACHABLE = 1 << 30

_C = sre_constants
_IGNORECASE = _C.SRE_FLAG_IGNORECASE
_DOTALL = _C.SRE_FLAG_DOTALL
_ASCII = _C.SRE_FLAG_ASCII
_UNSUPPORTED = {
    'GROUPREF': 'back references', 'GROUPREF_EXISTS': 'conditional groups',
    'ASSERT': 'look-ahead/look-behind', 'ASSERT_NOT': 'negative look-around',
    'POSSESSIVE_REPEAT': 'possessive repeats', 'ATOMIC_GROUP': 'atomic groups',
}


def _ascii_word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == '_')


def _category_test(category: object, flags: int) -> CharTest:
    ascii_only = bool(flags & _ASCII)
    name = str(category)
    if 'DIGIT' in name:
        base: CharTest = (lambda ch: '0' <= ch <= '9') if ascii_only else str.isdecimal
    elif 'SPACE' in name:
        base = (lambda ch: ch in ' \t\n\r\f\v') if ascii_only else str.isspace
    elif 'WORD' in name:
        base = _ascii_word if ascii_only else (lambda ch: ch.isalnum() or ch == '_')
    else:
        raise ConstraintError(f'regex character category {name} is not supported')
    if '_NOT_' in name:
        return lambda ch: not base(ch)
    return base


def _with_case(test: CharTest, flags: int) -> CharTest:
    if not flags & _IGNORECASE:
        return test
    return lambda ch: test(ch) or test(ch.lower()) or test(ch.upper())


def _class_test(items: list, flags: int) -> CharTest:
    """Test for a bracket expression `[...]` (literals, ranges, categories, negation)."""
    negate = False
    literals: Set[str] = set()
    ranges: List[Tuple[int, int]] = []
    categories: List[CharTest] = []
    for op, av in items:
        if op is _C.NEGATE:
            negate = True
        elif op is _C.LITERAL:
            literals.add(chr(av))
        elif op is _C.RANGE:
            ranges.append((av[0], av[1]))
        elif op is _C.CATEGORY:
            categories.append(_category_test(av, flags))
        else:
            raise ConstraintError(f'regex character-class item {op} is not supported')

    def member(ch: str) -> bool:
        if ch in literals:
            return True
        code = ord(ch)
        return any(lo <= code <= hi for lo, hi in ranges) or any(t(ch) for t in categories)

    folded = _with_case(member, flags)
    if negate:
        return lambda ch: not folded(ch)
    return folded


class _Nfa:
    """Thompson NFA: epsilon lists and (test, target) edges per state."""

    def __init__(self) -> None:
        self.eps: List[List[int]] = []
        self.edges: List[List[Tuple[CharTest, int]]] = []

    def new(self) -> int:
        if len(self.eps) >= MAX_NFA_STATES:
            raise ConstraintError(
                f'regex is too large for constrained decoding (more than {MAX_NFA_STATES} '
                'automaton states; reduce counted repeats)')
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def char(self, start: int, test: CharTest) -> int:
        end = self.new()
        self.edges[start].append((test, end))
        return end

    def sequence(self, items: list, start: int, flags: int) -> int:
        current = start
        for op, av in items:
            current = self.item(op, av, current, flags)
        return current

    def item(self, op: object, av: object, start: int, flags: int) -> int:
        if op is _C.LITERAL:
            char = chr(av)
            return self.char(start, _with_case(lambda ch: ch == char, flags))
        if op is _C.NOT_LITERAL:
            char = chr(av)
            same = _with_case(lambda ch: ch == char, flags)
            return self.char(start, lambda ch: not same(ch))
        if op is _C.ANY:
            if flags & _DOTALL:
                return self.char(start, lambda ch: True)
            return self.char(start, lambda ch: ch != '\n')
        if op is _C.IN:
            return self.char(start, _class_test(av, flags))
        if op is _C.BRANCH:
            end = self.new()
            for alternative in av[1]:
                entry = self.new()
                self.eps[start].append(entry)
                self.eps[self.sequence(alternative, entry, flags)].append(end)
            return end
        if op is _C.SUBPATTERN:
            _group, add_flags, del_flags, pattern = av
            return self.sequence(pattern, start, (flags | add_flags) & ~del_flags)
        if op is _C.MAX_REPEAT or op is _C.MIN_REPEAT:
            return self.repeat(av, start, flags)
        if op is _C.AT:
            raise ConstraintError('regex anchors are only supported at the very start and end')
        reason = _UNSUPPORTED.get(str(op), str(op))
        raise ConstraintError(f'regex feature not supported in constrained decoding: {reason}')

    def repeat(self, av: tuple, start: int, flags: int) -> int:
        low, high, pattern = av
        largest = low if high is _C.MAXREPEAT else high
        if largest > MAX_NFA_STATES:
            before = len(self.eps)
            self.sequence(pattern, start, flags)
            if len(self.eps) == before:
                return start  # an empty pattern repeated is still empty
            raise ConstraintError(f'regex repeat count {largest} is too large for constrained '
                                  'decoding')
        current = start
        for _ in range(low):
            current = self.sequence(pattern, current, flags)
        if high is _C.MAXREPEAT:
            loop = self.new()
            self.eps[current].append(loop)
            self.eps[self.sequence(pattern, loop, flags)].append(loop)
            return loop
        exits = [current]
        for _ in range(high - low):
            current = self.sequence(pattern, current, flags)
            exits.append(current)
        end = self.new()
        for state in exits:
            self.eps[state].append(end)
        return end


class CharDfa:
    """
    Lazily determinized automaton of one regex; states are small integers.

    step() returns None once no continuation can match (the dead state), so callers can prune.
    """

    def __init__(self, pattern: str, flags: int = 0) -> None:
        try:
            parsed = sre_parse.parse(pattern, flags)
        except Exception as exc:  # re.error and friends
            raise ConstraintError(f'invalid regex {pattern!r}: {exc}') from None
        items = list(parsed)
        if items and items[0][0] is _C.AT and str(items[0][1]) in (
                'AT_BEGINNING', 'AT_BEGINNING_STRING'):
            items = items[1:]
        if items and items[-1][0] is _C.AT and str(items[-1][1]) in ('AT_END', 'AT_END_STRING'):
            items = items[:-1]
        self.pattern = pattern
        self._nfa = _Nfa()
        start = self._nfa.new()
        self._accept = self._nfa.sequence(items, start, parsed.state.flags)
        self._to_accept = self._distances_to_accept()
        self._sets: List[FrozenSet[int]] = []
        self._ids: Dict[FrozenSet[int], int] = {}
        self._accepting: List[bool] = []
        self._min_chars: List[int] = []
        self._steps: Dict[Tuple[int, str], Optional[int]] = {}
        self.start = self._intern(self._closure([start]))
        if self._min_chars[self.start] >= UNREACHABLE:
            raise ConstraintError(f'regex {pattern!r} matches no string')

    def _distances_to_accept(self) -> List[int]:
        """Fewest characters from each NFA state to the accepting one (0-1 BFS, reversed)."""
        nfa = self._nfa
        reverse: List[List[Tuple[int, int]]] = [[] for _ in nfa.eps]
        for source, targets in enumerate(nfa.eps):
            for target in targets:
                reverse[target].append((source, 0))
        for source, edges in enumerate(nfa.edges):
            for _test, target in edges:
                reverse[target].append((source, 1))
        dist = [UNREACHABLE] * len(nfa.eps)
        dist[self._accept] = 0
        queue = deque([self._accept])
        while queue:
            state = queue.popleft()
            for source, weight in reverse[state]:
                if dist[state] + weight < dist[source]:
                    dist[source] = dist[state] + weight
                    if weight:
                        queue.append(source)
                    else:
                        queue.appendleft(source)
        return dist

    def _closure(self, states: List[int]) -> FrozenSet[int]:
        seen = set(states)
        stack = list(states)
        while stack:
            for target in self._nfa.eps[stack.pop()]:
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return frozenset(seen)

    def _intern(self, states: FrozenSet[int]) -> int:
        known = self._ids.get(states)
        if known is not None:
            return known
        if len(self._sets) >= MAX_DFA_STATES:
            raise ConstraintError(f'regex needs more than {MAX_DFA_STATES} automaton states')
        self._ids[states] = len(self._sets)
        self._sets.append(states)
        self._accepting.append(self._accept in states)
        self._min_chars.append(min(self._to_accept[s] for s in states))
        return len(self._sets) - 1

    @property
    def num_states(self) -> int:
        return len(self._sets)

    def accepting(self, state: int) -> bool:
        return self._accepting[state]

    def min_chars(self, state: int) -> int:
        """Fewest characters that complete a match from state."""
        return self._min_chars[state]

    def step(self, state: int, ch: str) -> Optional[int]:
        key = (state, ch)
        try:
            return self._steps[key]
        except KeyError:
            pass
        targets = [target for nfa_state in self._sets[state]
                   for test, target in self._nfa.edges[nfa_state] if test(ch)]
        result = self._intern(self._closure(targets)) if targets else None
        if result is not None and self._min_chars[result] >= UNREACHABLE:
            result = None  # alive in the NFA, but no match can ever complete
        self._steps[key] = result
        return result

    def walk(self, text: str, state: Optional[int] = None) -> Optional[int]:
        """State after reading text from state (default: start), None if it died."""
        current: Optional[int] = self.start if state is None else state
        for ch in text:
            if current is None:
                return None
            current = self.step(current, ch)
        return current

    def fullmatch(self, text: str) -> bool:
        end = self.walk(text)
        return end is not None and self.accepting(end)

"""
Property tests of the constrained-decoding automata (torch-free).

Soundness: every token path the automaton lets a model take ends in text the codec decodes.
Completeness: every valid action string can be written, however the vocabulary splits it.
"""
from functools import lru_cache
import re

from hypothesis import assume, given, settings, strategies as st
import numpy as np
import pytest
from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.decoding.automaton import (
    action_automaton, LazyRegexAutomaton, PLAN_TEXT_REGEX, regex_automaton, text_action_regex,
    TokenAutomaton, VocabTrie,
)
from rt2_ros.decoding.regex_dfa import CharDfa, ConstraintError

EOS = 0
TEXT_SPACES = ['rt2', 'rt1_mobile']
CODECS = {name: make_codec(load_action_space(name)) for name in TEXT_SPACES + ['openvla']}
ACTION_CHARS = '0123456789 '
PLAN_CHARS = "PlanAction:. abkrx,'-"
PALI_X = tuple(' ' + str(k) for k in range(256))
WORDS = ['pick', 'rock', 'red', 'block', 'left', 'x1', "it's", 'up-down', 'a,b']
PLAN_WORDS = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4)


def _vocabulary(extra):
    """Texts by id: id 0 is EOS (no text), then every single character, then the extras."""
    singles = sorted(set(ACTION_CHARS + PLAN_CHARS + ''.join(WORDS)))
    return (None,) + tuple(singles) + tuple(t for t in extra if t)


@lru_cache(maxsize=64)
def _automaton(name, vocab, plan):
    return action_automaton(CODECS[name], vocab, [EOS], plan=plan)


vocabularies = st.one_of(
    st.just(PALI_X),
    st.lists(st.text(alphabet=ACTION_CHARS, min_size=2, max_size=5), max_size=40),
    st.lists(st.text(alphabet=ACTION_CHARS + PLAN_CHARS, min_size=2, max_size=8), max_size=40),
).map(_vocabulary)


def _walk(automaton, vocab, data, budget):
    """Let hypothesis pick any allowed token at every step; return (text, tokens used)."""
    state, text, used = automaton.start, '', 0
    while used < budget and not automaton.must_stop(state):
        allowed = automaton.allowed(state, budget - used)
        assert allowed.size, 'the automaton left a live state with no way out'
        token = int(data.draw(st.sampled_from(list(allowed))))
        used += 1
        if automaton.is_eos(token):
            assert automaton.accepting(state)
            return text, used
        text += vocab[token]
        state = automaton.advance(state, token)
    assert automaton.accepting(state)
    return text, used


@pytest.mark.parametrize('name,plan', [('rt2', 'none'), ('rt2', 'optional'),
                                       ('rt1_mobile', 'required')])
@settings(max_examples=30, deadline=None)
@given(vocab=vocabularies, data=st.data())
def test_every_accepted_string_decodes(name, plan, vocab, data):
    codec = CODECS[name]
    automaton = _automaton(name, vocab, plan)
    ceiling = automaton.longest or automaton.min_tokens + 30
    budget = data.draw(st.integers(automaton.min_tokens, ceiling))
    text, used = _walk(automaton, vocab, data, budget)
    assert used <= budget
    assert re.fullmatch(text_action_regex(codec, plan), text)
    decoded = codec.decode(text)
    assert decoded.bins.shape == (codec.space.size,)
    assert (decoded.plan is not None) == text.lstrip().startswith('Plan:')
    if plan == 'required':
        assert decoded.plan


def _segment(text, vocab, data):
    """Split text into vocabulary pieces, choosing among the pieces that fit at each position."""
    ids, position = [], 0
    by_text = {}
    for token, piece in enumerate(vocab):
        if piece:
            by_text.setdefault(piece, token)
    while position < len(text):
        fitting = sorted(p for p in by_text if text.startswith(p, position))
        piece = data.draw(st.sampled_from(fitting))
        ids.append(by_text[piece])
        position += len(piece)
    return ids


@pytest.mark.parametrize('name', TEXT_SPACES)
@settings(max_examples=40, deadline=None)
@given(vocab=vocabularies, data=st.data(), leading=st.booleans(),
       words=st.one_of(st.none(), PLAN_WORDS))
def test_every_valid_action_string_is_reachable(name, vocab, data, leading, words):
    codec = CODECS[name]
    bins = [data.draw(st.integers(0, d.bins - 1)) for d in codec.space.dimensions]
    text = ' '.join(str(b) for b in bins)
    if words is not None:
        text = f'Plan: {" ".join(words)}. Action: {text}'
    text = (' ' if leading else '') + text
    plan = 'none' if words is None else 'required'
    automaton = _automaton(name, vocab, plan)
    tokens = _segment(text, vocab, data)
    assert automaton.accepts(tokens + [EOS]), (text, [vocab[t] for t in tokens])
    assume(len(tokens) + 1 <= (automaton.longest or 10 ** 6))
    np.testing.assert_array_equal(codec.decode(text).bins, bins)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_vocabulary_id_space_paths_decode_and_valid_ids_are_accepted(data):
    codec = CODECS['openvla']
    automaton = action_automaton(codec, None, [EOS])
    assert automaton.min_tokens == automaton.longest == codec.space.size
    state, ids = automaton.start, []
    while not automaton.must_stop(state):
        token = int(data.draw(st.sampled_from(list(automaton.allowed(state, 99)))))
        assert not automaton.is_eos(token)
        ids.append(token)
        state = automaton.advance(state, token)
    codec.decode(ids)
    bins = np.array([data.draw(st.integers(0, 255)) for _ in range(codec.space.size)])
    assert automaton.accepts([int(i) for i in codec.bin_to_id(bins)])
    assert not automaton.accepts([int(i) for i in codec.bin_to_id(bins)][:-1])


PATTERNS = [
    text_action_regex(CODECS['rt2'], 'optional'),
    CODECS['rt1_mobile'].action_regex(plan='optional', max_plan_chars=5),
    r'(?:ab|a)*c?[^a-c]{1,3}',
    r'(?i)plan: [a-z]+\.',
    r'\d{2,3}\s\w+',
    PLAN_TEXT_REGEX,
]


@pytest.mark.parametrize('pattern', PATTERNS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_dfa_matches_exactly_what_python_re_matches(pattern, data):
    dfa = CharDfa(pattern)
    text = data.draw(st.one_of(
        st.text(alphabet='0123456789 abcPLANplan:.ActionXZ_\n', max_size=30),
        st.from_regex(pattern, fullmatch=True)))
    matched = re.fullmatch(pattern, text) is not None
    assert dfa.fullmatch(text) == matched
    if matched:  # every prefix of a match is alive
        assert all(dfa.walk(text[:i]) is not None for i in range(len(text)))


def test_trie_walk_finds_exactly_the_surviving_tokens():
    vocab = [None, '1', '12', '123', ' 1', '1 ', 'a', '', '9', '99', '999', '1000']
    trie = VocabTrie(vocab)
    dfa = CharDfa(r'(?:[0-9]|[1-9][0-9])(?: [0-9])?')
    found = sorted(trie.walk(dfa.step, dfa.start))
    expected = sorted((i, dfa.walk(t)) for i, t in enumerate(vocab)
                      if t and dfa.walk(t) is not None)
    assert found == expected and {vocab[i] for i, _ in found} == {'1', '12', '1 ', '9', '99'}


@pytest.mark.parametrize('pattern', [PATTERNS[0], PATTERNS[2], PATTERNS[3]])
@settings(max_examples=25, deadline=None)
@given(vocab=vocabularies, data=st.data())
def test_lazy_and_eager_automata_allow_the_same_tokens(pattern, vocab, data):
    eager = regex_automaton(pattern, vocab, [EOS], max_states=10 ** 5, max_edges=10 ** 8)
    lazy = LazyRegexAutomaton(CharDfa(pattern), VocabTrie(vocab), [EOS])
    assert type(eager) is TokenAutomaton
    eager_state, lazy_state = eager.start, lazy.start
    for _ in range(12):
        allowed = eager.allowed(eager_state, 10 ** 6)
        assert list(allowed) == list(lazy.allowed(lazy_state, 10 ** 6))
        token = int(data.draw(st.sampled_from(list(allowed))))
        if eager.is_eos(token):
            break
        eager_state = eager.advance(eager_state, token)
        lazy_state = lazy.advance(lazy_state, token)


@settings(max_examples=30, deadline=None)
@given(vocab=vocabularies, data=st.data())
def test_huge_regex_automata_are_explored_lazily_and_still_sound(vocab, data):
    codec = CODECS['rt2']
    pattern = codec.action_regex(plan='optional')  # [^\n]{1,200}: tens of thousands of states
    automaton = _lazy(pattern, vocab)
    assert not automaton.exact
    budget = data.draw(st.integers(automaton.min_tokens, 80))
    text, used = _walk(automaton, vocab, data, budget)
    assert used <= budget and re.fullmatch(pattern, text)
    codec.decode(text)


@lru_cache(maxsize=8)
def _lazy(pattern, vocab):
    return regex_automaton(pattern, vocab, [EOS], max_states=64, max_edges=2000)


@pytest.mark.parametrize('pattern,message', [
    ('a{1000000000}', 'too large'), ('((a{100}){100}){100}', 'too large'),
    (r'(a)\1', 'back references'), ('a(?=b)', 'look'), ('(?>a)b', 'atomic'), ('a++', 'possess'),
    ('a^b', 'anchors'), ('[', 'invalid regex'),
])
def test_unsupported_or_pathological_regexes_fail_fast_with_a_reason(pattern, message):
    with pytest.raises(ConstraintError, match=message):
        CharDfa(pattern)
    assert CharDfa('(?:){1000000000}a').fullmatch('a')

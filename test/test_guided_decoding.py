"""
Property tests of constrained decoding through llguidance (rt2_ros.decoding.guided).

Soundness: whatever the logits, every output the constraint lets through decodes strictly as an
action of the space, within the token budget derived from the action language.
Completeness: every valid action string, however the tokenizer splits it, is accepted.
The tokenizers are those of real tiny checkpoints: integers as one token (PaLI-X style),
integers spelt digit by digit, and OpenVLA's reserved-id block.
"""
from functools import lru_cache
import os
import re

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest
from rt2_ros.actions import load_action_space, make_codec
from rt2_ros.actions.codec import TextActionCodec
from rt2_ros.decoding import ConstraintError
from rt2_ros.decoding.guided import (
    action_grammar, action_token_budget, Constraint, GuidedLogitsProcessor,
    GuidedStoppingCriteria, llguidance_tokenizer,
)
from tiny_models import tiny_checkpoint
import torch

# A user's own action space: 1 to 3 digit integers (1000, 11 and 3 bins).
USER_SPACE = """\
name: my_arm
tokenization: text
dimensions:
  - {name: stop, role: terminate, type: discrete, labels: [terminate, go]}
  - {name: x, role: translation, axis: x, type: continuous, low: -0.1, high: 0.1, bins: 1000}
  - {name: yaw, role: rotation, axis: z, type: continuous, low: -1, high: 1, bins: 11}
  - {name: grip, role: gripper, type: continuous, low: 0, high: 1, bins: 3}
"""
DECISIONS = int(os.environ.get('RT2_FUZZ_EXAMPLES', '0')) or 1000
BATCH = 50  # decisions per example: the processor runs them as one batch


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def user_space(tmp_path_factory):
    path = tmp_path_factory.mktemp('space') / 'my_arm.yaml'
    path.write_text(USER_SPACE)
    return str(path)


@lru_cache(maxsize=None)
def _tokenizer(checkpoint: str, digits: bool = False):
    """Return (transformers tokenizer, llguidance tokenizer, eos ids) of a tiny checkpoint."""
    from transformers import AutoTokenizer
    path = tiny_checkpoint(checkpoint, **({'integer_tokens': False} if digits else {}))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    eos = [int(tokenizer.eos_token_id)]
    return tokenizer, llguidance_tokenizer(tokenizer, len(tokenizer), eos), eos


def _space(spec, user_space):
    return user_space if spec == 'user' else spec


def _decide(lltokenizer, width, eos, grammar, logits_seed, temperature, rows):
    """
    Run the processor and stopping criteria as generate does, on random logits.

    Returns (processor, stopping criteria, logits generator, prompt ids) for _generate.
    """
    constraint = Constraint(lltokenizer, grammar)
    processor = GuidedLogitsProcessor([constraint.matcher() for _ in range(rows)], width, eos)
    stopper = GuidedStoppingCriteria(processor)
    generator = torch.Generator().manual_seed(logits_seed)
    ids = torch.zeros((rows, 3), dtype=torch.long)  # the "prompt"
    return processor, stopper, generator, ids


def _generate(processor, stopper, generator, ids, temperature, max_new_tokens):
    """Run generate's loop minus the model: random logits, masked, then chosen."""
    rows = ids.shape[0]
    unfinished = torch.ones(rows, dtype=torch.bool)
    for _ in range(max_new_tokens):
        logits = torch.randn((rows, processor.width), generator=generator) * 4
        scores = processor(ids, logits)
        if temperature == 0:
            chosen = scores.argmax(-1)
        else:
            probs = torch.softmax(scores / temperature, -1)
            chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        chosen = torch.where(unfinished, chosen, torch.zeros_like(chosen))  # pad finished rows
        ids = torch.cat([ids, chosen[:, None]], 1)
        unfinished &= ~stopper(ids, scores)
        if not unfinished.any():
            break
    processor.sync(ids)
    return unfinished


@pytest.mark.parametrize('spec,checkpoint,digits,plan', [
    ('rt2', 'rt2', False, 'none'),
    ('rt2', 'rt2', True, 'none'),            # integers split into several tokens
    ('rt2', 'rt2', False, 'optional'),       # chain of thought, optional
    ('rt2', 'rt2', True, 'required'),        # chain of thought, required, digits split
    ('rt1_mobile', 'rt2', False, 'none'),
    ('rt1_mobile', 'rt2', True, 'none'),
    ('user', 'rt2', False, 'none'),
    ('user', 'rt2', True, 'optional'),
    ('openvla', 'openvla', False, 'none'),   # OpenVLA vocabulary ids
])
def test_random_logits_only_ever_yield_valid_actions(spec, checkpoint, digits, plan, user_space):
    tokenizer, lltokenizer, eos = _tokenizer(checkpoint, digits)
    if spec == 'openvla':
        space = load_action_space(str(tiny_checkpoint('openvla') / 'action_space.yaml'))
    else:
        space = load_action_space(_space(spec, user_space))
    codec = make_codec(space)
    grammar = action_grammar(codec, plan)
    budget = action_token_budget(codec, plan)
    width = len(tokenizer)
    decided = []
    # Plans make outputs up to ~250 tokens long: fewer of them, the presets get 1,000 each.
    decisions = DECISIONS if plan == 'none' else max(BATCH, DECISIONS * 2 // 5)

    @settings(max_examples=decisions // BATCH, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, 2 ** 31), temperature=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
    def check(seed, temperature):
        processor, stopper, generator, ids = _decide(lltokenizer, width, eos, grammar, seed,
                                                     temperature, BATCH)
        unfinished = _generate(processor, stopper, generator, ids, temperature, budget)
        assert not unfinished.any(), 'the derived budget cut an output short'
        for row, tokens in enumerate(processor.tokens):
            assert processor.complete(row)
            assert len(tokens) < budget
            if isinstance(codec, TextActionCodec):
                text = lltokenizer.decode_bytes(tokens).decode('utf-8')
                assert re.fullmatch(codec.action_regex(plan), text), text
                decoded = codec.decode(text)
                assert (decoded.plan is not None) == (plan == 'required' or
                                                      text.lstrip().startswith('Plan:'))
            else:
                decoded = codec.decode(tokens)
            assert decoded.bins.shape == (space.size,)
            decided.append(tuple(decoded.bins))

    check()
    assert len(decided) >= decisions
    assert len(set(decided)) > len(decided) // 10  # random logits really explored the space


@lru_cache(maxsize=None)
def _pieces(digits: bool):
    """Every plain token of a tiny tokenizer by the bytes it writes."""
    tokenizer, lltokenizer, _ = _tokenizer('rt2', digits)
    special = set(tokenizer.all_special_ids)
    out = {}
    for token in range(len(tokenizer)):
        data = lltokenizer.decode_bytes([token])
        if data and token not in special:
            out.setdefault(data, token)
    return out


def _segment(text: bytes, pieces, data):
    """Split text into tokens, drawing among the pieces that fit at each position."""
    ids, position = [], 0
    while position < len(text):
        fitting = sorted(p for p in pieces if text.startswith(p, position))
        piece = data.draw(st.sampled_from(fitting))
        ids.append(pieces[piece])
        position += len(piece)
    return ids


@pytest.mark.parametrize('spec,digits', [('rt2', False), ('rt2', True), ('rt1_mobile', True),
                                         ('user', False), ('user', True)])
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), leading=st.booleans(),
       plan=st.one_of(st.none(), st.text(alphabet='abcxyz PLANact,:.-0123456789', min_size=1,
                                         max_size=40).filter(str.strip)))
def test_every_valid_action_string_is_accepted_however_it_is_tokenized(
        spec, digits, data, leading, plan, user_space):
    _, lltokenizer, eos = _tokenizer('rt2', digits)
    codec = make_codec(load_action_space(_space(spec, user_space)))
    bins = [data.draw(st.integers(0, d.bins - 1)) for d in codec.space.dimensions]
    text = ' '.join(str(b) for b in bins)
    if plan is not None:
        text = f'Plan: {plan}. Action: {text}'
    text = (' ' if leading else '') + text
    mode = 'required' if plan is not None else 'none'
    matcher = Constraint(lltokenizer, action_grammar(codec, mode)).matcher()
    tokens = _segment(text.encode(), _pieces(digits), data)
    assert matcher.consume_tokens(tokens + eos), (text, tokens)
    assert matcher.is_stopped() and len(tokens) + 1 <= action_token_budget(codec, mode)
    np.testing.assert_array_equal(codec.decode(lltokenizer.decode_str(tokens)).bins, bins)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_vocabulary_id_actions_take_exactly_their_block_ids(data):
    tokenizer, lltokenizer, eos = _tokenizer('openvla')
    space = load_action_space(str(tiny_checkpoint('openvla') / 'action_space.yaml'))
    codec = make_codec(space)
    constraint = Constraint(lltokenizer, action_grammar(codec))
    bins = np.array([data.draw(st.integers(0, space.bins - 1)) for _ in range(space.size)])
    ids = [int(i) for i in codec.bin_to_id(bins)]
    matcher = constraint.matcher()
    assert matcher.consume_tokens(ids) and matcher.is_stopped()
    assert action_token_budget(codec) == space.size + 1
    outside = data.draw(st.integers(0, int(codec.block_ids().min()) - 1))
    assert not constraint.matcher().consume_token(outside)
    assert not constraint.matcher().consume_tokens(ids[:-1] + eos)  # too short: no end yet


def test_plan_cannot_be_written_in_a_vocabulary_id_space():
    codec = make_codec(load_action_space('openvla'))
    with pytest.raises(ConstraintError, match='text action space'):
        action_grammar(codec, 'required')


@pytest.mark.parametrize('pattern,message', [
    (r'(a)\1', 'backreferences'), ('a(?=b)', 'look'), ('[', 'unclosed'),
])
def test_unsupported_regexes_fail_with_a_reason(pattern, message):
    import llguidance
    _, lltokenizer, _ = _tokenizer('rt2')
    with pytest.raises(ConstraintError, match=message):
        Constraint(lltokenizer, llguidance.LLMatcher.grammar_from_regex(pattern))

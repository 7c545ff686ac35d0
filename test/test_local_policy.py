"""The local transformers backend against real tiny checkpoints built from config."""
import json
import re
import shutil

import numpy as np
import pytest
from rt2_ros.actions import ActionDecodeError, load_action_space, make_codec
from rt2_ros.policy.base import (
    Observation, PolicyConfig, PolicyInvalidAction, PolicyResult, PolicyUnavailable,
)
from rt2_ros.policy.factory import make_policy
from tiny_models import tiny_checkpoint

INSTRUCTIONS = [
    'pick up the red block', 'put the blue cube left of the green ball',
    'push the small yellow block to the far right corner of the table',
    'Stop.', 'move   the\ngripper up',
]


def _policy(path, **extra):
    return make_policy(PolicyConfig(backend='local', model_path=str(path), extra=extra))


def _observations(count, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        height, width = rng.integers(16, 80, size=2)
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        out.append(Observation(image=image, instruction=INSTRUCTIONS[i % len(INSTRUCTIONS)]))
    return out


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def rt2_policy():
    policy = _policy(tiny_checkpoint('rt2'))
    yield policy
    policy.close()


@pytest.fixture(scope='module')
def openvla_policy():
    policy = _policy(tiny_checkpoint('openvla'))
    yield policy
    policy.close()


def test_checkpoints_load_through_the_auto_classes():
    from transformers import AutoModelForImageTextToText, AutoProcessor
    for space in ('rt2', 'openvla'):
        path = tiny_checkpoint(space)
        assert (path / 'model.safetensors').is_file() and (path / 'action_space.yaml').is_file()
        processor = AutoProcessor.from_pretrained(path)
        model = AutoModelForImageTextToText.from_pretrained(path)
        assert type(model).__name__ == 'PaliGemmaForConditionalGeneration'
        assert type(processor).__name__ == 'PaliGemmaProcessor'
        tokenizer = processor.tokenizer
        vocab_size = model.get_output_embeddings().weight.shape[0]
        assert len(tokenizer) == vocab_size
        space = load_action_space(path / 'action_space.yaml')
        if space.tokenization == 'text':
            # PaLI-X scheme: each integer of an action is one token.
            ids = tokenizer.encode('1 128 91 241 5 101 127 217', add_special_tokens=False)
            assert len(ids) == 8
        else:
            # OpenVLA scheme: the last 256 ids, inverted (id = vocab_size - 1 - bin).
            assert space.vocab.vocab_size == vocab_size
            assert tokenizer.convert_ids_to_tokens(vocab_size - 1) == '<act000>'
            assert tokenizer.convert_ids_to_tokens(vocab_size - 256) == '<act255>'
            assert (path / 'dataset_statistics.json').is_file()


def _assert_valid(policy, result):
    assert isinstance(result, PolicyResult)
    decoded = result.decoded[0]
    again = policy.codec.decode(result.raw)
    np.testing.assert_array_equal(again.bins, decoded.bins)
    bounds = policy.codec.bounds()
    assert np.all(result.action >= bounds[0] - 1e-9) and np.all(result.action <= bounds[1] + 1e-9)
    assert result.actions.shape == (1, policy.space.size)


@pytest.mark.parametrize('space,options,plan,model_seed', [
    ('rt2', {}, 'none', 1),
    ('rt2', {'integer_tokens': False}, 'none', 2),   # integers spelt digit by digit
    ('rt2', {}, 'required', 3),                      # chain of thought: Plan: ... Action: ...
    ('openvla', {}, 'none', 4),
])
def test_random_models_only_emit_valid_actions(space, options, plan, model_seed):
    path = tiny_checkpoint(space, seed=model_seed, **options)
    seen = set()
    for temperature in (0.0, 3.0):
        policy = _policy(path, plan=plan, temperature=temperature, seed=model_seed)
        for result in policy.infer_batch(_observations(8, seed=model_seed)):
            _assert_valid(policy, result)
            seen.add(str(result.raw))
            if plan == 'required':
                assert result.plan and re.fullmatch(r' ?Plan: .+\. Action: [0-9 ]+', result.raw)
        policy.close()
    assert len(seen) > 4  # sampling really explored different outputs


def test_unconstrained_random_model_output_is_not_an_action(rt2_policy, openvla_policy):
    observations = _observations(6, seed=3)
    images = [o.image for o in observations]
    prompts = [rt2_policy.prompt(o.instruction) for o in observations]
    texts = rt2_policy.generate_text(images, prompts, max_new_tokens=30, temperature=1.0)
    invalid = 0
    for text in texts:
        try:
            rt2_policy.codec.decode(text)
        except ActionDecodeError:
            invalid += 1
    assert invalid >= 5, texts


def test_batched_greedy_equals_one_at_a_time(rt2_policy, openvla_policy):
    for policy in (rt2_policy, openvla_policy):
        observations = _observations(5, seed=7)
        batched = policy.infer_batch(observations)
        single = [policy.infer(o) for o in observations]
        assert [r.raw for r in batched] == [r.raw for r in single]
        for result in batched:
            assert result.timing.inference_s > 0 and result.timing.request_s >= \
                result.timing.inference_s


def test_sampling_follows_the_policy_seed_and_leaves_torch_alone():
    import torch
    path = tiny_checkpoint('rt2', seed=1)
    observations = _observations(4, seed=11)
    state = torch.get_rng_state()
    first = [r.raw for r in _policy(path, temperature=3.0, seed=5).infer_batch(observations)]
    again = [r.raw for r in _policy(path, temperature=3.0, seed=5).infer_batch(observations)]
    other = [r.raw for r in _policy(path, temperature=3.0, seed=6).infer_batch(observations)]
    assert first == again and first != other
    assert torch.equal(torch.get_rng_state(), state)
    policy = _policy(path, temperature=3.0, seed=5)
    assert [r.raw for r in policy.infer_batch(observations)] == first
    assert [r.raw for r in policy.infer_batch(observations)] != first  # the stream goes on
    assert policy.info()['decoder'] == 'generate + llguidance'


def test_generate_text_honours_a_regex(rt2_policy):
    observations = _observations(4, seed=5)
    images = [o.image for o in observations]
    # What the openai backend asks for, enforced by the same library vLLM's guidance backend uses.
    pattern = rt2_policy.codec.action_regex(plan='optional', max_plan_chars=20)
    budget = rt2_policy.codec.max_action_bytes('optional', max_plan_chars=20) + 1
    texts = rt2_policy.generate_text(images, ['what action?'] * 4, regex=pattern,
                                     max_new_tokens=budget, temperature=2.0)
    for text in texts:
        assert re.fullmatch(pattern, text), text
        rt2_policy.codec.decode(text)
    words = rt2_policy.generate_text(images[:2], ['what colour is the block?'] * 2,
                                     regex='(red|green|blue) (block|ball)', max_new_tokens=5)
    assert all(re.fullmatch('(red|green|blue) (block|ball)', w) for w in words)
    with pytest.raises(ValueError, match='look'):
        rt2_policy.generate_text(images[:1], ['x'], regex='a(?=b)')
    with pytest.raises(ValueError, match='too small'):
        rt2_policy.generate_text(images[:1], ['x'], regex='[0-9]{40}', max_new_tokens=5)
    # Pathological regexes hit the library's limits and fail, quickly, as unusable.
    for pattern in ('a{1000000000}', '((a{100}){100}){100}'):
        with pytest.raises(ValueError, match='too many'):
            rt2_policy.generate_text(images[:1], ['x'], regex=pattern, max_new_tokens=5)


def test_openvla_statistics_unnormalize_the_output(openvla_policy):
    stats = json.loads((tiny_checkpoint('openvla') / 'dataset_statistics.json').read_text())
    q99 = np.array(stats['tiny_tabletop']['action']['q99'])
    result = openvla_policy.infer(_observations(1)[0])
    assert np.all(np.abs(result.action[:6]) <= q99[:6] + 1e-9)
    assert isinstance(result.raw, list) and len(result.raw) == 7


def test_missing_or_corrupt_checkpoints_are_unavailable(tmp_path):
    with pytest.raises(PolicyUnavailable, match='does not exist'):
        _policy(tmp_path / 'nowhere')
    with pytest.raises(PolicyUnavailable, match='no config.json'):
        _policy(tmp_path)
    broken = tmp_path / 'broken'
    shutil.copytree(tiny_checkpoint('rt2'), broken)
    (broken / 'config.json').write_text('{"model_type": "paligemma",')
    with pytest.raises(PolicyUnavailable, match='not valid JSON'):
        _policy(broken)
    truncated = tmp_path / 'truncated'
    shutil.copytree(tiny_checkpoint('rt2'), truncated)
    weights = truncated / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(PolicyUnavailable, match='cannot load the model'):
        _policy(truncated)
    with pytest.raises(PolicyUnavailable, match='temperature'):
        _policy(tiny_checkpoint('rt2'), temperature='hot')
    with pytest.raises(PolicyUnavailable, match='unnorm key'):
        make_policy(PolicyConfig(backend='local', model_path=str(tiny_checkpoint('openvla')),
                                 unnorm_key='bridge_orig'))


REMOTE_CODE = '''from transformers import PaliGemmaForConditionalGeneration


class TinyRemoteVLA(PaliGemmaForConditionalGeneration):
    """Stands in for checkpoint-provided code such as OpenVLA's modeling_prismatic.py."""
'''


def test_remote_code_runs_only_when_the_checkpoint_declares_it(tmp_path, rt2_policy):
    assert rt2_policy.info()['trust_remote_code'] is False
    remote = tmp_path / 'remote'
    shutil.copytree(tiny_checkpoint('rt2'), remote)
    (remote / 'modeling_tiny_remote.py').write_text(REMOTE_CODE)
    config = json.loads((remote / 'config.json').read_text())
    config['auto_map'] = {'AutoModelForImageTextToText': 'modeling_tiny_remote.TinyRemoteVLA'}
    (remote / 'config.json').write_text(json.dumps(config))
    policy = _policy(remote, warmup=False)
    assert type(policy.model).__name__ == 'TinyRemoteVLA'
    assert policy.info()['trust_remote_code'] is True
    _assert_valid(policy, policy.infer(_observations(1)[0]))


def test_cuda_request_without_a_gpu_is_unavailable():
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.raises(PolicyUnavailable, match='CUDA is not available'):
        make_policy(PolicyConfig(backend='local', model_path=str(tiny_checkpoint('rt2')),
                                 device='cuda'))


def test_output_that_does_not_decode_is_invalid_action(monkeypatch):
    policy = _policy(tiny_checkpoint('rt2'))
    # A codec for another space than the constraint was built for: 8 integers are not 11.
    monkeypatch.setattr(policy, 'codec', make_codec(load_action_space('rt1_mobile')))
    observations = _observations(2)
    with pytest.raises(PolicyInvalidAction, match='count'):
        policy.infer(observations[0])
    results = policy.infer_batch(observations, return_exceptions=True)
    assert all(isinstance(r, PolicyInvalidAction) for r in results)
    policy.close()
    with pytest.raises(PolicyUnavailable, match='closed'):
        policy.infer(observations[0])


def test_bad_observations_are_rejected(rt2_policy):
    good = _observations(1)[0]
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        rt2_policy.infer(Observation(image=good.image.astype(np.float32), instruction='x'))
    with pytest.raises(ValueError, match='empty'):
        rt2_policy.infer(Observation(image=good.image, instruction='  \n '))
    # Special-token text in an instruction is data: it must not become an image slot or an EOS.
    assert rt2_policy.prompt('pick <image> up the <eos>block.') == \
        'Q: what action should the robot take to pick up the block? A:'
    rt2_policy.infer(Observation(image=good.image, instruction='pick <image><bos> up'))

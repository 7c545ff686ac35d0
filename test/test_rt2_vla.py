"""The rt2_vla model type: PaliGemma with a prompt-conditioned stem, loaded by Auto classes."""
import numpy as np
import pytest
from rt2_ros.models.rt2_vla import prompt_context
from rt2_ros.models.tiny_vla import (
    build_model, build_processor, IMAGE_ID, TinyVLAError, TinyVLASpec, write_checkpoint,
)
import torch

SPEC = TinyVLASpec(vision_stem='film_conv')  # 32 px images, 8 px patches: 16 image tokens
PROMPT = '<image>Q: what action should the robot take to pick up the red cube? A:'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    processor = build_processor(SPEC)
    model = build_model(SPEC, len(processor.tokenizer))
    with torch.no_grad():  # FiLM starts as the identity; give it something to do
        generator = torch.Generator().manual_seed(1)
        for film in model.model.vision_tower.embeddings.stem.films:
            film.weight.copy_(torch.randn(film.weight.shape, generator=generator) * 0.5)
    return write_checkpoint(tmp_path_factory.mktemp('rt2_vla'), SPEC, model, processor,
                            '(test)', 'test')


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_auto_classes_load_the_checkpoint(checkpoint):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    assert AutoConfig.from_pretrained(checkpoint).model_type == 'rt2_vla'
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    assert type(model).__name__ == 'Rt2VlaForConditionalGeneration'
    processor = AutoProcessor.from_pretrained(checkpoint)
    inputs = processor(images=[image(0)], text=[PROMPT], return_tensors='pt')
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs['input_ids'].shape[1] + 3)


def test_image_features_follow_the_prompt_not_the_answer_or_padding(checkpoint):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint)

    def features(prompts, **extra):
        inputs = processor(images=[image(0)] * len(prompts), text=prompts, return_tensors='pt',
                           padding='longest', **extra)
        ids, mask = inputs['input_ids'], inputs['attention_mask']
        embeds = model.model.get_input_embeddings()(ids.masked_fill(ids == IMAGE_ID, 0))

        context = prompt_context(embeds, ids, IMAGE_ID, mask, inputs.get('token_type_ids'))
        with torch.no_grad():
            return model.model.get_image_features(inputs['pixel_values'], context).pooler_output

    red, blue = features([PROMPT, PROMPT.replace('red', 'blue')])
    assert not torch.allclose(red, blue)
    alone = features([PROMPT])[0]
    padded = features([PROMPT, '<image>Q: where is the gripper on the table now? A:'])[0]
    assert torch.allclose(alone, padded, atol=1e-5)  # left padding is not part of the prompt
    answered = features([PROMPT], suffix=['1 128 128'])[0]
    assert torch.allclose(alone, answered, atol=1e-5)  # the answer is not either


def test_cached_generation_equals_full_recomputation(checkpoint):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
    processor = AutoProcessor.from_pretrained(checkpoint)
    inputs = processor(images=[image(1)], text=[PROMPT], return_tensors='pt')
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)[0, -4:].tolist()
    ids, mask, types = inputs['input_ids'], inputs['attention_mask'], inputs['token_type_ids']
    manual = []
    with torch.no_grad():
        for _ in range(4):
            logits = model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                           pixel_values=inputs['pixel_values']).logits[0, -1]
            token = int(logits.argmax())
            manual.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], 1)
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], 1)
            types = torch.cat([types, torch.ones(1, 1, dtype=types.dtype)], 1)
    assert generated == manual


def test_the_local_backend_runs_an_rt2_vla_checkpoint(checkpoint):
    from rt2_ros.policy import Observation, PolicyConfig
    from rt2_ros.policy.local import LocalTransformersPolicy
    policy = LocalTransformersPolicy(PolicyConfig(backend='local', model_path=str(checkpoint),
                                                  device='cpu'))
    try:
        rows = policy.infer_batch([Observation(image(k), 'pick up the red cube')
                                   for k in range(3)])
        single = policy.infer(Observation(image(2), 'pick up the red cube'))
    finally:
        policy.close()
    assert all(r.actions.shape == (1, 8) for r in rows)
    assert rows[2].raw == single.raw  # batching does not change an answer


def test_a_stem_needs_a_patch_size_its_strides_make():
    with pytest.raises(TinyVLAError, match='patch size'):
        TinyVLASpec(vision_stem='film_conv', image_size=35, patch_size=7).validate()
    with pytest.raises(TinyVLAError, match='vision_stem'):
        TinyVLASpec(vision_stem='resnet').validate()

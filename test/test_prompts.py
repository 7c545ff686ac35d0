"""Prompt templates: the exact wording RT-2 and OpenVLA were trained with, and custom ones."""
import numpy as np
import pytest
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.prompts import (
    build_prompt, PromptError, render_prompt, resolve_template, TEMPLATES,
)
from tiny_models import tiny_checkpoint


def test_shipped_templates_render_the_papers_prompts():
    rt2 = resolve_template('rt2')
    assert render_prompt(rt2, 'pick up the Red block.') == \
        'Q: what action should the robot take to pick up the Red block? A:'
    openvla = resolve_template('openvla')
    assert render_prompt(openvla, '  Put the CUP\n on the plate ') == \
        'In: What action should the robot take to put the cup on the plate?\nOut: '
    assert resolve_template('', default='openvla') == TEMPLATES['openvla']


def test_custom_templates_and_their_errors():
    custom = resolve_template('Task: {instruction_lower}. Act:')
    assert render_prompt(custom, 'Stack It') == 'Task: stack it. Act:'
    for bad in ('no field at all', 'Task: {task}', 'Task: {instruction'):
        with pytest.raises(PromptError):
            resolve_template(bad)
    with pytest.raises(PromptError, match='empty'):
        render_prompt(custom, ' ?! ')
    with pytest.raises(PromptError, match='more than'):
        render_prompt(custom, 'x' * 501)


@pytest.mark.parametrize('template', ['', 'rt2', 'openvla', 'Task: {instruction_lower}. Act:'])
def test_every_backend_and_the_trainer_render_the_same_prompt(template):
    from rt2_ros.policy.factory import make_policy
    from rt2_ros.training.robot_data import action_prompt

    local = make_policy(PolicyConfig(backend='local', model_path=str(tiny_checkpoint('rt2')),
                                     prompt_template=template, extra={'warmup': False}))
    served = make_policy(PolicyConfig(backend='openai', url='http://127.0.0.1:9/v1',
                                      model_name='m', prompt_template=template))
    image = np.zeros((8, 8, 3), np.uint8)
    try:
        for instruction in ('Pick up the cube.', '  Put the CUP\n on the plate ', 'stack it?!'):
            expected = build_prompt(template, instruction)
            body = served.build_request(Observation(image=image, instruction=instruction), 'm')
            assert body['messages'][0]['content'][1]['text'] == expected
            assert local.prompt(instruction) == expected
            assert action_prompt(instruction, template or 'rt2') == expected
    finally:
        local.close()
        served.close()
    assert build_prompt('', 'Pick up the cube.') == \
        'Q: what action should the robot take to Pick up the cube? A:'


def test_a_bad_template_is_refused_by_the_openai_backend():
    from rt2_ros.policy.factory import make_policy
    from rt2_ros.policy.settings import PolicyConfigError

    with pytest.raises(PolicyConfigError, match='prompt_template'):
        make_policy(PolicyConfig(backend='openai', url='http://127.0.0.1:9/v1',
                                 prompt_template='no field'))

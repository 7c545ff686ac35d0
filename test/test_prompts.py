"""Prompt templates: the exact wording RT-2 and OpenVLA were trained with, and custom ones."""
import numpy as np
import pytest
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.prompts import (
    build_prompt, GRIPPER_OPEN_AT, PromptError, render_prompt, resolve_template, TEMPLATES,
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


def test_the_gripper_template_states_the_measured_opening_and_never_guesses_it():
    template = resolve_template('rt2_gripper')
    assert render_prompt(template, 'Pick up the cube.', gripper=1.0) == \
        'Q: the gripper is open. what action should the robot take to Pick up the cube? A:'
    # Shut on a block (half open) or on nothing: below 0.9 of the full width reads closed,
    # the simulator expert's own test.
    for opening, word in ((0.95, 'open'), (GRIPPER_OPEN_AT, 'open'), (0.89, 'closed'),
                          (0.4, 'closed'), (0.0, 'closed')):
        assert f'the gripper is {word}.' in render_prompt(template, 'lift it', gripper=opening)
    for missing in (None, float('nan'), 'half'):
        with pytest.raises(PromptError, match='gripper'):
            render_prompt(template, 'lift it', gripper=missing)
    # Templates without {gripper} ignore a measured opening; {gripper} alone is no prompt.
    assert render_prompt(resolve_template('rt2'), 'lift it', gripper=0.2) == \
        render_prompt(resolve_template('rt2'), 'lift it')
    assert render_prompt(resolve_template('{instruction} with the gripper {gripper}'),
                         'lift it', gripper=0.0) == 'lift it with the gripper closed'
    with pytest.raises(PromptError):
        resolve_template('the gripper is {gripper}')


@pytest.mark.parametrize('template', ['', 'rt2', 'openvla', 'rt2_gripper',
                                      'Task: {instruction_lower}. Act:'])
def test_every_backend_and_the_trainer_render_the_same_prompt(template):
    from rt2_ros.policy.factory import make_policy
    from rt2_ros.training.robot_data import action_prompt

    local = make_policy(PolicyConfig(backend='local', model_path=str(tiny_checkpoint('rt2')),
                                     prompt_template=template, extra={'warmup': False}))
    served = make_policy(PolicyConfig(backend='openai', url='http://127.0.0.1:9/v1',
                                      model_name='m', prompt_template=template))
    image = np.zeros((8, 8, 3), np.uint8)
    try:
        cases = (('Pick up the cube.', 1.0), ('  Put the CUP\n on the plate ', 0.5),
                 ('stack it?!', 0.0))
        for instruction, opening in cases:
            expected = build_prompt(template, instruction, gripper=opening)
            body = served.build_request(
                Observation(image=image, instruction=instruction, gripper=opening), 'm')
            assert body['messages'][0]['content'][1]['text'] == expected
            assert local.prompt(instruction, opening) == expected
            assert action_prompt(instruction, template or 'rt2', opening) == expected
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


def test_a_checkpoint_trained_with_the_gripper_prompt_is_asked_that_way(tmp_path):
    """`rt2 train` records its prompt template; the local backend follows it unless told."""
    import json
    import shutil

    from rt2_ros.policy.factory import make_policy

    model = tmp_path / 'model'
    shutil.copytree(tiny_checkpoint('rt2'), model)
    (model / 'training.json').write_text(json.dumps({'config': {'prompt_template':
                                                                'rt2_gripper'}}))
    policy = make_policy(PolicyConfig(backend='local', model_path=str(model)))  # warms up
    told = make_policy(PolicyConfig(backend='local', model_path=str(model),
                                    prompt_template='rt2', extra={'warmup': False}))
    image = np.zeros((8, 8, 3), np.uint8)
    try:
        assert policy.prompt_template == TEMPLATES['rt2_gripper']
        assert told.prompt_template == TEMPLATES['rt2']
        assert policy.infer(Observation(image=image, instruction='lift it', gripper=0.3)).actions \
            is not None
        with pytest.raises(ValueError, match='joint_states'):
            policy.infer(Observation(image=image, instruction='lift it'))
    finally:
        policy.close()
        told.close()

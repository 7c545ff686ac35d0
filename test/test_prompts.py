"""Prompt templates: the exact wording RT-2 and OpenVLA were trained with, and custom ones."""
import pytest
from rt2_ros.policy.prompts import PromptError, render_prompt, resolve_template, TEMPLATES


def test_shipped_templates_render_the_papers_prompts():
    rt2 = resolve_template('rt2')
    assert render_prompt(rt2, 'pick up the Red block.') == \
        'Q: what action should the robot take to pick up the Red block? A:'
    openvla = resolve_template('openvla')
    assert render_prompt(openvla, '  Put the CUP\n on the plate ') == \
        'In: What action should the robot take to put the cup on the plate?\nOut:'
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

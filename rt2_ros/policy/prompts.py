"""
Prompt templates: the exact question a VLA was trained to answer with an action.

A model only acts well on the prompt wording it was fine-tuned with, so the template is a named,
reviewable setting rather than a string assembled in code. Shipped: RT-2's VQA-style prompt and
OpenVLA's. A custom template is any string with `{instruction}` or `{instruction_lower}`.
"""
import re
import string
from typing import Dict

TEMPLATES: Dict[str, str] = {
    # RT-2 paper (Brohan et al., 2023): the action is the answer to a VQA question.
    'rt2': 'Q: what action should the robot take to {instruction}? A:',
    # OpenVLA (Kim et al., 2024), prismatic PurePromptBuilder with the instruction lower-cased.
    'openvla': 'In: What action should the robot take to {instruction_lower}?\nOut:',
}
FIELDS = ('instruction', 'instruction_lower')
MAX_INSTRUCTION_CHARS = 500
_SPACES = re.compile(r'\s+')


class PromptError(ValueError):
    """A template or instruction cannot make a prompt."""


def resolve_template(name_or_template: str, default: str = 'rt2') -> str:
    """Template text for a shipped name, a custom template string, or '' (the default name)."""
    text = name_or_template or default
    if text in TEMPLATES:
        return TEMPLATES[text]
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as exc:
        raise PromptError(f'prompt template {text!r} is malformed: {exc}') from None
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown or not fields:
        raise PromptError(
            f'prompt template {text!r} must be one of {", ".join(TEMPLATES)} or a string using '
            f'{{instruction}} or {{instruction_lower}}' +
            (f' (unknown field: {", ".join(unknown)})' if unknown else ''))
    return text


def clean_instruction(instruction: str) -> str:
    r"""
    One line of plain words: whitespace collapsed, trailing punctuation dropped.

    Templates end the instruction with their own '?', and a newline inside the instruction would
    break line-oriented prompt formats (OpenVLA's `\nOut:`).
    """
    if not isinstance(instruction, str):
        raise PromptError(f'instruction must be text, got {type(instruction).__name__}')
    text = _SPACES.sub(' ', instruction).strip().rstrip('.?!;, ').strip()
    if not text:
        raise PromptError('instruction is empty')
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise PromptError(f'instruction has {len(text)} characters, more than '
                          f'{MAX_INSTRUCTION_CHARS}')
    return text


def render_prompt(template: str, instruction: str) -> str:
    """Fill a resolved template with a cleaned instruction."""
    text = clean_instruction(instruction)
    return template.format(instruction=text, instruction_lower=text.lower())

"""
Prompt templates: the exact question a VLA was trained to answer with an action.

A model only acts well on the prompt wording it was fine-tuned with, so the template is a named,
reviewable setting rather than a string assembled in code. Shipped: RT-2's VQA-style prompt,
the same with the gripper's state, and OpenVLA's. A custom template is any string with
`{instruction}` or `{instruction_lower}`, and optionally `{gripper}`.

`{gripper}` is proprioception written as a word: `open` or `closed` from the gripper's measured
opening (Observation.gripper). Whether the fingers have shut on a block decides between "close
and hold" and "lift", and it is a few pixels of a small camera image; a model told the state
does not have to guess it.

This is the one renderer: the local and openai backends, `rt2 train` and `rt2 bag export` all
call build_prompt, so a model is asked at run time exactly what it was trained on, wherever it
runs (test_prompts checks that every one of them writes the same text).
"""
import math
import re
import string
from typing import Dict, Optional

TEMPLATES: Dict[str, str] = {
    # RT-2 paper (Brohan et al., 2023): the action is the answer to a VQA question.
    'rt2': 'Q: what action should the robot take to {instruction}? A:',
    # The same question told whether the gripper is open or closed (proprioception).
    'rt2_gripper': 'Q: the gripper is {gripper}. what action should the robot take to '
                   '{instruction}? A:',
    # OpenVLA (Kim et al., 2024), prismatic PurePromptBuilder with the instruction lower-cased.
    # Training put the answer after "Out: ", so the prompt ends with that space: a Llama
    # tokenizer writes it as the empty "▁" token OpenVLA's predict_action appends by hand.
    'openvla': 'In: What action should the robot take to {instruction_lower}?\nOut: ',
}
FIELDS = ('instruction', 'instruction_lower', 'gripper')
INSTRUCTION_FIELDS = ('instruction', 'instruction_lower')
# At or above this opening (a fraction of the full width) the gripper reads `open`; below it,
# shut on a block or on nothing, `closed`. The simulator's expert decides by the same test.
GRIPPER_OPEN_AT = 0.9
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
    if unknown or not set(fields) & set(INSTRUCTION_FIELDS):
        raise PromptError(
            f'prompt template {text!r} must be one of {", ".join(TEMPLATES)} or a string using '
            f'{{instruction}} or {{instruction_lower}} (and optionally {{gripper}})' +
            (f' (unknown field: {", ".join(unknown)})' if unknown else ''))
    return text


def uses_gripper(template: str) -> bool:
    """Whether a resolved template states the gripper (so every prompt needs its opening)."""
    return any(field == 'gripper' for _, field, _, _ in string.Formatter().parse(template))


def gripper_word(opening: float) -> str:
    """Return `open` or `closed` for an opening (0 = shut, 1 = fully open)."""
    return 'open' if float(opening) >= GRIPPER_OPEN_AT else 'closed'


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


def render_prompt(template: str, instruction: str, gripper: Optional[float] = None) -> str:
    """
    Fill a resolved template with a cleaned instruction (and the gripper's opening, 0..1).

    A template that states the gripper cannot be filled without its opening: guessing `open`
    would tell the model something false at the moment it matters.
    """
    text = clean_instruction(instruction)
    word = ''
    if uses_gripper(template):
        if gripper is None:
            raise PromptError("this prompt states the gripper's opening and none was measured "
                              '(the controller reads it from joint_states: set '
                              'proprioception.gripper_joint)')
        try:
            opening = float(gripper)
        except (TypeError, ValueError):
            raise PromptError(f'gripper opening must be a number, got {gripper!r}') from None
        if not math.isfinite(opening):
            raise PromptError(f'gripper opening must be finite, got {opening}')
        word = gripper_word(opening)
    return template.format(instruction=text, instruction_lower=text.lower(), gripper=word)


def build_prompt(template_setting: str, instruction: str, default: str = 'rt2',
                 gripper: Optional[float] = None) -> str:
    """Render instruction with a template setting (a shipped name, a custom template or '')."""
    return render_prompt(resolve_template(template_setting, default), instruction, gripper)

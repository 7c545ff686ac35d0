"""
Export a recording as an RT-2-style training set: image files plus one JSON line per decision.

RT-2 co-fine-tunes a VLM on robot steps written as text: the camera image, the prompt with the
instruction, and the action as the space's tokens (for `rt2`, eight integers). A row therefore
carries the ready-to-train `prompt` and `action` strings and, beside them, the bins and values
they came from, so a team can re-tokenize for another model without re-reading the bag.
"""
from datetime import datetime, timezone
import json
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from rt2_ros.actions.codec import Codec, TextActionCodec
from rt2_ros.bags.errors import BagError
from rt2_ros.bags.reader import BagReader
from rt2_ros.bags.steps import iter_steps, StepPlan
from rt2_ros.policy.prompts import PromptError, render_prompt, resolve_template

DATASET_FILE = 'dataset.jsonl'
INFO_FILE = 'info.json'
IMAGE_DIR = 'images'
RT2_PROMPT = 'rt2'  # a template name of rt2_ros.policy.prompts, or a custom template
IMAGE_FORMATS = ('png', 'jpg')


def prepare_output(out: Path) -> None:
    """Refuse to mix a new export into an existing one; create the directories."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BagError('exists', f'{out} exists and is not an empty directory; choose a new '
                       'output directory')
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)


def _write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise BagError('usage', f'cannot write image {path}')


def _prompt(template: str, instruction: str, gripper: Optional[float]) -> str:
    try:
        return render_prompt(template, instruction, gripper)
    except PromptError as exc:
        raise BagError('usage', f'cannot write the prompt of a step: {exc}') from None


def export_dataset(bag: BagReader, plan: StepPlan, codec: Codec, out: Path,
                   image_format: str = 'png', prompt_template: str = RT2_PROMPT,
                   assume_gripper: Optional[str] = None, progress: bool = True) -> Dict[str, Any]:
    """Write OUT/dataset.jsonl, OUT/images/*, OUT/info.json; return the info written."""
    from tqdm import tqdm
    space = plan.space
    if image_format not in IMAGE_FORMATS:
        raise BagError('usage', f'image format must be one of {", ".join(IMAGE_FORMATS)}')
    try:
        prompt_template = resolve_template(prompt_template, RT2_PROMPT)
    except PromptError as exc:
        raise BagError('usage', str(exc)) from None
    gripper = space.gripper_index
    fill = None
    if assume_gripper is not None:
        fill = space.gripper_open_value if assume_gripper == 'open' else \
            space.gripper_closed_value
    prepare_output(out)
    rows = 0
    clipped = 0
    episode_steps: Dict[int, int] = {}
    bar = tqdm(total=len(plan.steps), desc='export', unit='step', disable=not progress,
               leave=False)
    with (out / DATASET_FILE).open('w', encoding='utf-8') as dataset:
        for step in iter_steps(bag, plan):
            action = step.action
            if gripper is not None and not np.isfinite(action[gripper]) and fill is not None:
                action[gripper] = fill
            unknown = [space.names[i] for i in range(space.size) if not np.isfinite(action[i])]
            if unknown:
                hint = ''
                if gripper is not None and unknown == [space.names[gripper]]:
                    hint = ' (or pass --assume-gripper open|closed)'
                raise BagError('missing_topic', f'the recording does not determine '
                               f'{", ".join(unknown)} at step {step.index}; record an action '
                               f'topic or the command topics for them{hint}')
            bins = codec.values_to_bins(action)
            tokens = codec.encode(action) if isinstance(codec, TextActionCodec) else \
                ' '.join(str(i) for i in codec.encode(action))
            image_name = f'{IMAGE_DIR}/{step.index:06d}.{image_format}'
            _write_image(out / image_name, step.image)
            number = episode_steps.get(step.episode, 0)
            episode_steps[step.episode] = number + 1
            clipped += bool(step.clipped)
            row = {
                'image': image_name, 'instruction': step.instruction,
                'prompt': _prompt(prompt_template, step.instruction, step.gripper),
                'gripper': step.gripper,
                'action': tokens, 'bins': [int(b) for b in bins],
                'values': [round(float(v), 7) for v in action],
                'terminate': step.terminate, 'episode': step.episode, 'step': number,
                'index': step.index, 'time_ns': step.time_ns,
            }
            dataset.write(json.dumps(row) + '\n')
            rows += 1
            bar.update(1)
    bar.close()
    info = {
        'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'bag': str(bag.path), 'space': space.name, 'names': list(space.names),
        'tokenization': space.tokenization, 'prompt_template': prompt_template,
        'rows': rows, 'episodes': len(episode_steps), 'clipped_rows': clipped,
        'image_format': image_format, **{k: v for k, v in plan.describe().items()
                                         if k not in ('steps', 'episodes')},
        'warnings': list(plan.warnings) + list(bag.warnings),
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2) + '\n', encoding='utf-8')
    return info

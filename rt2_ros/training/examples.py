"""
Training examples as the model sees them: a small image, a prompt, the answer text.

Robot steps and VQA questions become the same thing - (image, question, answer) - which is the
RT-2 recipe: an action is just the answer to "what action should the robot take to ...?".
Images are stored already resized to the model's input, with exactly the resampling of the
checkpoint's SigLIP image processor (PIL bicubic), so training sees the pixels that inference
will see after the `local` backend's processor resizes a 224x224 camera frame.
"""
from dataclasses import dataclass, field
from typing import List

import numpy as np
from PIL import Image

KINDS = ('robot', 'vqa')


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 image to size x size the way SiglipImageProcessor(Pil) does."""
    if image.shape[0] == size and image.shape[1] == size:
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


@dataclass
class ExampleSet:
    """
    Examples that share an image array (several questions may ask about one image).

    image_index[i] is the row of `images` example i is about; prompts are full prompts
    (already templated), answers the exact target text (the model also learns the end token).
    """

    images: np.ndarray                    # (N_images, S, S, 3) uint8
    image_index: List[int] = field(default_factory=list)
    prompts: List[str] = field(default_factory=list)
    answers: List[str] = field(default_factory=list)
    kinds: List[str] = field(default_factory=list)
    tags: List[str] = field(default_factory=list)  # family / question type, for statistics

    def __len__(self) -> int:
        return len(self.prompts)

    def add(self, image_row: int, prompt: str, answer: str, kind: str, tag: str = '') -> None:
        self.image_index.append(int(image_row))
        self.prompts.append(prompt)
        self.answers.append(answer)
        self.kinds.append(kind)
        self.tags.append(tag)

    def save(self, path: str) -> None:
        """Write the set to an .npz (images and text; no pickle)."""
        np.savez(path, images=self.images, image_index=np.asarray(self.image_index, np.int64),
                 prompts=np.asarray(self.prompts, dtype=str),
                 answers=np.asarray(self.answers, dtype=str),
                 kinds=np.asarray(self.kinds, dtype=str), tags=np.asarray(self.tags, dtype=str))

    @staticmethod
    def load(path: str) -> 'ExampleSet':
        with np.load(path, allow_pickle=False) as data:
            return ExampleSet(images=data['images'], image_index=data['image_index'].tolist(),
                              prompts=data['prompts'].tolist(), answers=data['answers'].tolist(),
                              kinds=data['kinds'].tolist(), tags=data['tags'].tolist())


def concatenate(sets: List['ExampleSet']) -> ExampleSet:
    """Join example sets, renumbering their image rows."""
    sets = [s for s in sets if len(s)]
    if not sets:
        raise ValueError('no examples to join')
    images = np.concatenate([s.images for s in sets])
    out = ExampleSet(images=images)
    offset = 0
    for s in sets:
        out.image_index += [i + offset for i in s.image_index]
        out.prompts += s.prompts
        out.answers += s.answers
        out.kinds += s.kinds
        out.tags += s.tags
        offset += len(s.images)
    return out

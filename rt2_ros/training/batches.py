r"""
Token sequences and batches in exactly the layout PaliGemma's processor gives at inference.

The processor writes `<image> x N, <bos>, prompt, "\n"` as the prefix (bidirectional attention,
token_type 0) and `answer, <eos>` as the suffix (causal, token_type 1, the only tokens with a
loss). Encoding each prompt once with the tokenizer and assembling batches here is much faster
than calling the processor per step; `test_training.py` checks the ids are identical.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
from rt2_ros.training.examples import ExampleSet
import torch


class SequenceEncoder:
    """Prompt/answer text -> token ids for a checkpoint's tokenizer and image length."""

    def __init__(self, tokenizer, image_tokens: int, image_token_id: int) -> None:
        self.tokenizer = tokenizer
        self.image_tokens = int(image_tokens)
        self.image_token_id = int(image_token_id)
        self.bos = int(tokenizer.bos_token_id)
        self.eos = int(tokenizer.eos_token_id)
        self._prefix_cache: Dict[str, List[int]] = {}

    def prefix(self, prompt: str) -> List[int]:
        ids = self._prefix_cache.get(prompt)
        if ids is None:
            text = self.tokenizer(prompt + '\n', add_special_tokens=False)['input_ids']
            ids = [self.bos] + list(text)
            self._prefix_cache[prompt] = ids
        return ids

    def answer(self, text: str) -> List[int]:
        return list(self.tokenizer(text, add_special_tokens=False)['input_ids']) + [self.eos]


def ordinal_positions(kind: str, tag: str, answer_length: int) -> List[int]:
    """
    Answer positions whose integer is a quantity, where a near miss is nearly right.

    Robot actions: the six motion dimensions (not terminate, not the gripper, not the end);
    VQA pointing: both coordinates. Their labels get ordinal smoothing in the loss.
    """
    if kind == 'robot' and answer_length == 9:
        return [1, 2, 3, 4, 5, 6]
    if kind == 'vqa' and tag.startswith('point') and answer_length == 3:
        return [0, 1]
    return []


class EncodedSet:
    """An ExampleSet with every example's prefix and answer ids, ready to batch."""

    def __init__(self, examples: ExampleSet, encoder: SequenceEncoder) -> None:
        self.examples = examples
        self.encoder = encoder
        self.prefix = [np.asarray(encoder.prefix(p), np.int64) for p in examples.prompts]
        answers: Dict[str, np.ndarray] = {}
        self.answer = []
        for text in examples.answers:
            if text not in answers:
                answers[text] = np.asarray(encoder.answer(text), np.int64)
            self.answer.append(answers[text])
        self.image_index = np.asarray(examples.image_index, np.int64)
        self.ordinal = [ordinal_positions(k, t, len(a))
                        for k, t, a in zip(examples.kinds, examples.tags, self.answer)]

    def __len__(self) -> int:
        return len(self.prefix)

    def max_length(self) -> int:
        if not len(self):
            return self.encoder.image_tokens
        return self.encoder.image_tokens + max(len(p) + len(a)
                                               for p, a in zip(self.prefix, self.answer))


def pixel_values(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] (SigLIP's rescale 1/255, mean 0.5, std 0.5)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


def make_batch(sets: Sequence[EncodedSet], picks: Sequence[Tuple[int, int]]
               ) -> Dict[str, torch.Tensor]:
    """
    Batch examples (set number, example number), right-padded.

    Right padding leaves every real token at the position the unpadded inference prompt has.
    Returns the model inputs plus `label_positions` (B, T) with the index of the hidden state
    that predicts each answer token and `labels` (B, T), -100 where padded.
    """
    encoder = sets[0].encoder
    n_img = encoder.image_tokens
    rows, answers, images = [], [], []
    for s, i in picks:
        data = sets[s]
        prefix, answer = data.prefix[i], data.answer[i]
        rows.append((prefix, answer))
        answers.append(len(answer))
        images.append(data.examples.images[data.image_index[i]])
    length = max(n_img + len(p) + len(a) for p, a in rows)
    batch = len(rows)
    ids = np.zeros((batch, length), np.int64)
    mask = np.zeros((batch, length), np.int64)
    types = np.zeros((batch, length), np.int64)
    t_max = max(answers)
    positions = np.zeros((batch, t_max), np.int64)
    labels = np.full((batch, t_max), -100, np.int64)
    ordinal = np.zeros((batch, t_max), bool)
    for b, (s, i) in enumerate(picks):
        ordinal[b, sets[s].ordinal[i]] = True
    for b, (prefix, answer) in enumerate(rows):
        start = n_img + len(prefix)
        end = start + len(answer)
        ids[b, :n_img] = encoder.image_token_id
        ids[b, n_img:start] = prefix
        ids[b, start:end] = answer
        mask[b, :end] = 1
        types[b, start:end] = 1
        positions[b, :len(answer)] = np.arange(start - 1, end - 1)
        labels[b, :len(answer)] = answer
    return {
        'input_ids': torch.from_numpy(ids), 'attention_mask': torch.from_numpy(mask),
        'token_type_ids': torch.from_numpy(types), 'pixel_values': pixel_values(np.stack(images)),
        'label_positions': torch.from_numpy(positions), 'labels': torch.from_numpy(labels),
        'ordinal': torch.from_numpy(ordinal),
    }

"""
The demo VLA's architecture: the project's PaliGemma-style builder at a trainable size.

Nothing new is invented here - `rt2_ros.models.tiny_vla` builds SigLIP + linear projector +
Gemma from config with a locally built tokenizer; this only picks the sizes and the vocabulary
words (every word of the training text, so instructions are word tokens, not spellings).

Sizes are set by what a 2-core CPU can train in about an hour and run in < 50 ms per decision:
a 96x96 input cut into 12x12 patches gives 64 image tokens (the decoder's sequence length is what
costs, not the pixels, so larger patches buy resolution for free).
"""
from dataclasses import asdict, dataclass
import math
import re
from typing import Any, Dict, List, Tuple

from rt2_ros.models.tiny_vla import SPACE_MARK, TinyVLASpec, word_list
from rt2_ros.sim.objects import COLOUR_OF_THINGS, COLOURS, SHAPES, SIZE_ORDER
from rt2_ros.sim.splits import REFERENT_PHRASES, REGIONS, TEMPLATES
from rt2_ros.training.vqa import NUMBER_WORDS, THESAURUS
import torch

_WORD = re.compile(r'[a-z]+')


@dataclass
class ModelSize:
    """Sizes of the trained model (fields of TinyVLASpec)."""

    image_size: int = 96
    patch_size: int = 12
    vision_hidden: int = 128
    vision_layers: int = 3
    vision_heads: int = 4
    hidden: int = 192
    layers: int = 4
    heads: int = 4
    kv_heads: int = 1
    mlp_ratio: int = 4
    vision_stem: str = 'patch'

    def to_dict(self) -> Dict[str, int]:
        return asdict(self)


def training_words() -> Tuple[str, ...]:
    """Every word the training text uses (train templates, referents, regions, VQA)."""
    texts: List[str] = []
    for family, templates in TEMPLATES.items():
        texts += [text for tid, text in templates.items() if '/h' not in tid]
    texts += [p for phrases in REFERENT_PHRASES.values() for p in phrases]
    texts += list(REGIONS) + list(COLOURS) + list(SHAPES) + list(SIZE_ORDER)
    texts += [t for things in COLOUR_OF_THINGS.values() for t in things]
    texts += list(NUMBER_WORDS) + list(THESAURUS) + list(THESAURUS.values())
    texts += ['caption the image', 'describe the scene', 'what is on the table',
              'how many blocks are there', 'what colour is', 'what shape is', 'what size is',
              'is there a', 'left or right of', 'which is closer to the robot',
              'where is the', 'is the gripper open or closed', 'another word for',
              'what does mean', 'yes no']
    words: List[str] = []
    for text in texts:
        words += _WORD.findall(text.lower())
    return tuple(dict.fromkeys(words))


def model_spec(size: ModelSize, seed: int) -> TinyVLASpec:
    """Return the builder recipe for a size and weight-initialisation seed."""
    spec = TinyVLASpec(space='rt2', seed=int(seed), words=word_list(training_words()),
                       **size.to_dict())
    spec.validate()
    return spec


def sincos_table(positions: torch.Tensor, width: int, max_period: float) -> torch.Tensor:
    """Return (N, width) sine/cosine features of positions over geometric frequencies."""
    half = width // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if table.shape[1] < width:
        table = torch.cat([table, torch.zeros(len(positions), width - table.shape[1])], dim=1)
    return table


def init_for_training(model: Any, tokenizer: Any, spec: TinyVLASpec) -> None:
    """
    Give a from-scratch model the structure pretrained VLMs start with, before training.

    Training from scratch on a CPU budget cannot afford to discover what pretraining would
    have given for free, so two tables get structured initial values (the architecture and
    what is trained are unchanged):
    - the vision tower's patch position embeddings: 2D sine-cosine (ViT/MAE), so neighbouring
      patches start with similar position codes and localization has a smooth basis;
    - the integer tokens "0".."255" (action bins, coordinates): sine-cosine codes of their
      value, so the tied output layer starts with nearby integers scoring alike - an ordered
      head instead of 256 unrelated classes (the RT-2 paper's PaLI-X scheme relies on the
      pretrained model already knowing its integers).
    """
    with torch.no_grad():
        embeddings = model.model.vision_tower.embeddings.position_embedding.weight
        count, width = embeddings.shape
        side = int(round(math.sqrt(count)))
        rows = torch.arange(count) // side
        cols = torch.arange(count) % side
        table = torch.cat([sincos_table(rows, width // 2, 4.0 * side),
                           sincos_table(cols, width - width // 2, 4.0 * side)], dim=1)
        embeddings.copy_(table * (0.5 / float(table.std())))
        ids = tokenizer.convert_tokens_to_ids([f'{SPACE_MARK}{k}' for k in range(spec.int_tokens)])
        words = model.get_input_embeddings().weight
        codes = sincos_table(torch.arange(len(ids)), words.shape[1], 1000.0)
        words[torch.as_tensor(ids)] = codes * (float(words.std()) / float(codes.std()))


def parameter_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))

"""
Tiny vision-language-action checkpoints built from config: a real architecture, random weights.

No weights can be downloaded here, yet loading, prompting and constrained decoding must run for
real. So this builds a PaliGemma model (SigLIP vision tower -> linear projector -> Gemma decoder,
`PaliGemmaForConditionalGeneration`), the open descendant of PaLI, the family of RT-2-PaLI-X,
with a tokenizer made locally with `tokenizers`, and saves it with `save_pretrained`
(safetensors) so AutoProcessor / AutoModelForImageTextToText load it like any checkpoint.

Action tokens. The RT-2 paper uses two schemes:
- PaLI-X: integers up to 1000 have their own tokens, so bin k is written as the token of k.
- PaLM-E: the 256 least-used tokens are overwritten to mean bins 0..255.
`--space rt2` uses the PaLI-X scheme: the vocabulary has one token "▁k" for every integer
0..int_tokens-1, so an action is the 8 text tokens of "1 128 91 241 5 101 127 217". That is the
scheme the rt2 action space (text integers), OpenAI-compatible servers and people all read, it
needs no reserved ids, and a VQA-trained model already knows the integers. `--space openvla` uses
the PaLM-E scheme as OpenVLA does: the last 256 ids of the vocabulary are the action block
(id = vocab_size - 1 - bin), tokens named `<act###>` after their bin.

Everything is a parameter (image/patch size, widths, depths, heads, vocabulary words) so the demo
model can be trained from a bigger build of the same recipe; the default vocabulary already holds
the words of tabletop VQA and captions (colours, shapes, sizes, numbers, left/right, block, pick,
put, ...), the RT-2 and OpenVLA prompt words and the chain-of-thought `Plan:` / `Action:`.
"""
from dataclasses import asdict, dataclass, field
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from rt2_ros.resources import find_data
import yaml

SPACES = ('rt2', 'openvla')
VISION_STEMS = ('patch', 'film_conv')
SPECIAL_TOKENS = ('<pad>', '<eos>', '<bos>', '<unk>', '<image>')  # Gemma's ids 0..3, then image
PAD_ID, EOS_ID, BOS_ID, UNK_ID, IMAGE_ID = range(5)
ACTION_BLOCK = 256
MAX_INT_TOKENS = 1001
SPACE_MARK = '\u2581'  # SentencePiece's "▁": a space that belongs to the following word
# PaliGemma's processor registers these detection/segmentation tokens; keeping them inside the
# vocabulary keeps every id the tokenizer can produce inside the embedding matrix.
PALIGEMMA_EXTRA = tuple(f'<loc{i:04d}>' for i in range(1024)) + tuple(
    f'<seg{i:03d}>' for i in range(128))

PROMPT_WORDS = (
    'Q:', 'A:', 'In:', 'Out:', 'Plan:', 'Action:', 'Q', 'A', 'What', 'what', 'action', 'should',
    'the', 'robot', 'take', 'to', 'do', 'next',
)
SCENE_WORDS = (
    # tasks and verbs
    'pick', 'place', 'put', 'push', 'move', 'lift', 'grasp', 'grab', 'release', 'drop', 'stack',
    'open', 'close', 'rotate', 'slide', 'reach', 'go', 'stop', 'done', 'terminate', 'approach',
    'lower', 'raise', 'up', 'down',
    # objects
    'block', 'blocks', 'cube', 'cubes', 'ball', 'balls', 'cylinder', 'bowl', 'cup', 'plate',
    'table', 'gripper', 'arm', 'object', 'objects', 'target', 'goal', 'zone', 'bin', 'box',
    # colours
    'red', 'green', 'blue', 'yellow', 'orange', 'purple', 'pink', 'brown', 'white', 'black',
    'grey', 'gray', 'cyan', 'magenta', 'color', 'colour',
    # shapes and sizes
    'square', 'circle', 'round', 'triangle', 'star', 'shape', 'small', 'big', 'large', 'tiny',
    'medium', 'size', 'tall', 'short',
    # space
    'left', 'right', 'front', 'back', 'behind', 'top', 'bottom', 'middle', 'center', 'centre',
    'corner', 'edge', 'above', 'below', 'under', 'over', 'near', 'far', 'next', 'between',
    'closest', 'farthest', 'on', 'onto', 'into', 'in', 'of', 'from', 'at', 'by', 'with',
    # question words, glue
    'how', 'many', 'where', 'which', 'is', 'are', 'there', 'it', 'this', 'that', 'a', 'an',
    'and', 'or', 'not', 'no', 'yes', 'none', 'image', 'scene', 'picture', 'shows', 'see',
    # numbers as words
    'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten',
)
DEFAULT_WORDS = PROMPT_WORDS + SCENE_WORDS


class TinyVLAError(ValueError):
    """A tiny-VLA recipe is invalid (unknown space, inconsistent sizes)."""


@dataclass
class TinyVLASpec:
    """
    Recipe for a tiny checkpoint; the defaults build in about a second and are ~1 MB.

    integer_tokens=False leaves integers to be spelt digit by digit (tests use it to show the
    constraint does not depend on the tokenizer's integer tokens).
    """

    space: str = 'rt2'
    seed: int = 0
    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 32
    vision_layers: int = 1
    vision_heads: int = 2
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    kv_heads: int = 1
    mlp_ratio: int = 2
    int_tokens: int = 256
    integer_tokens: bool = True
    words: Tuple[str, ...] = field(default_factory=lambda: DEFAULT_WORDS)
    max_positions: int = 1024
    # 'patch': SigLIP's patch embedding (a stock PaliGemma); 'film_conv': the instruction-
    # conditioned convolutional stem of rt2_ros.models.rt2_vla (model type rt2_vla).
    vision_stem: str = 'patch'

    def validate(self) -> None:
        if self.space not in SPACES:
            raise TinyVLAError(f'unknown space {self.space!r}; choose one of {", ".join(SPACES)}')
        positive = ('image_size', 'patch_size', 'vision_hidden', 'vision_layers', 'vision_heads',
                    'hidden', 'layers', 'heads', 'kv_heads', 'mlp_ratio', 'max_positions')
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise TinyVLAError(f'{name} must be at least 1')
        if self.image_size % self.patch_size:
            raise TinyVLAError(f'image_size {self.image_size} is not a multiple of patch_size '
                               f'{self.patch_size}')
        if self.vision_hidden % self.vision_heads or self.hidden % self.heads:
            raise TinyVLAError('hidden sizes must be multiples of their head counts')
        if self.heads % self.kv_heads:
            raise TinyVLAError(f'heads {self.heads} is not a multiple of kv_heads {self.kv_heads}')
        if not 0 <= self.int_tokens <= MAX_INT_TOKENS:
            raise TinyVLAError(f'int_tokens must be 0..{MAX_INT_TOKENS}')
        if self.vision_stem not in VISION_STEMS:
            raise TinyVLAError(f'unknown vision_stem {self.vision_stem!r}; choose one of '
                               f'{", ".join(VISION_STEMS)}')
        if self.vision_stem == 'film_conv':
            from rt2_ros.models.rt2_vla import stem_strides
            try:
                stem_strides(self.patch_size)
            except ValueError as exc:
                raise TinyVLAError(str(exc)) from None
        if self.image_tokens + 64 > self.max_positions:
            raise TinyVLAError(f'max_positions {self.max_positions} leaves no room for text '
                               f'after {self.image_tokens} image tokens')

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data['words'] = list(self.words)
        return data


def vocabulary(spec: TinyVLASpec) -> List[Tuple[str, float]]:
    """
    (piece, score) list in id order; a piece's id is its index.

    Scores make a whole word or integer cheaper than spelling it, so the Unigram model picks
    "▁128" over "▁", "1", "2", "8"; byte pieces catch any other character (byte fallback).
    """
    pieces: List[Tuple[str, float]] = [(t, 0.0) for t in SPECIAL_TOKENS]
    pieces += [(t, -2.0) for t in PALIGEMMA_EXTRA]
    pieces += [(f'<0x{b:02X}>', -30.0) for b in range(256)]
    chars = [SPACE_MARK, '\n'] + [chr(c) for c in range(33, 127)]
    pieces += [(c, -8.0) for c in chars]
    seen = {p for p, _ in pieces}
    words = []
    for word in spec.words:
        if not word or any(ch.isspace() for ch in word):
            raise TinyVLAError(f'vocabulary word {word!r} must be non-empty without spaces')
        words.append(SPACE_MARK + word)
    if spec.integer_tokens:
        words += [f'{SPACE_MARK}{k}' for k in range(spec.int_tokens)]
    for word in words:
        if word not in seen:
            seen.add(word)
            pieces.append((word, -1.0))
    if spec.space == 'openvla':
        # Inverted tail, as OpenVLA: the last id is bin 0, the first id of the block bin 255.
        pieces += [(f'<act{b:03d}>', -40.0) for b in reversed(range(ACTION_BLOCK))]
    return pieces


def build_tokenizer(spec: TinyVLASpec) -> Any:
    """Build a SentencePiece-style fast tokenizer (Metaspace + Unigram, byte fallback)."""
    from tokenizers import AddedToken, decoders, models, pre_tokenizers, Tokenizer
    from transformers import PreTrainedTokenizerFast

    pieces = vocabulary(spec)
    core = Tokenizer(models.Unigram(pieces, unk_id=UNK_ID, byte_fallback=True))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE_MARK, prepend_scheme='always')
    core.decoder = decoders.Sequence([
        decoders.Replace(SPACE_MARK, ' '), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(' ', 1, 0)])
    core.add_special_tokens([AddedToken(t, special=True, normalized=False)
                             for t in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token='<pad>', eos_token='<eos>', bos_token='<bos>',
        unk_token='<unk>', padding_side='left')


def build_processor(spec: TinyVLASpec, tokenizer: Any = None) -> Any:
    """Build the PaliGemma processor: SigLIP image preprocessing + the tokenizer."""
    from transformers import PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    image_processor = SiglipImageProcessorPil(
        size={'height': spec.image_size, 'width': spec.image_size})
    image_processor.image_seq_length = spec.image_tokens
    return PaliGemmaProcessor(image_processor=image_processor,
                              tokenizer=tokenizer or build_tokenizer(spec))


def build_model(spec: TinyVLASpec, vocab_size: int) -> Any:
    """Build PaliGemmaForConditionalGeneration from config, weights drawn with spec.seed."""
    import torch
    from transformers import (
        GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, SiglipVisionConfig,
    )

    vision = SiglipVisionConfig(
        hidden_size=spec.vision_hidden, intermediate_size=spec.vision_hidden * spec.mlp_ratio,
        num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
        image_size=spec.image_size, patch_size=spec.patch_size, vision_use_head=False,
        projection_dim=spec.hidden)
    text = GemmaConfig(
        vocab_size=vocab_size, hidden_size=spec.hidden,
        intermediate_size=spec.hidden * spec.mlp_ratio, num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
        head_dim=spec.hidden // spec.heads, max_position_embeddings=spec.max_positions,
        pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=BOS_ID)
    config_class, model_class = PaliGemmaConfig, PaliGemmaForConditionalGeneration
    if spec.vision_stem == 'film_conv':
        from rt2_ros.models.rt2_vla import Rt2VlaConfig, Rt2VlaForConditionalGeneration
        config_class, model_class = Rt2VlaConfig, Rt2VlaForConditionalGeneration
    config = config_class(
        vision_config=vision, text_config=text, image_token_index=IMAGE_ID,
        vocab_size=vocab_size, projection_dim=spec.hidden, hidden_size=spec.hidden,
        pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=BOS_ID)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)
    try:
        model = model_class(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.pad_token_id = PAD_ID
    model.generation_config.eos_token_id = EOS_ID
    model.generation_config.bos_token_id = BOS_ID
    return model.eval()


def action_space_document(spec: TinyVLASpec, vocab_size: int,
                          note: str = '(tiny random VLA, rt2 make-tiny-vla)',
                          nominal_rate_hz: Optional[float] = None) -> Dict[str, Any]:
    """
    Return the checkpoint's action_space.yaml: the preset with the real vocabulary size.

    nominal_rate_hz: the decision rate the model was trained at, when it differs from the
    preset's; the controller spreads each action over 1 / nominal_rate_hz seconds.
    """
    preset = find_data('config', 'action_spaces', f'{spec.space}.yaml')
    data = yaml.safe_load(preset.read_text(encoding='utf-8'))
    if nominal_rate_hz is not None:
        data['nominal_rate_hz'] = float(nominal_rate_hz)
    if spec.space == 'openvla':
        data['vocab'] = {'layout': 'inverted_tail', 'vocab_size': int(vocab_size)}
    data['description'] = f'{data.get("description", "")} {note}'
    return data


def dataset_statistics(space: Dict[str, Any]) -> Dict[str, Any]:
    """
    OpenVLA-style statistics mapping [-1, 1] to a tabletop arm's per-step motion.

    Translation +-0.05 m and rotation +-0.25 rad per step, as the rt2 preset; the gripper is
    masked (left as decoded), as in OpenVLA's released statistics.
    """
    q01, q99, mask = [], [], []
    for dim in space['dimensions']:
        role = dim.get('role')
        if role == 'translation':
            q01.append(-0.05)
            q99.append(0.05)
            mask.append(True)
        elif role == 'rotation':
            q01.append(-0.25)
            q99.append(0.25)
            mask.append(True)
        else:
            q01.append(0.0)
            q99.append(1.0)
            mask.append(False)
    return {'tiny_tabletop': {'action': {'q01': q01, 'q99': q99, 'mask': mask},
                              'num_transitions': 0, 'num_trajectories': 0}}


def save_tiny_vla(out_dir: Union[str, Path], spec: TinyVLASpec) -> Path:
    """Build and write a checkpoint directory; returns its path."""
    spec.validate()
    processor = build_processor(spec)
    model = build_model(spec, len(processor.tokenizer))
    return write_checkpoint(out_dir, spec, model, processor,
                            '(tiny random VLA, rt2 make-tiny-vla)', 'rt2 make-tiny-vla')


def write_checkpoint(out_dir: Union[str, Path], spec: TinyVLASpec, model: Any, processor: Any,
                     description: str, writer: str,
                     nominal_rate_hz: Optional[float] = None) -> Path:
    """
    Write a model built from `spec` (random or trained) as a checkpoint directory.

    Weights as safetensors, the processor (tokenizer + image processor), the action space the
    model was built for and the recipe; `rt2 train` uses it for trained weights.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = len(processor.tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    space = action_space_document(spec, vocab_size, description, nominal_rate_hz)
    header = ('# Action space of this checkpoint (read by the local policy backend).\n'
              f'# Written by {writer} from the {spec.space} preset.\n')
    (out / 'action_space.yaml').write_text(header + yaml.safe_dump(space, sort_keys=False),
                                           encoding='utf-8')
    if spec.space == 'openvla':
        (out / 'dataset_statistics.json').write_text(
            json.dumps(dataset_statistics(space), indent=2), encoding='utf-8')
    (out / 'tiny_vla.json').write_text(json.dumps(spec.to_json(), indent=2), encoding='utf-8')
    return out


def spec_from_args(space: str, seed: int = 0, **sizes: Any) -> TinyVLASpec:
    """Spec from CLI-style arguments; None values keep the defaults."""
    spec = TinyVLASpec(space=space, seed=int(seed),
                       **{k: v for k, v in sizes.items() if v is not None})
    spec.validate()
    return spec


def word_list(words: Sequence[str]) -> Tuple[str, ...]:
    """DEFAULT_WORDS plus extra words, order kept, duplicates dropped."""
    return tuple(dict.fromkeys(list(DEFAULT_WORDS) + list(words)))

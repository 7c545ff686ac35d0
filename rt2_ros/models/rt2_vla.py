"""
PaliGemma with an instruction-conditioned convolutional image stem, known to the Auto classes.

A VLA trained from random weights must learn to find the block an instruction names before any
action can follow from it; a web-pretrained VLM brings that skill, a small model here does not.
A stock PaliGemma cuts the image into patches that attend to the text only inside the decoder.
This variant replaces the patch embedding with three strided 3x3 convolutions over RGB plus row
and column coordinate channels, each followed by BatchNorm, a FiLM scale and shift computed from
the mean of the prompt's text embeddings (RT-1's FiLM-EfficientNet idea) and ReLU. The features
then carry "where is the thing this sentence is about" into the vision tower's transformer layers,
so the decoder reads a located target instead of locating it. Measured: with the same data and
steps the stock patch tower learned to point at the target but not to move to it.

Everything else is PaliGemma: the SigLIP encoder layers, the projector, the Gemma decoder, the
prefix-LM attention, the processor and the checkpoint layout. `Rt2VlaConfig` (model type
`rt2_vla`) and `Rt2VlaForConditionalGeneration` are registered with AutoConfig, AutoModel and
AutoModelForImageTextToText when this module is imported (rt2_ros.policy.local does), so
`AutoModelForImageTextToText.from_pretrained(path)` loads such a checkpoint like any other.
Serving engines with their own model implementations (vLLM, TGI) do not know this class.
"""
from typing import Any, Optional, Sequence, Tuple

from huggingface_hub.dataclasses import strict
import torch
from torch import nn
from transformers import (
    AutoConfig, AutoModel, AutoModelForImageTextToText, PaliGemmaConfig,
    PaliGemmaForConditionalGeneration, PaliGemmaModel,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.paligemma.modeling_paligemma import PaliGemmaPreTrainedModel

MODEL_TYPE = 'rt2_vla'
STEM_CHANNELS = (24, 48)  # the first two convolutions; the third has vision_hidden channels
COORDINATE_CHANNELS = 2


def stem_strides(patch_size: int) -> Tuple[int, int, int]:
    """Three convolution strides whose product is the patch size (one token per patch)."""
    for strides in ((2, 2, 2), (2, 2, 3), (2, 2, 4), (2, 3, 3), (2, 2, 5), (3, 3, 3)):
        if strides[0] * strides[1] * strides[2] == patch_size:
            return strides
    raise ValueError(f'a film_conv stem needs a patch size of 8, 12, 16, 18, 20 or 27, '
                     f'not {patch_size}')


@strict
class Rt2VlaConfig(PaliGemmaConfig):
    """PaliGemma's config plus the stem's channel widths and strides."""

    model_type = MODEL_TYPE
    stem_channels: Optional[list] = None
    stem_strides: Optional[list] = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.stem_channels is None:
            self.stem_channels = list(STEM_CHANNELS)
        if self.stem_strides is None:
            self.stem_strides = list(stem_strides(self.vision_config.patch_size))


class FilmConvStem(nn.Module):
    """Strided convolutions with coordinate channels, each modulated by the instruction."""

    def __init__(self, channels: Sequence[int], strides: Sequence[int],
                 context_width: int) -> None:
        super().__init__()
        widths = [3 + COORDINATE_CHANNELS] + list(channels)
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, stride=s, padding=1, bias=False)
            for a, b, s in zip(widths[:-1], widths[1:], strides))
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for b in widths[1:])
        self.films = nn.ModuleList(nn.Linear(context_width, 2 * b) for b in widths[1:])
        for film in self.films:  # start as the identity: scale 1, shift 0
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)

    def forward(self, pixels: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = pixels.shape
        rows = torch.linspace(-1.0, 1.0, height, device=pixels.device, dtype=pixels.dtype)
        cols = torch.linspace(-1.0, 1.0, width, device=pixels.device, dtype=pixels.dtype)
        grid = torch.stack(torch.meshgrid(rows, cols, indexing='ij'))
        x = torch.cat([pixels, grid.expand(batch, -1, -1, -1)], dim=1)
        for conv, norm, film in zip(self.convs, self.norms, self.films):
            scale, shift = film(context.to(x.dtype)).chunk(2, dim=-1)
            x = norm(conv(x))
            x = torch.relu(x * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None])
        return x


class StemEmbeddings(nn.Module):
    """The stem's feature map as tokens, plus learned positions (SigLIP's embedding names)."""

    def __init__(self, config: Rt2VlaConfig, context_width: int) -> None:
        super().__init__()
        vision = config.vision_config
        self.stem = FilmConvStem(list(config.stem_channels) + [vision.hidden_size],
                                 config.stem_strides, context_width)
        tokens = (vision.image_size // vision.patch_size) ** 2
        self.position_embedding = nn.Embedding(tokens, vision.hidden_size)

    def forward(self, pixels: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        features = self.stem(pixels, context).flatten(2).transpose(1, 2)
        return features + self.position_embedding.weight[None].to(features.dtype)


class FilmConvVisionTower(nn.Module):
    """StemEmbeddings, then a SigLIP tower's encoder layers and final norm."""

    def __init__(self, config: Rt2VlaConfig, siglip: nn.Module, context_width: int) -> None:
        super().__init__()
        self.embeddings = StemEmbeddings(config, context_width)
        self.encoder = siglip.encoder
        self.post_layernorm = siglip.post_layernorm

    def forward(self, pixel_values: torch.Tensor,
                context: torch.Tensor) -> BaseModelOutputWithPooling:
        hidden = self.embeddings(pixel_values, context)
        hidden = self.encoder(inputs_embeds=hidden).last_hidden_state
        return BaseModelOutputWithPooling(last_hidden_state=self.post_layernorm(hidden))


def prompt_context(embeddings: torch.Tensor, input_ids: torch.Tensor, image_token_id: int,
                   attention_mask: Optional[torch.Tensor],
                   token_type_ids: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean embedding of the prompt's text: attended, not image placeholders, not the answer."""
    keep = input_ids != image_token_id
    if attention_mask is not None:
        keep = keep & attention_mask.bool()
    if token_type_ids is not None:
        keep = keep & (token_type_ids == 0)
    weights = keep.to(embeddings.dtype)[..., None]
    return (embeddings * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Rt2VlaModel(PaliGemmaModel):
    """PaliGemmaModel whose image features are conditioned on the prompt."""

    config_class = Rt2VlaConfig

    def __init__(self, config: Rt2VlaConfig) -> None:
        super().__init__(config)
        self.vision_tower = FilmConvVisionTower(config, self.vision_tower,
                                                config.text_config.hidden_size)

    def get_image_features(self, pixel_values: torch.Tensor, context: torch.Tensor,
                           **kwargs: Any) -> BaseModelOutputWithPooling:
        outputs = self.vision_tower(pixel_values.to(self.multi_modal_projector.linear.weight
                                                    .dtype), context)
        outputs.pooler_output = self.multi_modal_projector(outputs.last_hidden_state)
        return outputs

    def forward(self, input_ids: Optional[torch.LongTensor] = None,
                pixel_values: Optional[torch.Tensor] = None,
                attention_mask: Optional[torch.Tensor] = None,
                token_type_ids: Optional[torch.LongTensor] = None, **kwargs: Any) -> Any:
        if pixel_values is not None:
            if input_ids is None:
                raise ValueError('rt2_vla needs input_ids with pixel_values (the FiLM context)')
            embeddings = self.get_input_embeddings()(
                input_ids.masked_fill(input_ids == self.config.image_token_id, 0))
            context = prompt_context(embeddings, input_ids, self.config.image_token_id,
                                     attention_mask, token_type_ids)
            kwargs['mm_encoder_outputs'] = {
                'image': self.get_image_features(pixel_values, context)}
        return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids, **kwargs)


class Rt2VlaForConditionalGeneration(PaliGemmaForConditionalGeneration):
    """PaliGemmaForConditionalGeneration around Rt2VlaModel."""

    config_class = Rt2VlaConfig

    def __init__(self, config: Rt2VlaConfig) -> None:
        PaliGemmaPreTrainedModel.__init__(self, config)
        self.model = Rt2VlaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size,
                                 bias=False)
        self.post_init()

    def _maybe_prepare_encoder_kwargs_for_generation(self, inputs_tensor: torch.Tensor,
                                                     model_kwargs: dict, *args: Any,
                                                     **kwargs: Any) -> dict:
        # generate() would encode the image once up front, without the prompt the stem needs;
        # leave pixel_values to the prefill forward, which has the prompt (generate drops them
        # after the prefill).
        return model_kwargs


def register() -> None:
    """Make the Auto classes know `rt2_vla` (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, Rt2VlaConfig)
    except ValueError:  # already registered
        return
    AutoModel.register(Rt2VlaConfig, Rt2VlaModel)
    AutoModelForImageTextToText.register(Rt2VlaConfig, Rt2VlaForConditionalGeneration)


register()

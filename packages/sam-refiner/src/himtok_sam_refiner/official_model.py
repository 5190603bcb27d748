"""The released HiMTok refiner as transformers' SAM with the four modules that differ swapped in.

What differs from upstream SAM (`official-himtok.md` §6.4), and the module that carries it here:

* image encoder attention: the decomposed relative-position term is computed from the query *after* scaling
  by head_dim^-0.5 (`ScaledQueryRelPosAttention`);
* prompt encoder: two point embeddings only (negative, positive), no "not a point" and no "no mask"
  embedding, the padding point embeds to zero (`OfficialPromptEncoder`);
* mask prompt branch: 7x7 convolutions with SiLU instead of 2x2 with GELU (`OfficialMaskEmbedding`);
* mask decoder: the four mask outputs and their IoU predictions are averaged (`AveragingMaskDecoder`).

Everything else (patch embedding, windowed blocks, neck, two-way transformer, hypernetworks) is transformers'
own code. LayerNorm epsilons follow the official builder (1e-5 in the two-way transformer), and channels-first
LayerNorms use the official formula (`LayerNorm2d`).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig
from transformers.models.sam.modeling_sam import (
    SamLayerNorm,
    SamMaskDecoder,
    SamMaskEmbedding,
    SamPromptEncoder,
    SamVisionAttention,
)


class LayerNorm2d(SamLayerNorm):
    """Channels-first LayerNorm computed as the official `LayerNorm2d` (two-pass mean and variance, divide by
    the square root). Same function as transformers' fused one; its rounding differs enough to move the mean of
    the image features by more than the golden tolerance (relative 1e-5 of a mean near zero)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mean = features.mean(1, keepdim=True)
        variance = (features - mean).pow(2).mean(1, keepdim=True)
        normed = (features - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * normed + self.bias[:, None, None]


def _use_official_layer_norms(root: nn.Module) -> None:
    for name, module in list(root.named_modules()):
        if isinstance(module, SamLayerNorm) and module.data_format == "channels_first":
            parent_name, _, child = name.rpartition(".")
            replacement = LayerNorm2d(module.normalized_shape, eps=module.eps, data_format="channels_first")
            setattr(root.get_submodule(parent_name), child, replacement)


class ScaledQueryRelPosAttention(SamVisionAttention):
    """SAM vision attention with the relative-position term taken from the scaled query (official quirk).

    The two rel-pos terms are added to the scores in place, in the official order (scores + rel_h, then + rel_w),
    which also spares the full [B*heads, hw, hw] rel-pos tensor transformers builds.
    """

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, height, width, _ = hidden_states.shape
        heads = self.num_attention_heads
        qkv = self.qkv(hidden_states).reshape(batch, height * width, 3, heads, -1).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.reshape(3, batch * heads, height * width, -1).unbind(0)
        query = query * self.scale
        scores = query @ key.transpose(-2, -1)
        if self.use_rel_pos:
            table_h = self.get_rel_pos(height, height, self.rel_pos_h)
            table_w = self.get_rel_pos(width, width, self.rel_pos_w)
            grid_query = query.reshape(batch * heads, height, width, -1)
            rel_h = torch.einsum("bhwc,hkc->bhwk", grid_query, table_h)
            rel_w = torch.einsum("bhwc,wkc->bhwk", grid_query, table_w)
            grid_scores = scores.view(batch * heads, height, width, height, width)
            grid_scores.add_(rel_h[:, :, :, :, None]).add_(rel_w[:, :, :, None, :])
        weights = scores.softmax(dim=-1)
        out = (weights @ value).reshape(batch, heads, height, width, -1)
        out = out.permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
        return self.proj(out), weights


class OfficialMaskEmbedding(SamMaskEmbedding):
    """Mask prompt branch: conv 7x7/2, LN, SiLU, conv 7x7/2, LN, SiLU, conv 7x7 (transformers' forward)."""

    def __init__(self, config) -> None:  # SamPromptEncoderConfig with hidden_act="silu"
        super().__init__(config)
        quarter, full = self.mask_input_channels, config.mask_input_channels
        self.conv1 = nn.Conv2d(1, quarter, kernel_size=7, stride=2, padding=3)
        self.conv2 = nn.Conv2d(quarter, full, kernel_size=7, stride=2, padding=3)
        self.conv3 = nn.Conv2d(full, config.hidden_size, kernel_size=7, padding=3)


class OfficialPromptEncoder(SamPromptEncoder):
    """Points and a dense mask only: two point embeddings, padding points embed to zero, masks are required."""

    def __init__(self, config: SamConfig) -> None:
        super().__init__(config)
        del self.no_mask_embed
        del self.not_a_point_embed
        self.mask_embed = OfficialMaskEmbedding(config.prompt_encoder_config)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        points = points + 0.5
        if pad:
            batch, point_batch = points.shape[:2]
            points = torch.cat([points, points.new_zeros(batch, point_batch, 1, 2)], dim=2)
            labels = torch.cat([labels, -labels.new_ones(batch, point_batch, 1)], dim=2)
        size = (self.input_image_size, self.input_image_size)
        embedding = self.shared_embedding(points, size)
        embedding = torch.where(labels[..., None] < 0, torch.zeros_like(embedding), embedding)
        negative, positive = (cast(nn.Embedding, e).weight for e in self.point_embed)
        embedding = embedding + (labels == 0)[..., None] * negative
        return embedding + (labels == 1)[..., None] * positive

    def forward(
        self,
        input_points: Any,  # [B, P, N, 2] tensor or None (transformers annotates it as a tuple)
        input_labels: torch.Tensor | None,
        input_boxes: torch.Tensor | None,
        input_masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if input_boxes is not None:
            raise ValueError("the released refiner has no box embeddings (only negative/positive points)")
        if input_masks is None:
            raise ValueError("the released refiner needs a mask prompt (it has no 'no mask' embedding)")
        return super().forward(input_points, input_labels, None, input_masks)


class AveragingMaskDecoder(SamMaskDecoder):
    """transformers' SAM mask decoder returning the mean of all mask outputs (and of their IoU predictions)."""

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_positional_embeddings: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        attention_similarity: torch.Tensor | None = None,
        target_embedding: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # multimask_output is ignored, as in the official decoder
        batch, channels, height, width = image_embeddings.shape
        point_batch = sparse_prompt_embeddings.shape[1]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.repeat(batch, point_batch, 1, 1)
        tokens = torch.cat([output_tokens, sparse_prompt_embeddings], dim=2).to(self.iou_token.weight.dtype)

        source = (image_embeddings + dense_prompt_embeddings).repeat_interleave(point_batch, 0)
        positional = image_positional_embeddings.repeat_interleave(point_batch, 0)
        hidden, source = self.transformer(
            point_embeddings=tokens,
            image_embeddings=source,
            image_positional_embeddings=positional,
            attention_similarity=attention_similarity,
            target_embedding=target_embedding,
        )
        iou_token_out = hidden[:, :, 0, :]
        mask_tokens_out = hidden[:, :, 1 : 1 + self.num_mask_tokens, :]

        source = source.transpose(2, 3).reshape(batch * point_batch, channels, height, width)
        upscaled = self.activation(self.upscale_layer_norm(self.upscale_conv1(source)))
        upscaled = self.activation(self.upscale_conv2(upscaled))
        hyper = torch.stack(
            [mlp(mask_tokens_out[:, :, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=2
        )
        _, up_channels, up_height, up_width = upscaled.shape
        upscaled = upscaled.reshape(batch, point_batch, up_channels, up_height * up_width)
        masks = (hyper @ upscaled).reshape(batch, point_batch, -1, up_height, up_width)
        iou = self.iou_prediction_head(iou_token_out)
        return masks.mean(dim=2, keepdim=True), iou.mean(dim=2, keepdim=True)


class OfficialSamModel(SamModel):
    """`SamModel` with the released refiner's modules; used through `SamModel.forward` like any SAM.

    Build it from a `SamConfig` whose prompt encoder has `num_point_embeddings=2` and `hidden_act="silu"`
    (`official_config` makes one); load the released weights with `load_official_state_dict`.
    """

    def __init__(self, config: SamConfig) -> None:
        if cast(SamPromptEncoderConfig, config.prompt_encoder_config).num_point_embeddings != 2:
            raise ValueError("the released refiner has exactly 2 point embeddings")
        super().__init__(config)
        vision = cast(SamVisionConfig, config.vision_config)
        for layer in self.vision_encoder.layers:
            layer.attn = ScaledQueryRelPosAttention(vision, layer.window_size)
        self.prompt_encoder = OfficialPromptEncoder(config)
        # one positional table, shared by the prompt encoder and the dense image positional embedding
        self.prompt_encoder.shared_embedding = self.shared_image_embedding
        self.mask_decoder = AveragingMaskDecoder(cast(SamMaskDecoderConfig, config.mask_decoder_config))
        _use_official_layer_norms(self)

"""Official InternVL / HiMTok tensor names -> transformers-native `InternVLForConditionalGeneration` names.

Every source tensor maps to one or more target tensors through a `TensorRule`. Two rules split packed
projections: InternViT's `attn.qkv` (rows q | k | v) and InternLM2's `attention.wqkv`, whose rows are grouped
per key/value head (for each kv head: `q_per_kv` query heads, then its key head, then its value head). Plain
renames need no copy. The mask de-tokenizer (`mask_decoder.*`) is not part of the multimodal model; it goes to
`MaskTokenizer` under its own names (`mask_tokenizer_key`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

MASK_DECODER_PREFIX = "mask_decoder."
# Buffers that some official checkpoints carry and transformers recomputes: read, checked, not written.
RECOMPUTED = re.compile(r".*\.rotary_emb\.inv_freq$")

Split = Callable[[Tensor], tuple[Tensor, ...]]


@dataclass(frozen=True)
class TensorRule:
    """Source tensor name (regex) -> target names (templates over the regex groups), with an optional split."""

    pattern: re.Pattern[str]
    targets: tuple[str, ...]
    split: str | None = None  # "qkv" or "grouped_qkv"

    def apply(self, key: str) -> tuple[str, ...] | None:
        match = self.pattern.fullmatch(key)
        if match is None:
            return None
        return tuple(match.expand(t) for t in self.targets)


def _rule(pattern: str, *targets: str, split: str | None = None) -> TensorRule:
    return TensorRule(re.compile(pattern), targets, split)


VT = r"model.vision_tower"
VISION_RULES = (
    _rule(r"vision_model\.embeddings\.class_embedding", rf"{VT}.embeddings.cls_token"),
    _rule(r"vision_model\.embeddings\.position_embedding", rf"{VT}.embeddings.position_embeddings"),
    _rule(
        r"vision_model\.embeddings\.patch_embedding\.(weight|bias)",
        rf"{VT}.embeddings.patch_embeddings.projection.\1",
    ),
    _rule(
        r"vision_model\.encoder\.layers\.(\d+)\.attn\.qkv\.(weight|bias)",
        *(rf"{VT}.encoder.layer.\1.attention.{p}_proj.\2" for p in "qkv"),
        split="qkv",
    ),
    _rule(
        r"vision_model\.encoder\.layers\.(\d+)\.attn\.proj\.(weight|bias)",
        rf"{VT}.encoder.layer.\1.attention.projection_layer.\2",
    ),
    _rule(
        r"vision_model\.encoder\.layers\.(\d+)\.attn\.(q_norm|k_norm)\.(weight|bias)",
        rf"{VT}.encoder.layer.\1.attention.\2.\3",
    ),
    _rule(
        r"vision_model\.encoder\.layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)",
        rf"{VT}.encoder.layer.\1.mlp.\2.\3",
    ),
    _rule(
        r"vision_model\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)",
        rf"{VT}.encoder.layer.\1.layernorm_before.\2",
    ),
    _rule(
        r"vision_model\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)",
        rf"{VT}.encoder.layer.\1.layernorm_after.\2",
    ),
    _rule(r"vision_model\.encoder\.layers\.(\d+)\.ls1", rf"{VT}.encoder.layer.\1.lambda_1"),
    _rule(r"vision_model\.encoder\.layers\.(\d+)\.ls2", rf"{VT}.encoder.layer.\1.lambda_2"),
)

MP = "model.multi_modal_projector"
PROJECTOR_RULES = (
    _rule(r"mlp1\.0\.(weight|bias)", rf"{MP}.layer_norm.\1"),
    _rule(r"mlp1\.1\.(weight|bias)", rf"{MP}.linear_1.\1"),
    _rule(r"mlp1\.3\.(weight|bias)", rf"{MP}.linear_2.\1"),
)

LM = "model.language_model"
INTERNLM2_RULES = (
    _rule(r"language_model\.model\.tok_embeddings\.weight", rf"{LM}.embed_tokens.weight"),
    _rule(
        r"language_model\.model\.layers\.(\d+)\.attention\.wqkv\.(weight|bias)",
        *(rf"{LM}.layers.\1.self_attn.{p}_proj.\2" for p in "qkv"),
        split="grouped_qkv",
    ),
    _rule(
        r"language_model\.model\.layers\.(\d+)\.attention\.wo\.(weight|bias)",
        rf"{LM}.layers.\1.self_attn.o_proj.\2",
    ),
    _rule(
        r"language_model\.model\.layers\.(\d+)\.feed_forward\.w1\.weight",
        rf"{LM}.layers.\1.mlp.gate_proj.weight",
    ),
    _rule(
        r"language_model\.model\.layers\.(\d+)\.feed_forward\.w3\.weight",
        rf"{LM}.layers.\1.mlp.up_proj.weight",
    ),
    _rule(
        r"language_model\.model\.layers\.(\d+)\.feed_forward\.w2\.weight",
        rf"{LM}.layers.\1.mlp.down_proj.weight",
    ),
    _rule(
        r"language_model\.model\.layers\.(\d+)\.attention_norm\.weight",
        rf"{LM}.layers.\1.input_layernorm.weight",
    ),
    _rule(
        r"language_model\.model\.layers\.(\d+)\.ffn_norm\.weight",
        rf"{LM}.layers.\1.post_attention_layernorm.weight",
    ),
    _rule(r"language_model\.model\.norm\.weight", rf"{LM}.norm.weight"),
    _rule(r"language_model\.output\.weight", "lm_head.weight"),
)

# Qwen2 and Llama already use transformers' names inside `language_model`.
HF_LLM_RULES = (
    _rule(r"language_model\.model\.(.+)", rf"{LM}.\1"),
    _rule(r"language_model\.lm_head\.weight", "lm_head.weight"),
)

LLM_RULES = {"internlm2": INTERNLM2_RULES, "qwen2": HF_LLM_RULES, "llama": HF_LLM_RULES}


@dataclass(frozen=True)
class HeadLayout:
    """Attention head counts of the language model (for the grouped wqkv split)."""

    num_heads: int
    num_kv_heads: int
    head_dim: int


def split_qkv(tensor: Tensor) -> tuple[Tensor, ...]:
    """InternViT's packed projection: rows q | k | v of equal size."""
    if tensor.shape[0] % 3:
        raise ValueError(f"a packed qkv tensor needs a row count divisible by 3, got {tuple(tensor.shape)}")
    return tuple(part.contiguous() for part in tensor.chunk(3, dim=0))


def split_grouped_qkv(tensor: Tensor, heads: HeadLayout) -> tuple[Tensor, ...]:
    """InternLM2's `wqkv`: per kv head, `q_per_kv` query heads, one key head, one value head."""
    if heads.num_heads % heads.num_kv_heads:
        raise ValueError(f"{heads.num_heads} heads do not group into {heads.num_kv_heads} kv heads")
    q_per_kv = heads.num_heads // heads.num_kv_heads
    rows = (heads.num_heads + 2 * heads.num_kv_heads) * heads.head_dim
    if tensor.shape[0] != rows:
        raise ValueError(
            f"wqkv has {tensor.shape[0]} rows, expected (heads {heads.num_heads} + 2 x kv heads "
            f"{heads.num_kv_heads}) x head_dim {heads.head_dim} = {rows}"
        )
    grouped = tensor.reshape(heads.num_kv_heads, q_per_kv + 2, heads.head_dim, *tensor.shape[1:])
    q = grouped[:, :q_per_kv].reshape(heads.num_heads * heads.head_dim, *tensor.shape[1:])
    k = grouped[:, q_per_kv].reshape(heads.num_kv_heads * heads.head_dim, *tensor.shape[1:])
    v = grouped[:, q_per_kv + 1].reshape(heads.num_kv_heads * heads.head_dim, *tensor.shape[1:])
    return q.contiguous(), k.contiguous(), v.contiguous()


def split_shapes(shape: tuple[int, ...], split: str | None, heads: HeadLayout) -> tuple[tuple[int, ...], ...]:
    """Target shapes of a source shape, without touching data (for the dry run)."""
    if split is None:
        return (shape,)
    if split == "qkv":
        return ((shape[0] // 3, *shape[1:]),) * 3
    q = heads.num_heads * heads.head_dim
    kv = heads.num_kv_heads * heads.head_dim
    return ((q, *shape[1:]), (kv, *shape[1:]), (kv, *shape[1:]))


class WeightMapper:
    """Maps official tensor names to target names and tensors for one language-model architecture."""

    def __init__(self, architecture: str, heads: HeadLayout) -> None:
        if architecture not in LLM_RULES:
            raise ValueError(f"unknown language model {architecture!r}")
        self.rules = (*VISION_RULES, *PROJECTOR_RULES, *LLM_RULES[architecture])
        self.heads = heads

    def rule_for(self, key: str) -> tuple[TensorRule, tuple[str, ...]] | None:
        for rule in self.rules:
            targets = rule.apply(key)
            if targets is not None:
                return rule, targets
        return None

    def target_shapes(self, key: str, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]] | None:
        found = self.rule_for(key)
        if found is None:
            return None
        rule, targets = found
        return dict(zip(targets, split_shapes(shape, rule.split, self.heads), strict=True))

    def convert(self, key: str, tensor: Tensor) -> dict[str, Tensor]:
        found = self.rule_for(key)
        if found is None:
            raise KeyError(key)
        rule, targets = found
        if rule.split == "qkv":
            parts = split_qkv(tensor)
        elif rule.split == "grouped_qkv":
            parts = split_grouped_qkv(tensor, self.heads)
        else:
            parts = (tensor,)
        return dict(zip(targets, parts, strict=True))


def is_mask_decoder_key(key: str) -> bool:
    return key.startswith(MASK_DECODER_PREFIX)


def mask_tokenizer_key(key: str) -> str:
    """`mask_decoder.encoder.ln_pre.weight` -> `encoder.ln_pre.weight` (MaskTokenizer uses official names)."""
    return key[len(MASK_DECODER_PREFIX) :]


def is_recomputed_buffer(key: str) -> bool:
    return RECOMPUTED.fullmatch(key) is not None


def cast(tensor: Tensor, dtype: torch.dtype | None) -> Tensor:
    """Floating tensors to `dtype` (when given); integer and bool buffers stay as they are."""
    if dtype is None or not tensor.is_floating_point():
        return tensor
    return tensor.to(dtype)

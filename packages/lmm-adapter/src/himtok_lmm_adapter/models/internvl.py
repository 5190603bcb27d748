"""InternVL (transformers-native `InternVLForConditionalGeneration`) support and a tiny offline instance.

The generic `HFVLMAdapter` already covers InternVL's embeddings and LM head; this adapter only adds
what is InternVL-specific (its image placeholder token) and registers itself for `model_type="internvl"`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import InternVLConfig, InternVLForConditionalGeneration, PreTrainedTokenizerFast

from himtok_lmm_adapter.models.base import HFVLMAdapter, register_adapter
from himtok_lmm_adapter.models.tiny_processor import TinyInternVLProcessor
from himtok_lmm_adapter.models.tiny_tokenizer import build_tiny_tokenizer

TINY_IMAGE_SIZE = 56
TINY_PATCH_SIZE = 14
# 4x4 patches, pixel-shuffled by 0.5 -> 2x2 image tokens per tile.
TINY_IMAGE_SEQ_LENGTH = ((TINY_IMAGE_SIZE // TINY_PATCH_SIZE) // 2) ** 2


class InternVLAdapter(HFVLMAdapter):
    """Adapter for `InternVLForConditionalGeneration` (InternVL2.5/3 `-hf` checkpoints)."""

    model_type = "internvl"

    def image_token_id(self, model: Any) -> int:
        return int(model.config.image_token_id)

    def image_seq_length(self, model: Any) -> int:
        return int(model.config.image_seq_length)


register_adapter(InternVLAdapter.model_type, InternVLAdapter())


def tiny_internvl_config(vocab_size: int, image_token_id: int) -> InternVLConfig:
    """An InternVL config small enough for CPU tests: 1-layer ViT (width 32), 2-layer Qwen2 (width 64)."""
    return InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": TINY_PATCH_SIZE,
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 128,
            "vocab_size": vocab_size,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": False,
        },
        image_token_id=image_token_id,
        image_seq_length=TINY_IMAGE_SEQ_LENGTH,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )


def tiny_internvl(
    seed: int = 0, vocab_size: int = 512
) -> tuple[InternVLForConditionalGeneration, PreTrainedTokenizerFast]:
    """A random-weight InternVL-architecture model and a matching tokenizer, built offline in about a second.

    Input and output embeddings are untied (separate tensors), as in InternVL2.5-8B. The model is in eval
    mode; its generation config pads with the tokenizer's pad token and stops at `<|im_end|>`. The global
    torch RNG is left as it was.
    """
    tokenizer = build_tiny_tokenizer(vocab_size)
    config = tiny_internvl_config(len(tokenizer), tokenizer.context_image_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InternVLForConditionalGeneration(config)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def tiny_internvl_processor(tokenizer: PreTrainedTokenizerFast) -> TinyInternVLProcessor:
    """Image + text inputs for the tiny model: one 56x56 tile per image, 4 image tokens per tile."""
    return TinyInternVLProcessor(
        tokenizer, image_size=TINY_IMAGE_SIZE, image_seq_length=TINY_IMAGE_SEQ_LENGTH
    )

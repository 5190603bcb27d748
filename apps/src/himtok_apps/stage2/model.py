"""The model a stage-2/3 run trains: loaded, assembled from parts, or built tiny from scratch; then frozen.

Three ways in (see `Stage2Config`): a `HiMTokModel` directory; a transformers-native InternVL plus a stage-1
tokenizer (the mask vocabulary is added here); or nothing, which builds a tiny InternVL from scratch around the
shipped shapes+COCO tokenizer (the CPU learning test).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from himtok_lmm_adapter import (
    HiMTokModel,
    HiMTokSettings,
    TilingConfig,
    add_mask_vocabulary,
    build_tiny_tokenizer,
    freeze_for_stage2,
)
from himtok_mask_tokenizer import MaskTokenizer
from transformers import AutoModelForImageTextToText, InternVLConfig, PreTrainedTokenizerFast

from himtok_apps.stage2.config import SHIPPED_TOKENIZER, Stage2Config

# The tiny from-scratch model: 112-px tiles of 14-px patches, pixel-shuffled to 4x4 = 16 image tokens.
TINY_IMAGE_SIZE = 112
TINY_PATCH_SIZE = 14
TINY_IMAGE_TOKENS = ((TINY_IMAGE_SIZE // TINY_PATCH_SIZE) // 2) ** 2
TINY_SYSTEM_MESSAGE = "You are a helpful assistant that segments objects in images."


def tiny_lmm_config(vocab_size: int, image_token_id: int) -> InternVLConfig:
    """A CPU-size InternVL: 2-layer ViT of width 96 and a 4-layer Qwen2 of width 192."""
    return InternVLConfig(
        vision_config={
            "hidden_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 192,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": TINY_PATCH_SIZE,
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": 192,
            "num_hidden_layers": 4,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "intermediate_size": 384,
            "vocab_size": vocab_size,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": False,
        },
        image_token_id=image_token_id,
        image_seq_length=TINY_IMAGE_TOKENS,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )


def build_tiny_model(seed: int, mask_tokenizer_dir: Path = SHIPPED_TOKENIZER) -> HiMTokModel:
    """A random tiny InternVL with the mask vocabulary, around a trained stage-1 tokenizer."""
    if not (Path(mask_tokenizer_dir) / "config.json").is_file():
        raise ValueError(f"no stage-1 tokenizer at {mask_tokenizer_dir} (config.json missing)")
    tokenizer = build_tiny_tokenizer()
    image_token_id: int = tokenizer.context_image_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        from transformers import InternVLForConditionalGeneration

        lmm = InternVLForConditionalGeneration(tiny_lmm_config(len(tokenizer), image_token_id))
        add_mask_vocabulary(lmm, tokenizer)
    _set_generation_ids(lmm, tokenizer)
    settings = HiMTokSettings(
        system_message=TINY_SYSTEM_MESSAGE,
        tiling=TilingConfig(image_size=TINY_IMAGE_SIZE, max_tiles=1),
    )
    return HiMTokModel.from_parts(lmm, tokenizer, MaskTokenizer.from_pretrained(mask_tokenizer_dir), settings)


def assemble_model(lmm_dir: str | Path, mask_tokenizer_dir: str | Path) -> HiMTokModel:
    """A transformers-native InternVL directory plus a stage-1 tokenizer; the mask vocabulary is added."""
    loaded: Any = AutoModelForImageTextToText.from_pretrained(
        lmm_dir, local_files_only=True, trust_remote_code=False, output_loading_info=True
    )
    lmm, info = loaded
    problems = {
        k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    if problems:
        raise ValueError(f"{lmm_dir} does not load strictly: {problems}")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(lmm_dir, local_files_only=True)
    mask_tokenizer = MaskTokenizer.from_pretrained(mask_tokenizer_dir)
    add_mask_vocabulary(lmm, tokenizer, codebook_size=mask_tokenizer.config.codebook_size)
    _set_generation_ids(lmm, tokenizer)
    image_size = lmm.config.vision_config.image_size
    side = image_size[0] if isinstance(image_size, list | tuple) else int(image_size)
    settings = HiMTokSettings(tiling=TilingConfig(image_size=side))
    return HiMTokModel.from_parts(lmm, tokenizer, mask_tokenizer, settings)


def _set_generation_ids(lmm: Any, tokenizer: Any) -> None:
    lmm.generation_config.pad_token_id = tokenizer.pad_token_id
    lmm.generation_config.eos_token_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))


def load_model(config: Stage2Config) -> HiMTokModel:
    """The run's starting model in float32 on CPU (the trainer moves it), with the run's tile limit."""
    if config.model is not None:
        model = HiMTokModel.from_pretrained(config.model, dtype=torch.float32)
    elif config.lmm is not None and config.mask_tokenizer is not None:
        model = assemble_model(config.lmm, config.mask_tokenizer)
    else:
        model = build_tiny_model(config.seed)
    tiling = dataclasses.replace(model.settings.tiling, max_tiles=config.max_tiles)
    model.settings = dataclasses.replace(model.settings, tiling=tiling)
    return model


def configure_trainable(model: HiMTokModel, config: Stage2Config) -> list[str]:
    """Freeze what the stage does not train (and wrap the LLM in LoRA when asked); returns notes to log."""
    notes: list[str] = []
    lmm = model.lmm
    parts = {
        "vision": lmm.model.vision_tower,
        "projector": lmm.model.multi_modal_projector,
        "llm": torch.nn.ModuleList([lmm.model.language_model, lmm.lm_head]),
    }
    for name, module in parts.items():
        module.requires_grad_(name in config.train)
    tokenizer_model = model.mask_tokenizer
    tokenizer_model.requires_grad_(False)
    if config.trains_decoder:
        freeze_for_stage2(tokenizer_model)  # decoder and pixel head train, encoder and codebook stay fixed
    if config.lora:
        notes.append(_apply_lora(model, config))
    if config.grad_checkpointing:
        lmm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lmm.config.use_cache = False
    return notes


def _apply_lora(model: HiMTokModel, config: Stage2Config) -> str:
    try:
        from peft import LoraConfig, inject_adapter_in_model  # type: ignore[import-not-found]
    except ImportError:
        raise ValueError("--lora needs peft: pip install 'himtok-apps[lora]'") from None
    language_model = model.lmm.model.language_model
    language_model.requires_grad_(False)
    lora = LoraConfig(
        r=config.lora,
        lora_alpha=int(config.lora_alpha),
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    inject_adapter_in_model(lora, language_model)
    # The new mask-token rows of the embeddings and the head must still learn.
    model.lmm.get_input_embeddings().requires_grad_(True)
    model.lmm.lm_head.requires_grad_(True)
    return f"LoRA rank {config.lora} on the language model (embeddings and head fully trained)"


def count_parameters(module: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total

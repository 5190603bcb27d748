"""Tiny random SAMs (standard and official layout) for tests, examples and benchmarks on CPU."""

from __future__ import annotations

import torch
from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

from .official_model import OfficialSamModel
from .official_weights import DECODER_HEADS


def tiny_sam_config(
    image_size: int = 128,
    width: int = 16,
    depth: int = 2,
    prompt_width: int = 32,
    window_size: int = 4,
    official: bool = False,
) -> SamConfig:
    """A SAM config small enough for unit tests: image_size input frame, 16-pixel patches, a global last block.

    official=True gives the released refiner's layout (2 point embeddings, SiLU 7x7 mask branch, 8 decoder heads,
    LayerNorm eps 1e-5 in the decoder), to be built with `OfficialSamModel`.
    """
    vision = SamVisionConfig(
        hidden_size=width,
        output_channels=prompt_width,
        num_hidden_layers=depth,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=16,
        mlp_dim=2 * width,
        window_size=window_size,
        global_attn_indexes=[depth - 1],
        num_pos_feats=prompt_width // 2,
    )
    prompt = SamPromptEncoderConfig(
        hidden_size=prompt_width,
        image_size=image_size,
        patch_size=16,
        mask_input_channels=8,
        num_point_embeddings=2 if official else 4,
        hidden_act="silu" if official else "gelu",
    )
    decoder = SamMaskDecoderConfig(
        hidden_size=prompt_width,
        mlp_dim=2 * prompt_width,
        num_hidden_layers=2,
        num_attention_heads=DECODER_HEADS if official else 2,
        iou_head_hidden_dim=prompt_width,
        layer_norm_eps=1e-5 if official else 1e-6,
    )
    config = SamConfig(
        vision_config=vision.to_dict(),
        prompt_encoder_config=prompt.to_dict(),
        mask_decoder_config=decoder.to_dict(),
    )
    if official:
        config._attn_implementation = "eager"
    return config


def tiny_sam(seed: int = 0, official: bool = False, perturb: float = 0.1, **config: int) -> SamModel:
    """A random tiny SAM (eval mode). transformers initialises the vision tower near zero (std 1e-10), which makes
    every image look alike; `perturb` * N(0, 1) is added to every weight so the output depends on the image."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = tiny_sam_config(official=official, **config)
        model = OfficialSamModel(cfg) if official else SamModel(cfg)
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(perturb * torch.randn(parameter.shape, generator=generator))
    return model.eval()

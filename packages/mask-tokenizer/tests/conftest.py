"""Shared fixtures of the mask-tokenizer tests: micro configs that run in milliseconds, and random masks."""

from __future__ import annotations

import pytest
import torch
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig

MICRO = {
    "internal_size": 32,
    "patch_size": 8,
    "encoder_width": 32,
    "encoder_depth": 1,
    "encoder_heads": 2,
    "decoder_width": 32,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "mlp_ratio": 2.0,
    "head_hidden": 32,
    "z_channels": 16,
}


def micro_config(
    layout: str = "causal", pixel_head: str = "linear", **overrides: object
) -> MaskTokenizerConfig:
    """A tiny config of either head. The conv head upsamples the 4x4 grid three times to 32x32."""
    head: dict[str, object]
    if pixel_head == "conv":
        head = {
            "pixel_head": "conv",
            "in_channels": 3,
            "pixel_hidden_channels": 32,
            "pixel_channel_mult": (1, 1, 2, 2),
            "pixel_num_res_blocks": 1,
            "pixel_out_channels": 3,
        }
    elif pixel_head == "light":
        head = {"pixel_head": "light", "in_channels": 1, "pixel_out_channels": 1, "pixel_hidden_channels": 16}
    else:
        head = {"pixel_head": "linear", "in_channels": 1, "pixel_out_channels": 1}
    return MaskTokenizerConfig(**{**MICRO, **head, "layout": layout, **overrides})  # type: ignore[arg-type]


def random_masks(batch: int, height: int = 256, width: int = 256, seed: int = 0) -> torch.Tensor:
    """Blobby binary masks (thresholded, upsampled noise) as float32 [B, H, W]."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, 1, 6, 6, generator=gen)
    smooth = torch.nn.functional.interpolate(
        noise, size=(height, width), mode="bilinear", align_corners=False
    )
    return (smooth[:, 0] > 0.5).float()


@pytest.fixture(scope="module")
def micro_model() -> MaskTokenizer:
    torch.manual_seed(0)
    return MaskTokenizer(micro_config()).eval()


@pytest.fixture(scope="module")
def micro_official_model() -> MaskTokenizer:
    torch.manual_seed(1)
    return MaskTokenizer(micro_config(layout="official", pixel_head="conv")).eval()


@pytest.fixture(scope="session")
def make_config():  # type: ignore[no-untyped-def]
    """Factory ``make_config(layout, pixel_head, **overrides)`` of micro configs."""
    return micro_config


@pytest.fixture(scope="session")
def make_masks():  # type: ignore[no-untyped-def]
    """Factory ``make_masks(batch, height, width, seed)`` of blobby binary float masks."""
    return random_masks

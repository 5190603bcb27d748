"""A `MaskTokenizerConfig` read off the tensor shapes of an official checkpoint.

Official checkpoints carry no tokenizer config (the official code reads `./config/himt.yaml` from the working
directory). Widths, depths, patch size, codebook and pixel-decoder sizes follow from the shapes; the number of
attention heads does not (the packed `in_proj_weight` hides it), so it is given, or taken from the official size
table, whose heads are all 64 wide (small 512/8, base 768/12, large 1024/16).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from himtok_mask_tokenizer.config import MaskTokenizerConfig

OFFICIAL_HEAD_DIM = 64

Shapes = Mapping[str, tuple[int, ...]]


def _shape(shapes: Shapes, key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ValueError(f"not an official HiMT tokenizer checkpoint: it lacks {key}")
    return tuple(shapes[key])


def _count(shapes: Shapes, pattern: str) -> int:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for key in shapes if (m := regex.fullmatch(key))}
    if found != set(range(len(found))):
        raise ValueError(f"layer indices of {pattern!r} are not contiguous: {sorted(found)}")
    return len(found)


def default_heads(width: int) -> int:
    """Heads of the official size table for `width` (head_dim 64), at least 1."""
    return max(1, width // OFFICIAL_HEAD_DIM)


def infer_official_config(
    shapes: Shapes, heads: int | None = None, decoder_heads: int | None = None
) -> MaskTokenizerConfig:
    """The official-layout config whose state dict has exactly these shapes.

    `shapes` maps official key names (no `mask_decoder.` prefix) to shapes. `heads` (and `decoder_heads`,
    default: `heads`) set the attention heads; by default `width // 64` as in the official size table.
    Raises `ValueError` when a key the official tokenizer always has is missing.
    """
    enc_width = _shape(shapes, "encoder.class_embedding")[-1]
    dec_width = _shape(shapes, "decoder.class_embedding")[-1]
    patch = _shape(shapes, "encoder.patch_embed.weight")
    in_channels, patch_size = patch[1], patch[-1]
    tokens = _shape(shapes, "encoder.positional_embedding")[0] - 1
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ValueError(f"encoder.positional_embedding has {tokens + 1} rows, not 1 + a square grid")
    codebook_size, token_dim = _shape(shapes, "quantize.embedding.weight")
    mlp_hidden = _shape(shapes, "encoder.transformer.0.mlp.c_fc.weight")[0]
    pixel_hidden = _shape(shapes, "pixel_decoder.conv_out.weight")[1]
    levels = _count(shapes, r"pixel_decoder\.up\.(\d+)\.block\.0\.conv2\.weight")
    mult = tuple(
        _shape(shapes, f"pixel_decoder.up.{i}.block.0.conv2.weight")[0] // pixel_hidden for i in range(levels)
    )
    settings: dict[str, Any] = {
        "image_size": grid * patch_size,
        "in_channels": in_channels,
        "patch_size": patch_size,
        "encoder_width": enc_width,
        "encoder_depth": _count(shapes, r"encoder\.transformer\.(\d+)\.ln_1\.weight"),
        "encoder_heads": heads if heads is not None else default_heads(enc_width),
        "decoder_width": dec_width,
        "decoder_depth": _count(shapes, r"decoder\.transformer\.(\d+)\.ln_1\.weight"),
        "decoder_heads": decoder_heads or heads or default_heads(dec_width),
        "mlp_ratio": mlp_hidden / enc_width,
        "num_latent_tokens": _shape(shapes, "latent_tokens")[0],
        "codebook_size": codebook_size,
        "token_dim": token_dim,
        "layout": "official",
        "head_hidden": _shape(shapes, "decoder.ffn.0.weight")[0],
        "z_channels": _shape(shapes, "decoder.ffn.2.weight")[0],
        "pixel_head": "conv",
        "pixel_hidden_channels": pixel_hidden,
        "pixel_channel_mult": mult,
        "pixel_num_res_blocks": _count(shapes, r"pixel_decoder\.up\.0\.block\.(\d+)\.conv1\.weight"),
        "pixel_out_channels": _shape(shapes, "pixel_decoder.conv_out.weight")[0],
    }
    return MaskTokenizerConfig(**settings)

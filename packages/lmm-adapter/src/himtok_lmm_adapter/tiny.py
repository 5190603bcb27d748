"""A complete random `HiMTokModel` small enough for CPU tests and examples, built offline."""

from __future__ import annotations

from typing import Any

import torch
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig

from himtok_lmm_adapter.images import TilingConfig
from himtok_lmm_adapter.model import HiMTokModel
from himtok_lmm_adapter.models.internvl import TINY_IMAGE_SIZE, tiny_internvl
from himtok_lmm_adapter.settings import HiMTokSettings
from himtok_lmm_adapter.vocab import add_mask_vocabulary


def tiny_himtok_model(seed: int = 0, max_tiles: int = 2, **mask_tokenizer_overrides: Any) -> HiMTokModel:
    """`tiny_internvl(seed)` with the mask vocabulary, a random ``tiny``-preset `MaskTokenizer` (fields
    overridable, e.g. ``encoder_depth=1``) and 56-px tiles (at most ``max_tiles``), in eval mode.

    Random weights rarely write a mask on their own: pass ``answer_prefix="<|mt_start|>"`` to `segment` to get
    one. ``.save_pretrained(dir)`` writes a directory `HiMTokModel.from_pretrained` loads. The global torch RNG
    is left as it was.
    """
    lmm, tokenizer = tiny_internvl(seed=seed)
    add_mask_vocabulary(lmm, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mask_tokenizer = MaskTokenizer(MaskTokenizerConfig.preset("tiny", **mask_tokenizer_overrides)).eval()
    settings = HiMTokSettings(tiling=TilingConfig(image_size=TINY_IMAGE_SIZE, max_tiles=max_tiles))
    return HiMTokModel.from_parts(lmm, tokenizer, mask_tokenizer, settings)

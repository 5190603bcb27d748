"""Compatibility with the official HiMTok code (yayafengzi/LMM-HiMTok): its release format and exact training loss.

``convert_official(src, out)`` turns an official release into a transformers-native `HiMTokModel` directory;
``build_fast_tokenizer`` and ``official_decode`` reproduce the official slow tokenizer; ``official_mask_loss``
is the official stage-2 mask loss, defects included.
"""

from himtok_lmm_adapter.official.config import (
    LLM_ARCHITECTURES,
    OfficialFormatError,
    OfficialSettings,
    internvl_config_from_official,
    official_settings,
    read_official_config,
)
from himtok_lmm_adapter.official.convert import (
    DTYPES,
    RELEASE_8B_IDS,
    ConversionPlan,
    convert_himtok_checkpoint,
    convert_official,
    plan_conversion,
)
from himtok_lmm_adapter.official.loss import (
    OfficialMaskLoss,
    official_levels,
    official_mask_loss,
    official_mask_loss_from_probs,
    official_token_probs,
)
from himtok_lmm_adapter.official.source import SourceCheckpoint
from himtok_lmm_adapter.official.tokenizer import (
    SentencePieceModel,
    build_fast_tokenizer,
    official_decode,
    read_sentencepiece,
)
from himtok_lmm_adapter.official.weights import HeadLayout, WeightMapper, split_grouped_qkv, split_qkv

__all__ = [
    "DTYPES",
    "LLM_ARCHITECTURES",
    "RELEASE_8B_IDS",
    "ConversionPlan",
    "HeadLayout",
    "OfficialFormatError",
    "OfficialMaskLoss",
    "OfficialSettings",
    "SentencePieceModel",
    "SourceCheckpoint",
    "WeightMapper",
    "build_fast_tokenizer",
    "convert_himtok_checkpoint",
    "convert_official",
    "internvl_config_from_official",
    "official_decode",
    "official_levels",
    "official_mask_loss",
    "official_mask_loss_from_probs",
    "official_settings",
    "official_token_probs",
    "plan_conversion",
    "read_official_config",
    "read_sentencepiece",
    "split_grouped_qkv",
    "split_qkv",
]

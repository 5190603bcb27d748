"""Mask tokens as a new language for Hugging Face multimodal models.

``vocab = add_mask_vocabulary(model, tokenizer)`` adds ``<|mt_start|>``, ``<|mt_end|>``, ``<|mt_0..1023|>``;
``MaskTokenLogitsProcessor(vocab)`` constrains generation; ``masks_from_generation`` decodes the answers;
``MaskTokenTargets`` and ``soft_mask_loss`` are the stage-2 training glue.
"""

from himtok_lmm_adapter.decode import (
    GeneratedMasks,
    GeneratedSpans,
    decode_spans,
    generated_spans,
    generated_tokens_and_logits,
    masks_from_generation,
)
from himtok_lmm_adapter.freeze import freeze_for_stage2
from himtok_lmm_adapter.generation import MaskTokenLogitsProcessor
from himtok_lmm_adapter.images import TilingConfig, preprocess_images
from himtok_lmm_adapter.loss import SoftMaskLoss, soft_mask_loss, supervised_spans
from himtok_lmm_adapter.model import HiMTokModel
from himtok_lmm_adapter.models import (
    HFVLMAdapter,
    InternVLAdapter,
    TinyInternVLProcessor,
    VLMAdapter,
    adapter_for,
    build_tiny_tokenizer,
    register_adapter,
    tiny_internvl,
    tiny_internvl_processor,
)
from himtok_lmm_adapter.segmentation import Segmentation, SegmentedMask
from himtok_lmm_adapter.settings import HiMTokSettings
from himtok_lmm_adapter.soft import OFFICIAL_TEMPERATURE, mask_token_probs
from himtok_lmm_adapter.spans import MaskSpan, find_mask_spans
from himtok_lmm_adapter.targets import IGNORE_INDEX, MaskTokenTargets, ReplacedTokens
from himtok_lmm_adapter.tiny import tiny_himtok_model
from himtok_lmm_adapter.vocab import MaskVocab, add_mask_vocabulary

__version__ = "0.1.0"

__all__ = [
    "IGNORE_INDEX",
    "OFFICIAL_TEMPERATURE",
    "GeneratedMasks",
    "GeneratedSpans",
    "HFVLMAdapter",
    "HiMTokModel",
    "HiMTokSettings",
    "InternVLAdapter",
    "MaskSpan",
    "MaskTokenLogitsProcessor",
    "MaskTokenTargets",
    "MaskVocab",
    "ReplacedTokens",
    "Segmentation",
    "SegmentedMask",
    "SoftMaskLoss",
    "TilingConfig",
    "TinyInternVLProcessor",
    "VLMAdapter",
    "__version__",
    "adapter_for",
    "add_mask_vocabulary",
    "build_tiny_tokenizer",
    "decode_spans",
    "find_mask_spans",
    "freeze_for_stage2",
    "generated_spans",
    "generated_tokens_and_logits",
    "mask_token_probs",
    "masks_from_generation",
    "preprocess_images",
    "register_adapter",
    "soft_mask_loss",
    "supervised_spans",
    "tiny_himtok_model",
    "tiny_internvl",
    "tiny_internvl_processor",
]

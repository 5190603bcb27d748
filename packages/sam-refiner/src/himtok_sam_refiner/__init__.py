"""Optional SAM refinement of HiMTok masks: transformers' SAM, or the released HiMTok refiner (`sam.pth`)."""

from .box_points import BoxPointsSettings, mask_box, negative_points, positive_points
from .official_model import (
    AveragingMaskDecoder,
    OfficialMaskEmbedding,
    OfficialPromptEncoder,
    OfficialSamModel,
    ScaledQueryRelPosAttention,
)
from .official_prompts import official_mask_logits, official_point_prompts, stretch_image
from .official_weights import (
    PIXEL_MEAN,
    PIXEL_STD,
    load_official_model,
    load_official_state_dict,
    official_config,
    official_state_dict,
)
from .refiner import PROMPT_MODES, PromptMode, SamRefiner
from .result import MaskDetails, MaskPrompt, RefineResult
from .tiny import tiny_sam, tiny_sam_config
from .training import MaskLogits, PromptGroup, TrainingInputs

__version__ = "0.1.0"

__all__ = [
    "PIXEL_MEAN",
    "PIXEL_STD",
    "PROMPT_MODES",
    "AveragingMaskDecoder",
    "BoxPointsSettings",
    "MaskDetails",
    "MaskLogits",
    "MaskPrompt",
    "OfficialMaskEmbedding",
    "OfficialPromptEncoder",
    "OfficialSamModel",
    "PromptGroup",
    "PromptMode",
    "RefineResult",
    "SamRefiner",
    "ScaledQueryRelPosAttention",
    "TrainingInputs",
    "__version__",
    "load_official_model",
    "load_official_state_dict",
    "mask_box",
    "negative_points",
    "official_config",
    "official_mask_logits",
    "official_point_prompts",
    "official_state_dict",
    "positive_points",
    "stretch_image",
    "tiny_sam",
    "tiny_sam_config",
]

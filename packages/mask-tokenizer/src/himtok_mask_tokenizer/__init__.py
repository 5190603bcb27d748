"""HiMT: hierarchical mask tokenizer (mask <-> up to 32 discrete tokens), bit-compatible with official HiMTok
checkpoints.

``tokens = MaskTokenizer(MaskTokenizerConfig.preset("tiny")).encode(masks)``; ``probs = tok.decode(tokens[:, :8])``.
"""

from himtok_mask_tokenizer.checkpoint import key_report, read_official_state_dict
from himtok_mask_tokenizer.config import PRESETS, MaskTokenizerConfig
from himtok_mask_tokenizer.infer import default_heads, infer_official_config
from himtok_mask_tokenizer.preprocess import MaskTransform, as_mask_tensor, prepare_masks
from himtok_mask_tokenizer.tokenizer import MaskTokenizer, TokenizerOutput

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "MaskTokenizer",
    "MaskTokenizerConfig",
    "MaskTransform",
    "TokenizerOutput",
    "__version__",
    "as_mask_tensor",
    "default_heads",
    "infer_official_config",
    "key_report",
    "prepare_masks",
    "read_official_state_dict",
]

"""himtok-hml-loss: the hierarchical mask loss (HML) of HiMTok.

``out = HierarchicalMaskLoss()(logits_by_level, masks, levels)``; ``out.total.backward()``.
"""

from himtok_hml_loss.hml import Decoder, HierarchicalMaskLoss, HMLOutput
from himtok_hml_loss.labels import level_labels
from himtok_hml_loss.levels import level_probabilities, prefix_lengths, sample_levels
from himtok_hml_loss.schedules import SCHEDULES, official_sigma, paper_sigma, resize_side

__version__ = "0.1.0"

__all__ = [
    "SCHEDULES",
    "Decoder",
    "HMLOutput",
    "HierarchicalMaskLoss",
    "__version__",
    "level_labels",
    "level_probabilities",
    "official_sigma",
    "paper_sigma",
    "prefix_lengths",
    "resize_side",
    "sample_levels",
]

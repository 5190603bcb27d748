"""`uv run apps/train_sam_refiner`: fine-tune the SAM refiner on coarse masks made by a mask tokenizer."""

from himtok_apps.sam_refiner.coarse import CoarseMaskMaker, CoarseSettings, morph
from himtok_apps.sam_refiner.config import RefinerTrainConfig
from himtok_apps.sam_refiner.data import CocoSamples, RefineSample, ShapesSamples, build_samples
from himtok_apps.sam_refiner.evaluate import Evaluation, evaluate

__all__ = [
    "CoarseMaskMaker",
    "CoarseSettings",
    "CocoSamples",
    "Evaluation",
    "RefineSample",
    "RefinerTrainConfig",
    "ShapesSamples",
    "build_samples",
    "evaluate",
    "morph",
]

"""Stage-1 tokenizer training: ``uv run apps/train_stage1`` (see ``cli.py``) or ``train(TrainConfig(...))``."""

from himtok_apps.metrics import boundary_iou, bounding_box_iou, iou, resolution_only_iou
from himtok_apps.stage1.cli import build_parser, config_from_args, main
from himtok_apps.stage1.config import EVAL_LENGTHS, TrainConfig
from himtok_apps.stage1.trainer import TrainingStopped, build_model, train, weights_digest
from himtok_apps.tokenizer_eval import Evaluation, evaluate

__all__ = [
    "EVAL_LENGTHS",
    "Evaluation",
    "TrainConfig",
    "TrainingStopped",
    "boundary_iou",
    "bounding_box_iou",
    "build_model",
    "build_parser",
    "config_from_args",
    "evaluate",
    "iou",
    "main",
    "resolution_only_iou",
    "train",
    "weights_digest",
]

"""Mask data for the trainers: ``--data`` spec parsing, one source per kind, augmentation, a weighted mixture."""

from himtok_apps.data.augment import AugmentConfig, mask_box, render_mask, stretch
from himtok_apps.data.build import build_source
from himtok_apps.data.coco import CocoSource
from himtok_apps.data.errors import MaskReadError, SkipCounter
from himtok_apps.data.jsonl import JsonlSource
from himtok_apps.data.labelmap import LabelMapSource
from himtok_apps.data.mixture import MaskMixture, render_validation
from himtok_apps.data.pngdir import PngDirSource
from himtok_apps.data.source import MaskSource
from himtok_apps.data.spec import KINDS, DataSpec, parse_data_spec

__all__ = [
    "KINDS",
    "AugmentConfig",
    "CocoSource",
    "DataSpec",
    "JsonlSource",
    "LabelMapSource",
    "MaskMixture",
    "MaskReadError",
    "MaskSource",
    "PngDirSource",
    "SkipCounter",
    "build_source",
    "mask_box",
    "parse_data_spec",
    "render_mask",
    "render_validation",
    "stretch",
]

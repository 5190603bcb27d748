"""Exporting a LoRA-trained model: the adapters are merged into plain weights, so the export loads strictly."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn


def merged_language_model(lmm: nn.Module) -> Any:
    """A copy of `lmm` with every peft LoRA layer merged into its base layer and replaced by it."""
    merged = copy.deepcopy(lmm)
    replacements: list[tuple[nn.Module, str, nn.Module]] = []
    for name, module in merged.named_modules():
        base = getattr(module, "base_layer", None)
        if isinstance(base, nn.Module) and callable(getattr(module, "merge", None)):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            replacements.append((merged.get_submodule(parent_name) if parent_name else merged, child, base))
    for parent, child, base in replacements:
        setattr(parent, child, base)
    return merged

"""A mask tokenizer's reconstruction quality: encode masks once, decode every prefix length, score each.

Shared by stage-1 validation (1, 2, 4, ... 32 tokens) and ``apps/eval --tokenizer`` (every length 1..32).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from himtok_mask_tokenizer import MaskTokenizer
from himtok_vq import CodebookStats
from torch import Tensor

from himtok_apps.codebook import code_report
from himtok_apps.metrics import boundary_iou, intersection_union


@dataclass
class Evaluation:
    per_length: dict[int, dict[str, float]]  # L -> {"miou", "ciou", "boundary_iou"}
    ious: dict[int, np.ndarray]  # L -> per-sample IoU [N]
    codes: dict[str, object]  # usage / perplexity / entropy of the validation codes
    examples: dict[int, np.ndarray]  # L -> reconstructions of the first few masks [k, S, S]

    def metrics(self) -> dict[str, object]:
        return {
            "per_length": {str(k): v for k, v in self.per_length.items()},
            "codes": {k: v for k, v in self.codes.items() if k != "entropy_bits"},
        }


@torch.no_grad()
def evaluate(
    model: MaskTokenizer,
    masks: Tensor,
    lengths: Sequence[int],
    batch_size: int = 64,
    keep_examples: int = 0,
    autocast: bool = False,
) -> Evaluation:
    """Encode ``masks`` [N, S, S] once, decode every prefix length, and score the thresholded reconstructions.

    Per length: mIoU (mean per-mask IoU, 1 for an empty mask rebuilt empty), cIoU (all intersections over all
    unions) and boundary IoU.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    codes = CodebookStats(model.config.codebook_size, model.config.num_latent_tokens, device=device)
    inters: dict[int, list[Tensor]] = {n: [] for n in lengths}
    unions: dict[int, list[Tensor]] = {n: [] for n in lengths}
    bious: dict[int, list[Tensor]] = {n: [] for n in lengths}
    examples: dict[int, list[Tensor]] = {n: [] for n in lengths}
    try:
        for start in range(0, masks.shape[0], batch_size):
            target = masks[start : start + batch_size].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                tokens = model.encode(target)
                codes.update(tokens)
                for n in lengths:
                    probs = model.decode(tokens[:, :n]).float()
                    inter, union = intersection_union(probs, target)
                    inters[n].append(inter.cpu())
                    unions[n].append(union.cpu())
                    bious[n].append(boundary_iou(probs, target).cpu())
                    if start == 0 and keep_examples:
                        examples[n].append(probs[:keep_examples].cpu())
    finally:
        model.train(was_training)
    per_sample: dict[int, np.ndarray] = {}
    per_length: dict[int, dict[str, float]] = {}
    for n in lengths:
        inter, union = torch.cat(inters[n]).double(), torch.cat(unions[n]).double()
        ious = torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))
        per_sample[n] = ious.float().numpy()
        total = float(union.sum())
        per_length[n] = {
            "miou": float(ious.mean()),
            "ciou": float(inter.sum()) / total if total > 0 else 1.0,
            "boundary_iou": float(torch.cat(bious[n]).mean()),
        }
    kept = {n: torch.cat(examples[n]).numpy() for n in lengths if examples[n]}
    return Evaluation(
        per_length=per_length, ious=per_sample, codes=code_report(codes, sync=False), examples=kept
    )

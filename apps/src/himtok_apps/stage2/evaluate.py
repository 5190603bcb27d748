"""Held-out evaluation of a stage-2/3 model: does it write the right masks, and do they come from the image?

For each sample the model answers the first human turn (greedy, constrained mask spans). The prediction is the
answer's first mask (empty when it wrote none) and the ground truth the sample's first mask (empty for an
absent-object question). Reported: mIoU and cIoU over questions whose object is present, the share of
well-formed answers, accuracy on absent-object questions, the mIoU at fewer decoded tokens (coarse to fine),
the tokenizer's own reconstruction of the ground truth (the ceiling the model can reach), and, with `blind`, the
same model shown a uniform grey image (how much comes from the image rather than from the prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from himtok_lmm_adapter import HiMTokModel
from himtok_lmm_adapter.segmentation import build_segmentations
from PIL import Image
from tqdm import tqdm

from himtok_apps.metrics import iou

TOKEN_COUNTS = (1, 2, 4, 8, 16, 32)
GREY = (124, 116, 104)  # the ImageNet mean colour: normalises to about zero


@dataclass
class Example:
    image: Image.Image
    question: str
    answer: str
    prediction: np.ndarray  # bool [H, W]
    target: np.ndarray  # bool [H, W]
    iou: float


@dataclass
class LMMEvaluation:
    summary: dict[str, Any]
    examples: list[Example] = field(default_factory=list)


def _first_question(sample: Any) -> str:
    return str(sample.turns[0]["value"])


def _target(sample: Any) -> np.ndarray:
    width, height = sample.image.size
    if sample.masks:
        return np.asarray(sample.masks[0], dtype=bool)
    return np.zeros((height, width), dtype=bool)


@torch.no_grad()
def evaluate_lmm(
    model: HiMTokModel,
    samples: Sequence[Any],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    blind: bool = False,
    token_counts: Sequence[int] = TOKEN_COUNTS,
    keep_examples: int = 0,
    progress: bool = False,
) -> LMMEvaluation:
    """Generate answers for `samples` and score them (see the module docstring)."""
    model.eval()
    ious: dict[int, list[float]] = {n: [] for n in token_counts}
    inter = union = 0
    well_formed = absent_right = absent_total = present_total = present_with_mask = 0
    examples: list[Example] = []
    chunks = range(0, len(samples), batch_size)
    for start in tqdm(chunks, disable=not progress, desc="evaluating", leave=False):
        chunk = samples[start : start + batch_size]
        images = [Image.new("RGB", s.image.size, GREY) if blind else s.image for s in chunk]
        questions = [_first_question(s) for s in chunk]
        output, _, prompt_length = model.generate(images, questions, max_new_tokens=max_new_tokens)
        sizes = [(s.image.size[1], s.image.size[0]) for s in chunk]
        by_count = {
            n: build_segmentations(
                output,
                prompt_length,
                sizes,
                tokenizer=model.tokenizer,
                vocab=model.vocab,
                mask_tokenizer=model.mask_tokenizer,
                end_of_turn_id=model.end_of_turn_id,
                length=model.settings.num_mask_tokens,
                num_tokens=n,
            )
            for n in token_counts
        }
        full = by_count[max(token_counts)]
        for i, sample in enumerate(chunk):
            target = _target(sample)
            seg = full[i]
            finished_clean = seg.finished and all(m.well_formed for m in seg.masks)
            well_formed += int(finished_clean)
            if not target.any():
                absent_total += 1
                absent_right += int(not seg.masks)
                continue
            present_total += 1
            present_with_mask += int(bool(seg.masks))
            for n, segs in by_count.items():
                pred = _prediction(segs[i], target.shape)
                ious[n].append(float(iou(torch.from_numpy(pred)[None], torch.from_numpy(target)[None])[0]))
            pred = _prediction(seg, target.shape)
            inter += int((pred & target).sum())
            union += int((pred | target).sum())
            if len(examples) < keep_examples:
                examples.append(
                    Example(sample.image, questions[i], seg.answer, pred, target, ious[max(token_counts)][-1])
                )
    top = max(token_counts)
    summary: dict[str, Any] = {
        "samples": len(samples),
        "present": present_total,
        "absent": absent_total,
        "miou": _mean(ious[top]),
        "ciou": inter / union if union else None,
        "well_formed": well_formed / len(samples) if samples else None,
        "absent_accuracy": absent_right / absent_total if absent_total else None,
        "present_answered_with_mask": present_with_mask / present_total if present_total else None,
        "miou_by_tokens": {str(n): _mean(v) for n, v in ious.items()},
    }
    return LMMEvaluation(summary, examples)


def _prediction(seg: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not seg.masks:
        return np.zeros(shape, dtype=bool)
    return seg.masks[0].binary.numpy().astype(bool)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


@torch.no_grad()
def tokenizer_ceiling(tokenizer: Any, samples: Sequence[Any]) -> dict[str, Any]:
    """mIoU / cIoU of a mask tokenizer's own reconstruction (32 codes, hard) of each present ground-truth mask."""
    tokenizer = tokenizer.eval()
    device = next(tokenizer.parameters()).device
    ious: list[float] = []
    inter = union = 0
    for sample in samples:
        target = _target(sample)
        if not target.any():
            continue
        mask = torch.from_numpy(target.astype(np.float32))[None].to(
            device, next(tokenizer.parameters()).dtype
        )
        codes = tokenizer.encode(mask)
        recon = (tokenizer.decode(codes, size=target.shape).float().cpu() > 0.5)[0].numpy()
        ious.append(float(iou(torch.from_numpy(recon)[None], torch.from_numpy(target)[None])[0]))
        inter += int((recon & target).sum())
        union += int((recon | target).sum())
    return {"miou": _mean(ious), "ciou": inter / union if union else None, "present": len(ious)}

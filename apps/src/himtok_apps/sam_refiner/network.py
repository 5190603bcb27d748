"""The refiner as a trainable module, which of its parts train, and the loss.

Loss per mask: BCE + Dice of each of SAM's outputs against the ground truth at the image's size, keeping the
best output (SAM's minimum over its multimask outputs, so each output may specialise), plus the mean squared
error between SAM's IoU estimates and the true IoU of every output, since `refine` picks its answer by them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from himtok_sam_refiner import MaskLogits, SamRefiner, TrainingInputs
from torch import nn

# Never used by refinement: the dense prompt is always given (no_mask_embed), boxes always come with the
# points (no padding point), and the random Fourier features of positions are fixed in SAM.
ALWAYS_FROZEN = (
    "prompt_encoder.no_mask_embed.",
    "prompt_encoder.not_a_point_embed.",
    "prompt_encoder.shared_embedding.",
    "shared_image_embedding.",
)
PART_PREFIXES = {
    "vision": ("vision_encoder.",),
    "prompt": ("prompt_encoder.",),
    "decoder": ("mask_decoder.",),
}


def configure_trainable(refiner: SamRefiner, parts: Sequence[str]) -> dict[str, int]:
    """Set `requires_grad` by part; returns the trainable and total parameter counts."""
    prefixes = tuple(p for part in parts for p in PART_PREFIXES[part])
    trainable = total = 0
    for name, param in refiner.model.named_parameters():
        param.requires_grad = name.startswith(prefixes) and not name.startswith(ALWAYS_FROZEN)
        trainable += param.numel() if param.requires_grad else 0
        total += param.numel()
    return {"trainable": trainable, "total": total}


class RefinerNetwork(nn.Module):
    """`forward(inputs)`: the image embeddings (with gradients only when the vision encoder trains) and
    SAM's outputs for the planned masks, as `(low_res [P, 3, g, g], iou [P, 3])`."""

    def __init__(self, refiner: SamRefiner) -> None:
        super().__init__()
        self.sam = refiner.model
        self.refiner = refiner  # not a module: shares `sam`, holds the frame geometry and prompt rules

    def forward(self, inputs: TrainingInputs) -> tuple[torch.Tensor, torch.Tensor]:
        trains_vision = any(p.requires_grad for p in self.sam.vision_encoder.parameters())
        with torch.set_grad_enabled(trains_vision and torch.is_grad_enabled()):
            # not `get_image_embeddings`, which transformers runs under no_grad
            embeddings = self.sam.vision_encoder(inputs.pixels)[0]
        out = self.refiner.forward_logits(embeddings, inputs)
        return out.low_res, out.iou


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per output: logits [K, H, W], target [H, W] -> [K]."""
    probs = torch.sigmoid(logits).flatten(1)
    flat = target.flatten()[None]
    return 1 - (2 * (probs * flat).sum(1) + 1) / (probs.sum(1) + flat.sum(1) + 1)


def refine_loss(
    logits: MaskLogits,
    targets: Sequence[np.ndarray],
    *,
    bce_weight: float = 1.0,
    dice_weight: float = 1.0,
    iou_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss over the planned masks (targets: one bool [H, W] per mask of the batch) and its parts."""
    rows = len(logits.inputs.planned)
    if rows == 0:  # every coarse mask empty: nothing to refine, a zero that still reaches every weight
        return logits.low_res.sum() * 0.0, {"bce": 0.0, "dice": 0.0, "iou_mse": 0.0, "planned": 0.0}
    mask_losses, bces, dices, iou_errors = [], [], [], []
    for row in range(rows):
        target = torch.from_numpy(np.asarray(targets[int(logits.inputs.planned[row])], dtype=np.float32))
        target = target.to(logits.low_res.device)
        at_image = logits.at_image(row)  # [K, H, W]
        bce = F.binary_cross_entropy_with_logits(at_image, target.expand_as(at_image), reduction="none").mean(
            (1, 2)
        )
        dice = dice_loss(at_image, target)
        combined = bce_weight * bce + dice_weight * dice
        best = int(torch.argmin(combined.detach()))
        mask_losses.append(combined[best])
        bces.append(float(bce[best].detach()))
        dices.append(float(dice[best].detach()))
        with torch.no_grad():
            predicted = at_image > 0
            inter = (predicted & (target > 0.5)).flatten(1).sum(1).float()
            union = (predicted | (target > 0.5)).flatten(1).sum(1).float()
            true_iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
        iou_errors.append(F.mse_loss(logits.iou[row], true_iou))
    mask_loss = torch.stack(mask_losses).mean()
    iou_loss = torch.stack(iou_errors).mean()
    parts = {
        "bce": float(np.mean(bces)),
        "dice": float(np.mean(dices)),
        "iou_mse": float(iou_loss.detach()),
        "planned": rows / len(targets),
    }
    return mask_loss + iou_weight * iou_loss, parts

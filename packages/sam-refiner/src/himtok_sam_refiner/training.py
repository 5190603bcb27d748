"""What fine-tuning needs from the refiner: the prompts `refine` builds, decoded with gradients
(`SamRefiner.training_inputs`, `SamRefiner.forward_logits`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .frames import grid_to_image


@dataclass(frozen=True)
class PromptGroup:
    """Masks with the same number of points, decoded together (SAM has no padding tokens to batch others)."""

    rows: list[int]  # mask indices in the batch
    points: torch.Tensor  # [n, 1, P, 2] (x, y) in SAM's input frame
    labels: torch.Tensor  # [n, 1, P]
    boxes: torch.Tensor  # [n, 1, 4]
    masks: torch.Tensor  # [n, 1, g, g] dense prompt (mask logits)


@dataclass(frozen=True)
class TrainingInputs:
    """A batch ready for a differentiable forward: pixel values and the prompts of every non-empty coarse mask."""

    pixels: torch.Tensor  # [N, 3, F, F]
    resized: list[tuple[int, int]]  # per image: its size in SAM's input frame
    image_index: np.ndarray  # int64 [M]: the image of each mask
    sizes: list[tuple[int, int]]  # per mask: its image's (H, W)
    prompts: list[PromptGroup]
    planned: np.ndarray  # int64 [P]: the masks that got prompts (an empty coarse mask gets none), ascending


@dataclass(frozen=True)
class MaskLogits:
    """SAM's outputs for the planned masks of a `TrainingInputs`, rows in the order of `inputs.planned`."""

    low_res: torch.Tensor  # [P, K, g, g] logits over the padded input frame
    iou: torch.Tensor  # [P, K] SAM's IoU estimates
    frame: int
    inputs: TrainingInputs

    def at_image(self, row: int) -> torch.Tensor:
        """Logits [K, H, W] of planned mask `row` on its image (SAM's post-processing; differentiable)."""
        mask = int(self.inputs.planned[row])
        resized = self.inputs.resized[int(self.inputs.image_index[mask])]
        return grid_to_image(self.low_res[row], resized, self.frame, self.inputs.sizes[mask])

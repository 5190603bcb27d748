"""`SamRefiner`: a second look at the image with SAM, to sharpen the edges of coarse masks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from transformers import SamImageProcessorPil, SamModel, SamProcessor, SamPromptEncoderConfig, SamVisionConfig

from .box_points import BoxPointsSettings, mask_box, negative_points, positive_points
from .frames import grid_to_image, mask_iou, nearest_to_image, resize_map, to_grid
from .inputs import Batch, as_image, normalize
from .official_model import OfficialSamModel
from .official_prompts import (
    normalize_pixels,
    official_grid,
    official_mask_logits,
    official_point_prompts,
    stretch_image,
)
from .official_weights import PIXEL_MEAN, PIXEL_STD, load_official_model
from .result import MaskDetails, MaskPrompt, RefineResult
from .training import MaskLogits, PromptGroup, TrainingInputs

PromptMode = Literal["official", "box+points"]
PROMPT_MODES = ("official", "box+points")


@dataclass(frozen=True)
class _Plan:
    """The box+points prompts of one non-empty mask, in SAM's input frame."""

    points: torch.Tensor  # [n, 2] (x, y)
    labels: torch.Tensor  # [n]
    box: torch.Tensor  # [4]
    dense: torch.Tensor  # [g, g] mask logits


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class SamRefiner:
    """Refines coarse masks with SAM: standard transformers SAM weights or the released HiMTok refiner.

    The image embedding is computed once per image and shared by all masks of that image.
    """

    def __init__(
        self,
        model: SamModel,
        image_processor: Any | None = None,
        *,
        settings: BoxPointsSettings | None = None,
        image_batch_size: int = 1,
        mask_batch_size: int = 16,
    ) -> None:
        self.model = model.eval()
        self.official = isinstance(model, OfficialSamModel)
        self.settings = settings or BoxPointsSettings()
        self.image_batch_size = image_batch_size
        self.mask_batch_size = mask_batch_size
        vision = cast(SamVisionConfig, model.config.vision_config)
        prompt = cast(SamPromptEncoderConfig, model.config.prompt_encoder_config)
        if not isinstance(vision.image_size, int):
            raise ValueError(f"SAM with a square input frame expected, got image_size={vision.image_size}")
        self.frame = vision.image_size
        self.grid = 4 * int(prompt.image_embedding_size)
        self.channels = int(vision.output_channels)
        if isinstance(image_processor, SamProcessor):
            image_processor = image_processor.image_processor
        if image_processor is None and not self.official:
            image_processor = SamImageProcessorPil(
                size={"longest_edge": self.frame}, pad_size={"height": self.frame, "width": self.frame}
            )
        if image_processor is not None:
            pad = image_processor.pad_size
            if (pad["height"], pad["width"]) != (self.frame, self.frame):
                raise ValueError(f"image processor pads to {pad}, the model takes {self.frame}x{self.frame}")
        self.image_processor = image_processor

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str | torch.device = "cpu", **kwargs: Any
    ) -> SamRefiner:
        """A local transformers SAM directory (`SamModel` weights, plus its `SamProcessor` files if present)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a transformers SAM directory (no config.json)")
        loaded: Any = SamModel.from_pretrained(path, local_files_only=True, output_loading_info=True)
        model, info = cast(tuple[SamModel, dict[str, Any]], loaded)
        problems = [
            f"{name}: {sorted(info[name])}" for name in ("missing_keys", "unexpected_keys") if info[name]
        ]
        if info.get("mismatched_keys"):
            problems.append(f"mismatched_keys: {sorted(str(k) for k in info['mismatched_keys'])}")
        if problems:
            raise ValueError(f"{path}: weights do not match the SAM config; " + "; ".join(problems))
        processor = None
        if any((path / name).is_file() for name in ("preprocessor_config.json", "processor_config.json")):
            processor = SamProcessor.from_pretrained(path, local_files_only=True)
        torch.nn.Module.to(model, device)
        return cls(model, processor, **kwargs)

    @classmethod
    def from_official(
        cls, sam_pth: str | Path, *, device: str | torch.device = "cpu", **kwargs: Any
    ) -> SamRefiner:
        """The released HiMTok `sam.pth` (raw state_dict of the modified SAM), loaded strictly."""
        return cls(load_official_model(sam_pth, device), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def default_prompts(self) -> PromptMode:
        return "official" if self.official else "box+points"

    def to(self, device: str | torch.device) -> SamRefiner:
        self.model.to(device)
        return self

    def save_pretrained(self, path: str | Path) -> Path:
        """Write a directory `from_pretrained` loads: the SAM weights (safetensors), config and processor.

        Only standard SAM weights have this layout; the released refiner is kept as its official `sam.pth`.
        """
        if self.official:
            raise ValueError(
                "the released refiner has no transformers layout: keep its sam.pth (official_state_dict gives "
                "the weights under the official names)"
            )
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        assert self.image_processor is not None
        SamProcessor(self.image_processor).save_pretrained(path)
        return path

    def preprocess(self, images: Sequence[Any]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Pixel values [N, 3, F, F] on the model's device and dtype (PIL images or uint8 arrays), and each
        image's size in the input frame."""
        images = [as_image(image, f"images[{i}]") for i, image in enumerate(images)]
        if not images:
            return torch.zeros(0, 3, self.frame, self.frame, device=self.device, dtype=self.dtype), []
        if self.official:
            stretched = torch.stack([stretch_image(image, self.frame) for image in images])
            pixels = normalize_pixels(stretched, PIXEL_MEAN, PIXEL_STD)
            resized = [(self.frame, self.frame)] * len(images)
        else:
            assert self.image_processor is not None
            processed = self.image_processor(images=images, return_tensors="pt")
            pixels = processed["pixel_values"]
            resized = [(int(h), int(w)) for h, w in processed["reshaped_input_sizes"].tolist()]
        return pixels.to(self.device, self.dtype), resized

    @torch.inference_mode()
    def embed(self, images: Sequence[Any]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Image embeddings [N, C, e, e] (PIL images or uint8 arrays), and each image's size in the input frame."""
        images = [as_image(image, f"images[{i}]") for i, image in enumerate(images)]
        embeddings, resized = [], []
        for chunk in _chunks(range(len(images)), self.image_batch_size):
            pixels, sizes = self.preprocess([images[i] for i in chunk])
            resized += sizes
            embeddings.append(self.model.get_image_embeddings(pixels))
        if not embeddings:
            side = self.grid // 4
            return torch.zeros(0, self.channels, side, side, device=self.device), []
        return torch.cat(embeddings), resized

    def training_inputs(self, images: Any, coarse: Any) -> TrainingInputs:
        """The inputs of a differentiable forward (`forward_logits`): pixel values and the box+points prompts
        `refine` builds for each coarse mask (same arguments as `refine`). Standard SAM weights only."""
        if self.official:
            raise ValueError(
                "fine-tuning takes standard SAM weights (box+points prompts), not the released refiner"
            )
        batch = normalize(images, coarse)
        pixels, resized = self.preprocess(batch.images)
        planned: list[int] = []
        groups: dict[int, list[tuple[int, _Plan]]] = {}
        for i, mask in enumerate(batch.masks):
            binary = resize_map(mask, batch.size(i)).numpy() > self.settings.threshold
            if binary.any():
                plan = self._plan(mask, binary, resized[int(batch.image_index[i])])
                groups.setdefault(len(plan.points), []).append((i, plan))
                planned.append(i)
        prompts = [
            PromptGroup(
                rows=[i for i, _ in members],
                points=torch.stack([p.points for _, p in members])[:, None].to(self.device, self.dtype),
                labels=torch.stack([p.labels for _, p in members])[:, None].to(self.device),
                boxes=torch.stack([p.box for _, p in members])[:, None].to(self.device, self.dtype),
                masks=torch.stack([p.dense for _, p in members])[:, None].to(self.device, self.dtype),
            )
            for members in groups.values()
        ]
        sizes = [batch.size(i) for i in range(len(batch.masks))]
        return TrainingInputs(
            pixels, resized, batch.image_index, sizes, prompts, np.asarray(planned, np.int64)
        )

    def forward_logits(self, embeddings: torch.Tensor, inputs: TrainingInputs) -> MaskLogits:
        """SAM's 3 outputs for every planned mask, with gradients: low-resolution logits [P, 3, g, g] and IoU
        estimates [P, 3], rows in the order of `inputs.planned` (masks with an empty coarse mask get no row)."""
        order = {int(i): row for row, i in enumerate(inputs.planned)}
        logits: list[torch.Tensor] = [torch.empty(0)] * len(order)
        scores: list[torch.Tensor] = [torch.empty(0)] * len(order)
        for group in inputs.prompts:
            index = torch.as_tensor(inputs.image_index[group.rows], device=embeddings.device)
            out = self.model(
                image_embeddings=embeddings[index],
                input_points=group.points,
                input_labels=group.labels,
                input_boxes=group.boxes,
                input_masks=group.masks,
                multimask_output=True,
            )
            for k, i in enumerate(group.rows):
                logits[order[i]], scores[order[i]] = out.pred_masks[k, 0], out.iou_scores[k, 0]
        if not order:
            side = self.grid
            empty = embeddings.new_zeros(0, 3, side, side)
            return MaskLogits(empty, embeddings.new_zeros(0, 3), self.frame, inputs)
        return MaskLogits(torch.stack(logits), torch.stack(scores), self.frame, inputs)

    @torch.inference_mode()
    def refine(
        self,
        images: Any,
        coarse: Any,
        *,
        prompts: PromptMode | None = None,
        return_all: bool = False,
    ) -> RefineResult:
        """Refine coarse masks; results come back at each image's own size, one per coarse mask.

        images: a PIL image or uint8 array [H, W, 3] (or [H, W]), or a sequence of them.
        coarse: one entry per image: a probability map [h, w] in [0, 1] (float or bool; the LMM's square soft
            map, or a mask at the image's size), a stack [K, h, w] or a list of maps (several masks per image).
        prompts: "official" (the released refiner, bug-compatible) or "box+points" (standard SAM weights);
            default: the one matching the weights.
        return_all: also return every SAM output and the prompts used (`RefineResult.details`).
        """
        mode = prompts or self.default_prompts
        if mode not in PROMPT_MODES:
            raise ValueError(f"prompts must be one of {PROMPT_MODES}, got {mode!r}")
        if mode == "official" and not self.official:
            raise ValueError("prompts='official' needs the released refiner (SamRefiner.from_official)")
        if mode == "box+points" and self.official:
            raise ValueError(
                "the released refiner has no box embedding and one averaged output: use prompts='official'"
            )
        batch = normalize(images, coarse)
        if mode == "official":
            return self._refine_official(batch, return_all)
        return self._refine_box_points(batch, return_all)

    def _decode(
        self, embeddings: torch.Tensor, image_index: np.ndarray, **prompts: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits [B, K, g, g] and IoU estimates [B, K] (float32, CPU) for one prompt per row."""
        index = torch.as_tensor(image_index, device=embeddings.device)
        tensors = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in prompts.items()}
        out = self.model(image_embeddings=embeddings[index], **tensors)
        return out.pred_masks[:, 0].float().cpu(), out.iou_scores[:, 0].float().cpu()

    def _refine_official(self, batch: Batch, return_all: bool) -> RefineResult:
        embeddings, _ = self.embed(batch.images)
        count = len(batch.masks)
        grids = (
            torch.stack([official_grid(m, self.grid) for m in batch.masks]) if count else torch.zeros(0, 1, 1)
        )
        points, labels = official_point_prompts(grids, self.frame / self.grid)
        dense = official_mask_logits(grids).to(self.dtype)
        logits = torch.zeros(count, 1, self.grid, self.grid)
        iou = torch.zeros(count, 1)
        for chunk in _chunks(range(count), self.mask_batch_size):
            logits[chunk], iou[chunk] = self._decode(
                embeddings,
                batch.image_index[chunk],
                input_points=points[chunk][:, None, None, :].to(self.dtype),
                input_labels=labels[chunk][:, None, None],
                input_masks=dense[chunk][:, None],
                multimask_output=False,
            )
        grid_probs = torch.sigmoid(logits).cpu().numpy()
        probs, details, agreement = [], [], []
        for i in range(count):
            height, width = batch.size(i)
            prob = nearest_to_image(grid_probs[i, 0], (height, width))
            probs.append(prob)
            coarse = resize_map(batch.masks[i], (height, width)).numpy() > self.settings.threshold
            agreement.append(mask_iou(prob > 0.5, coarse))
            if return_all:
                scale = np.array([width / self.frame, height / self.frame], dtype=np.float32)
                prompt = MaskPrompt(points[i : i + 1].numpy() * scale, labels[i : i + 1].numpy(), None)
                details.append(
                    MaskDetails(prompt, logits[i].cpu().numpy(), iou[i].cpu().numpy(), prob[None], chosen=0)
                )
        return RefineResult(
            probs=probs,
            masks=[p > 0.5 for p in probs],
            iou=iou[:, 0].cpu().numpy().astype(np.float32),
            image_index=batch.image_index,
            fallback=np.zeros(count, dtype=bool),
            agreement=np.asarray(agreement, dtype=np.float32),
            prompts="official",
            details=details if return_all else None,
        )

    def _plan(self, coarse: np.ndarray, binary: np.ndarray, resized: tuple[int, int]) -> _Plan:
        """Box, points and dense prompt of one non-empty coarse mask, in SAM's input frame."""
        settings = self.settings
        height, width = binary.shape
        cell = self.frame // self.grid
        sx, sy = resized[1] / width, resized[0] / height
        pixels_box = mask_box(binary)
        assert pixels_box is not None, "only non-empty masks are planned"
        box = pixels_box * np.array([sx, sy, sx, sy], dtype=np.float32)
        grid_probs = to_grid(coarse, resized, self.frame, self.grid)
        valid = np.zeros((self.grid, self.grid), dtype=bool)
        valid[: -(-resized[0] // cell), : -(-resized[1] // cell)] = True
        grid_mask = (grid_probs > settings.threshold).numpy() & valid
        positives = positive_points(grid_mask, settings)
        grid_box = np.floor(box / cell)
        negatives = negative_points(grid_mask, valid, grid_box, positives, settings)
        cells = np.concatenate([positives, negatives]).astype(np.float32)
        frame_points = (cells[:, ::-1] + 0.5) * cell - 0.5  # (row, col) cells -> (x, y) pixels
        if len(positives) == 0:  # too small for the grid: aim at the box centre
            frame_points = np.concatenate([[(box[:2] + box[2:]) / 2], frame_points]).astype(np.float32)
        labels = np.concatenate([np.ones(max(len(positives), 1)), np.zeros(len(negatives))]).astype(np.int64)
        limit = settings.mask_logit_limit
        dense = torch.logit(grid_probs.clamp(1e-6, 1 - 1e-6)).clamp(-limit, limit)
        return _Plan(torch.from_numpy(frame_points), torch.from_numpy(labels), torch.from_numpy(box), dense)

    def _refine_box_points(self, batch: Batch, return_all: bool) -> RefineResult:
        settings = self.settings
        embeddings, resized = self.embed(batch.images)
        count = len(batch.masks)
        coarse_probs = [resize_map(m, batch.size(i)).numpy() for i, m in enumerate(batch.masks)]
        binaries = [p > settings.threshold for p in coarse_probs]
        plans: dict[int, _Plan] = {}
        for i in range(count):
            if binaries[i].any():
                image = int(batch.image_index[i])
                plans[i] = self._plan(batch.masks[i], binaries[i], resized[image])

        # masks with the same number of points decode together (no padding tokens, so batching changes nothing)
        groups: dict[int, list[int]] = {}
        for i, plan in plans.items():
            groups.setdefault(len(plan.points), []).append(i)
        low_res: dict[int, torch.Tensor] = {}
        scores: dict[int, torch.Tensor] = {}
        for members in groups.values():
            for chunk in _chunks(members, self.mask_batch_size):
                logits, iou = self._decode(
                    embeddings,
                    batch.image_index[chunk],
                    input_points=torch.stack([plans[i].points for i in chunk])[:, None].to(self.dtype),
                    input_labels=torch.stack([plans[i].labels for i in chunk])[:, None],
                    input_boxes=torch.stack([plans[i].box for i in chunk])[:, None].to(self.dtype),
                    input_masks=torch.stack([plans[i].dense for i in chunk])[:, None].to(self.dtype),
                    multimask_output=True,
                )
                for row, i in enumerate(chunk):
                    low_res[i], scores[i] = logits[row], iou[row]

        probs, masks, details = [], [], []
        estimate = np.full(count, np.nan, dtype=np.float32)
        fallback = np.zeros(count, dtype=bool)
        agreement = np.full(count, np.nan, dtype=np.float32)
        for i in range(count):
            size = batch.size(i)
            if i not in plans:  # empty coarse mask: nothing to prompt SAM with
                fallback[i] = True
                agreement[i] = 1.0
                probs.append(coarse_probs[i])
                masks.append(binaries[i])
                if return_all:
                    details.append(self._empty_details(size))
                continue
            best = int(torch.argmax(scores[i]))
            image = int(batch.image_index[i])
            chosen = [best] if not return_all else list(range(len(scores[i])))
            upsampled = torch.sigmoid(
                grid_to_image(low_res[i][chosen], resized[image], self.frame, size)
            ).numpy()
            prob = upsampled[chosen.index(best)]
            estimate[i] = float(scores[i][best])
            agreement[i] = mask_iou(prob > 0.5, binaries[i])
            fallback[i] = agreement[i] < settings.fallback_iou
            probs.append(coarse_probs[i] if fallback[i] else prob)
            masks.append(binaries[i] if fallback[i] else prob > 0.5)
            if return_all:
                details.append(
                    self._details(plans[i], low_res[i], scores[i], upsampled, best, size, resized[image])
                )
        return RefineResult(
            probs=probs,
            masks=masks,
            iou=estimate,
            image_index=batch.image_index,
            fallback=fallback,
            agreement=agreement,
            prompts="box+points",
            details=details if return_all else None,
        )

    def _details(
        self,
        plan: _Plan,
        logits: torch.Tensor,
        scores: torch.Tensor,
        upsampled: np.ndarray,
        best: int,
        size: tuple[int, int],
        resized: tuple[int, int],
    ) -> MaskDetails:
        scale = np.array([size[1] / resized[1], size[0] / resized[0]], dtype=np.float32)
        prompt = MaskPrompt(
            plan.points.numpy() * scale, plan.labels.numpy(), plan.box.numpy() * np.tile(scale, 2)
        )
        return MaskDetails(prompt, logits.numpy(), scores.numpy(), upsampled, best)

    def _empty_details(self, size: tuple[int, int]) -> MaskDetails:
        prompt = MaskPrompt(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), None)
        return MaskDetails(
            prompt,
            np.zeros((0, self.grid, self.grid), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, *size), np.float32),
            chosen=-1,
        )

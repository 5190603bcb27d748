"""The stage-1 training loop: masks -> tokenizer -> HML + VQ loss, with validation, checkpoints and a report.

``Trainer`` is the stage-1 `TrainLoop` (himtok_apps.training): it builds the data and the tokenizer, computes
one step's loss, keeps codebook statistics and validates by IoU against the number of tokens; the shared loop
does optimisation, distribution, logging, checkpoints and resume. ``train`` runs it; ``finish`` writes the
final validation and the report. Every random choice of a step (data, augmentation, HML levels, dead-code
restarts) is drawn from seeds derived from ``(seed, step, rank)``, so a resumed run replays exactly what an
uninterrupted one would have done.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from himtok_hml_loss import HierarchicalMaskLoss, sample_levels
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from himtok_vq import CodebookStats
from tqdm import tqdm

from himtok_apps.codebook import code_report, restore_code_stats
from himtok_apps.data import MaskMixture, build_source, parse_data_spec, render_validation
from himtok_apps.metrics import bounding_box_iou, resolution_only_iou
from himtok_apps.stage1.config import EVAL_LENGTHS, TrainConfig
from himtok_apps.stage1.report import write_report
from himtok_apps.tokenizer_eval import Evaluation, evaluate
from himtok_apps.training import distributed as D
from himtok_apps.training.checkpoint import swap_directory
from himtok_apps.training.loop import (
    TrainingStopped,
    TrainLoop,
    check_same_weights,
    run_training,
    step_seed,
    weights_digest,
)

__all__ = [
    "Trainer",
    "TrainingStopped",
    "build_model",
    "model_config",
    "train",
    "training_config",
    "weights_digest",
]

REPORT_EXAMPLES = 6


def model_config(config: TrainConfig) -> MaskTokenizerConfig:
    """The exported tokenizer's configuration (masks in and out at ``image_size``, 256 for every preset)."""
    overrides = {"dead_code_threshold": config.dead_code_threshold, "usage_decay": config.usage_decay}
    overrides.update(config.model_overrides)
    return MaskTokenizerConfig.preset(config.preset, layout=config.layout, **overrides)


def training_config(exported: MaskTokenizerConfig, train_size: int | None) -> MaskTokenizerConfig:
    """The same network seen at the training resolution.

    The tokenizer predicts at ``internal_size`` and only upsamples to ``image_size`` at the end, so training
    with ``image_size = internal_size`` has exactly the same parameters, skips the upsampling and computes the
    loss where the model actually predicts (16x fewer pixels for the tiny preset). Evaluation and the exported
    checkpoint use the full ``image_size``.
    """
    assert exported.internal_size is not None
    size = train_size or exported.internal_size
    if size == exported.image_size:
        return exported
    if not exported.internal_size <= size <= exported.image_size:
        raise ValueError(
            f"--train-size must lie between the model's internal size {exported.internal_size} "
            f"and its image size {exported.image_size}, got {size}"
        )
    return exported.replace(image_size=size)


def build_model(config: TrainConfig) -> MaskTokenizer:
    """The tokenizer to train, at the training resolution."""
    train_config = training_config(model_config(config), config.train_size)
    if config.init_from_official:
        return MaskTokenizer.from_official(config.init_from_official, train_config)
    torch.manual_seed(config.seed)
    return MaskTokenizer(train_config)


class Trainer(TrainLoop):
    """The stage-1 loop: masks -> tokenizer -> HML + VQ loss, with codebook statistics and IoU validation."""

    rate_name = "masks_per_s"
    model: MaskTokenizer

    def __init__(self, config: TrainConfig, out: Path, info: D.DistInfo) -> None:
        super().__init__(config, out, info)
        self.config: TrainConfig = config
        self.iou_stalls = 0  # consecutive evaluations where IoU@32 did not beat IoU@8
        self.last_window_codes: dict[str, Any] | None = None

        specs = [parse_data_spec(text) for text in config.data]
        sources = [build_source(spec, self.skips) for spec in specs]
        self.mixture = MaskMixture(sources, [s.weight for s in specs], seed=config.seed, skips=self.skips)
        self.val_sources = [build_source(parse_data_spec(text), self.skips) for text in config.val_data]
        self.val_masks: torch.Tensor | None = None

        model = build_model(config).to(info.device)
        self.export_config = model_config(config)
        model.train()
        self.codes = CodebookStats(
            model.config.codebook_size, model.config.num_latent_tokens, device=info.device
        )
        self.hml = HierarchicalMaskLoss(
            bce_weight=config.bce_weight,
            dice_weight=config.dice_weight,
            schedule=config.hml_schedule,
            n_levels=config.hml_levels,
            max_len=model.config.num_latent_tokens,
        )
        self.setup_optimization(model)

    def validation_masks(self) -> torch.Tensor:
        if self.val_masks is None:
            size = self.export_config.image_size
            parts = [render_validation(s, self.config.val_size, size, self.skips) for s in self.val_sources]
            masks = torch.cat(parts)
            self.val_masks = masks[: self.config.val_size] if self.config.val_size else masks
        return self.val_masks

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        return {
            "codes": {k: v.cpu() for k, v in self.codes.state_dict().items()},
            "iou_stalls": self.iou_stalls,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        restore_code_stats(self.codes, state["codes"])
        self.iou_stalls = int(state.get("iou_stalls", 0))

    def eval_weights(self) -> MaskTokenizer:
        """A copy of the weights (the EMA weights when EMA is on) in the exported configuration."""
        model = MaskTokenizer(self.export_config).to(self.info.device)
        state = self.model.state_dict()
        if self.ema is not None:
            state.update(self.ema)
        model.load_state_dict(state)
        return model

    def export_pretrained(self) -> Path:
        tmp = self.out / f".checkpoint.tmp-{os.getpid()}"
        self.eval_weights().save_pretrained(tmp)
        final = self.out / "checkpoint"
        swap_directory(tmp, final)
        return final

    # ------------------------------------------------------------------ one step
    def compute_loss(self) -> tuple[torch.Tensor, dict[str, float], Any]:
        config, info = self.config, self.info
        masks = self.mixture.batch(self.step, config.batch_size, info.rank, info.world_size).to(info.device)
        size = self.model.config.image_size
        if masks.shape[-1] != size:  # area down-sampling, exactly what the tokenizer does internally
            masks = F.interpolate(masks[:, None], size=(size, size), mode="area")[:, 0]
        generator = torch.Generator().manual_seed(step_seed(config.seed, self.step, info.rank, 2))
        levels = sample_levels(
            config.hml_levels,
            self.model.config.num_latent_tokens,
            config.level_offset,
            generator,
            batch_size=masks.shape[0],
        ).to(info.device)
        autocast = info.device.type == "cuda"
        with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = self.network(masks, levels, quantize=self.step >= config.vq_warmup_steps)
        hml = self.hml(out.logits.float(), out.targets, levels)
        loss = hml.total + config.vq_weight * out.vq_aux.loss.float()
        parts = {
            "hml": float(hml.total.detach()),
            "hml_full": float(hml.per_level[0].detach()),
            "vq_loss": float(out.vq_aux.loss.detach()),
        }
        return loss, parts, out

    def after_update(self, extra: Any) -> None:
        self.codes.update(extra.tokens.detach())

    def code_summary(self) -> dict[str, Any]:
        return code_report(self.codes)  # a collective under torch.distributed

    def run_validation(self, size: int | None, keep_examples: int = 0) -> Evaluation:
        masks = self.validation_masks()
        masks = masks[:size] if size else masks
        return evaluate(
            self.eval_weights(),
            masks,
            EVAL_LENGTHS,
            keep_examples=keep_examples,
            autocast=self.info.device.type == "cuda",
        )

    def check_validation(self, evaluation: Evaluation, final: bool = False) -> None:
        """Warn when the fine tokens stop adding information: IoU at 32 tokens not above IoU at 8.

        Early in a run the two curves are both near zero and cross by chance, so a periodic evaluation only
        warns when the condition held at the previous one too; the final evaluation always warns.
        """
        at = evaluation.per_length
        if 32 not in at or 8 not in at:
            return
        if at[32]["miou"] > at[8]["miou"]:
            self.iou_stalls = 0
            return
        self.iou_stalls += 1
        if final or self.iou_stalls >= 2:
            self.warn(
                f"validation IoU at 32 tokens ({at[32]['miou']:.3f}) no longer beats IoU at 8 tokens "
                f"({at[8]['miou']:.3f}): the fine tokens carry no information"
            )

    # ------------------------------------------------------------------ loop hooks
    def window_statistics(self, record: dict[str, Any], window_steps: int) -> None:
        codes = self.code_summary()
        record.update(codes)
        if codes["usage"] < self.config.collapse_usage:
            self.warn(
                f"codebook usage collapsed: {codes['codes_used']} codes used in the last "
                f"{window_steps} steps (perplexity {codes['perplexity']:.1f})"
            )
        self.last_window_codes = codes
        self.codes.reset()

    def final_code_summary(self) -> dict[str, Any]:
        """Code usage of the last steps: the open window, or the last logged one when the run ended on a log step."""
        codes = self.code_summary()  # a collective: every rank takes part
        empty = codes["usage"] == 0 and codes["codes_used"] == 0
        return self.last_window_codes if empty and self.last_window_codes is not None else codes

    def periodic_evaluation(self, record: dict[str, Any], bar: Any) -> None:
        evaluation = self.run_validation(self.config.val_size_during)
        record["val"] = evaluation.metrics()
        self.check_validation(evaluation)
        iou32 = evaluation.per_length[32]["miou"]
        bar.write(f"step {self.step}: val mIoU@8 {evaluation.per_length[8]['miou']:.3f} @32 {iou32:.3f}")


def train(config: TrainConfig) -> dict[str, Any] | None:
    """Run (or resume) a stage-1 training; returns the summary on rank 0 (None on other ranks)."""
    return run_training(config, Trainer, finish, "stage1")


def reference_ious(masks: torch.Tensor, config: MaskTokenizerConfig) -> dict[str, float]:
    """Training-free yardsticks for the validation mIoU: filled bounding boxes (position and extent only), and
    the masks passed through the model's internal resolution (no tokenizer predicting there can beat it)."""
    assert config.internal_size is not None
    size = config.internal_size
    return {
        "bounding box": round(float(bounding_box_iou(masks).mean()), 4),
        f"{size}px ceiling": round(float(resolution_only_iou(masks, size).mean()), 4),
    }


def finish(trainer: Trainer) -> dict[str, Any] | None:
    """Final validation on every validation mask, the report, and the cross-rank weight check."""
    info = trainer.info
    digest = check_same_weights(trainer)
    training_codes = trainer.final_code_summary()
    if not info.is_main:
        return None
    evaluation = trainer.run_validation(trainer.config.val_size, keep_examples=REPORT_EXAMPLES)
    trainer.check_validation(evaluation, final=True)
    summary: dict[str, Any] = {
        "steps": trainer.step,
        "stop_reason": trainer.stop_reason,
        "train_seconds": round(trainer.elapsed_s, 1),
        "world_size": info.world_size,
        "validation": {
            "masks": int(trainer.validation_masks().shape[0]),
            "sources": trainer.config.val_data,
            **evaluation.metrics(),
            "references": reference_ious(trainer.validation_masks(), trainer.export_config),
        },
        "training_codes": training_codes,
        "skipped": trainer.skips.summary(),
        "warnings": trainer.warnings,
        "weights_sha256": digest,
        "config": asdict(trainer.config),
        "model_config": trainer.export_config.to_dict(),
        "train_size": trainer.model.config.image_size,
    }
    masks = trainer.validation_masks()[:REPORT_EXAMPLES].numpy()
    ious = {n: v[:REPORT_EXAMPLES] for n, v in evaluation.ious.items()}
    title = f"{trainer.config.preset} {trainer.config.layout}, {trainer.step} steps"
    write_report(trainer.out / "report", summary, masks, evaluation.examples, ious, title)
    line = "  ".join(f"@{n} {v['miou']:.3f}" for n, v in evaluation.per_length.items())
    skipped = trainer.skips.count()
    tqdm.write(f"validation mIoU {line}", file=sys.stderr)
    tqdm.write(f"skipped unreadable items: {skipped}; run folder: {trainer.out}", file=sys.stderr)
    return summary

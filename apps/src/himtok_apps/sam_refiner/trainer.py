"""The refiner trainer: the shared `TrainLoop` with SAM, coarse masks made from the ground truth, and the
BCE + Dice + IoU-estimate loss; the report compares the held-out IoU before and after training."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from himtok_mask_tokenizer import MaskTokenizer
from himtok_sam_refiner import MaskLogits, SamRefiner, tiny_sam
from tqdm import tqdm

from himtok_apps.sam_refiner.coarse import CoarseMaskMaker, CoarseSettings
from himtok_apps.sam_refiner.config import RefinerTrainConfig
from himtok_apps.sam_refiner.data import RefineSample, SampleStream, build_samples, held_out
from himtok_apps.sam_refiner.evaluate import Evaluation, evaluate
from himtok_apps.sam_refiner.network import RefinerNetwork, configure_trainable, refine_loss
from himtok_apps.sam_refiner.report import save_examples
from himtok_apps.training import distributed as D
from himtok_apps.training.checkpoint import latest_checkpoint, swap_directory
from himtok_apps.training.loop import TrainLoop, check_same_weights, run_training, step_seed

REPORT_EXAMPLES = 6
VAL_COARSE_SEED = 99
TOKEN_BUCKETS = ((1, 4), (5, 16), (17, 32))


def initial_refiner(config: RefinerTrainConfig, device: torch.device) -> SamRefiner:
    """The refiner before training: `--init` (strict load) or the tiny random SAM of `--seed`."""
    if config.init is not None:
        return SamRefiner.from_pretrained(config.init, device=device)
    return SamRefiner(tiny_sam(seed=config.seed, image_size=config.tiny_frame)).to(device)


def coarse_settings(config: RefinerTrainConfig) -> CoarseSettings:
    return CoarseSettings(config.min_tokens, config.max_tokens, config.morph_prob, config.max_radius)


def data_splits(config: RefinerTrainConfig) -> tuple[str, str, str]:
    """(train split, held-out spec, its split): without --val-data, the held-out part of --data."""
    if config.val_data is None:
        return "train", config.data, "val"
    return "all", config.val_data, "all"


class RefinerTrainer(TrainLoop):
    rate_name = "masks_per_s"

    def __init__(self, config: RefinerTrainConfig, out: Path, info: D.DistInfo) -> None:
        super().__init__(config, out, info)
        self.config: RefinerTrainConfig = config
        self.skips.echo = lambda line: tqdm.write(line, file=sys.stderr) if info.is_main else None
        tokenizer = MaskTokenizer.from_pretrained(config.mask_tokenizer).to(info.device)
        self.coarse = CoarseMaskMaker(tokenizer, coarse_settings(config))
        train_split, val_spec, val_split = data_splits(config)
        self.stream = SampleStream(
            build_samples(config.data, train_split, self.skips), config.seed, self.skips
        )
        self.val_source = build_samples(val_spec, val_split, self.skips)
        self.val: tuple[list[RefineSample], list[np.ndarray], list[int]] | None = None
        self.refiner = initial_refiner(config, info.device)
        self.parameter_counts = configure_trainable(self.refiner, config.train)
        network = RefinerNetwork(self.refiner).to(info.device)
        network.train()
        self.setup_optimization(network)

    # ------------------------------------------------------------------ data
    def batch(self) -> list[RefineSample]:
        config, info = self.config, self.info
        first = (self.step * info.world_size + info.rank) * config.batch_size
        return [self.stream.sample(first + i) for i in range(config.batch_size)]

    def validation(self) -> tuple[list[RefineSample], list[np.ndarray], list[int]]:
        """Held-out samples, their coarse masks and token counts: the same in every run with this seed."""
        if self.val is None:
            samples = held_out(self.val_source, self.config.val_size, self.config.seed, self.skips)
            rng = np.random.default_rng([self.config.seed, VAL_COARSE_SEED])
            draws = [self.coarse.draw(rng, s.mask.shape) for s in samples]
            coarse = self.coarse.make([s.mask for s in samples], [t for t, _ in draws], [r for _, r in draws])
            self.val = samples, coarse, [t for t, _ in draws]
        return self.val

    # ------------------------------------------------------------------ one step
    def compute_loss(self) -> tuple[torch.Tensor, dict[str, float], Any]:
        config = self.config
        samples = self.batch()
        rng = np.random.default_rng(step_seed(config.seed, self.step, self.info.rank, 2))
        coarse = self.coarse([s.mask for s in samples], rng)
        inputs = self.refiner.training_inputs([s.image for s in samples], [[c] for c in coarse])
        low_res, estimates = self.network(inputs)
        logits = MaskLogits(low_res, estimates, self.refiner.frame, inputs)
        loss, parts = refine_loss(
            logits,
            [s.mask for s in samples],
            bce_weight=config.bce_weight,
            dice_weight=config.dice_weight,
            iou_weight=config.iou_weight,
        )
        if len(inputs.planned) == 0:  # keeps every trainable weight in the graph (DDP expects them all)
            loss = loss + sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        return loss, parts, None

    # ------------------------------------------------------------------ evaluation and export
    def eval_refiner(self) -> SamRefiner:
        """The refiner with the current weights (the EMA weights when EMA is on), for evaluation and export."""
        if self.ema is None:
            return SamRefiner(
                self.refiner.model, self.refiner.image_processor, settings=self.refiner.settings
            )
        model = copy.deepcopy(self.refiner.model)
        model.load_state_dict({k.removeprefix("sam."): v for k, v in self.ema.items()}, strict=True)
        return SamRefiner(model, self.refiner.image_processor, settings=self.refiner.settings)

    def periodic_evaluation(self, record: dict[str, Any], bar: Any) -> None:
        samples, coarse, _ = self.validation()
        count = self.config.val_size_during
        result = evaluate(self.eval_refiner(), samples[:count], coarse[:count])
        self.network.train()
        record["val"] = result.summary()
        bar.write(
            f"step {self.step}: held-out mIoU coarse {record['val']['coarse_miou']:.3f} -> refined "
            f"{record['val']['refined_miou']:.3f} (kept coarse {record['val']['fallback']:.0%})"
        )

    def export_pretrained(self) -> Path:
        tmp = self.out / f".checkpoint.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.eval_refiner().save_pretrained(tmp)
        self.network.train()
        latest = latest_checkpoint(self.out / "checkpoints")
        if latest is not None:  # each training checkpoint also holds its loadable refiner
            shutil.copytree(tmp, latest / "model", dirs_exist_ok=True)
        final = self.out / "checkpoint"
        swap_directory(tmp, final)
        return final


def by_tokens(before: Evaluation, after: Evaluation, tokens: list[int]) -> dict[str, Any]:
    """Held-out mIoU per range of tokens the coarse masks were decoded from."""
    counts = np.asarray(tokens)
    out = {}
    for low, high in TOKEN_BUCKETS:
        pick = (counts >= low) & (counts <= high)
        if pick.any():
            out[f"{low}-{high}"] = {
                "masks": int(pick.sum()),
                "coarse_miou": round(float(before.coarse_iou[pick].mean()), 4),
                "refined_miou_before": round(float(before.refined_iou[pick].mean()), 4),
                "refined_miou_after": round(float(after.refined_iou[pick].mean()), 4),
            }
    return out


def finish(trainer: RefinerTrainer) -> dict[str, Any] | None:
    digest = check_same_weights(trainer)
    if not trainer.info.is_main:
        return None
    config, out = trainer.config, trainer.out
    samples, coarse, tokens = trainer.validation()
    exported = SamRefiner.from_pretrained(out / "checkpoint", device=trainer.info.device)  # strict load
    after = evaluate(exported, samples, coarse)
    before = evaluate(initial_refiner(config, trainer.info.device), samples, coarse)
    summary: dict[str, Any] = {
        "steps": trainer.step,
        "stop_reason": trainer.stop_reason,
        "train_seconds": round(trainer.elapsed_s, 1),
        "world_size": trainer.info.world_size,
        "parameters": trainer.parameter_counts,
        "trained_parts": config.train,
        "validation": {
            "data": config.val_data or f"{config.data} (held-out part)",
            "masks": len(samples),
            "coarse_miou": before.summary()["coarse_miou"],
            "before": before.summary(),
            "after": after.summary(),
            "by_tokens": by_tokens(before, after, tokens),
        },
        "skipped": trainer.skips.summary(),
        "warnings": trainer.warnings,
        "weights_sha256": digest,
        "checkpoint": str(out / "checkpoint"),
        "config": json.loads(config.to_json()),
    }
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    count = min(REPORT_EXAMPLES, len(samples))
    title = f"{config.init or 'tiny random SAM'}, {trainer.step} steps"
    save_examples(report / "examples.png", samples[:count], coarse[:count], before, after, title)
    (report / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def train(config: RefinerTrainConfig) -> dict[str, Any] | None:
    """Run (or resume) a refiner fine-tuning; the summary on rank 0 (None elsewhere and when halted)."""
    return run_training(config, RefinerTrainer, finish, "sam-refiner")

"""The stage-1 training loop: masks -> tokenizer -> HML + VQ loss, with validation, checkpoints and a report.

Read top to bottom: ``train`` builds everything (run folder, data, model, optimizer), optionally restores a
checkpoint, runs ``Trainer.fit`` and writes the final checkpoint and report. Every random choice of a step
(data, augmentation, HML levels, dead-code restarts) is drawn from seeds derived from ``(seed, step, rank)``,
so a resumed run replays exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from himtok_hml_loss import HierarchicalMaskLoss, sample_levels
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from himtok_vq import CodebookStats
from torch import nn
from tqdm import tqdm

from himtok_apps.data import MaskMixture, SkipCounter, build_source, parse_data_spec, render_validation
from himtok_apps.stage1 import distributed as D
from himtok_apps.stage1.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, swap_directory
from himtok_apps.stage1.codebook import code_report, restore_code_stats
from himtok_apps.stage1.config import EVAL_LENGTHS, TrainConfig, read_deepspeed_config
from himtok_apps.stage1.evaluate import Evaluation, evaluate
from himtok_apps.stage1.metrics import bounding_box_iou, resolution_only_iou
from himtok_apps.stage1.report import write_report
from himtok_apps.stage1.schedule import WarmupCosine

REPORT_EXAMPLES = 6


class TrainingStopped(RuntimeError):
    """The run stopped on purpose (non-finite loss); the message says why and where the last checkpoint is."""


def step_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([abs(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def default_out_dir() -> Path:
    return Path("runs") / f"stage1-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


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


def weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def non_persistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    persistent = set(model.state_dict())
    return {name: buf for name, buf in model.named_buffers() if name not in persistent}


def deepspeed_settings(config: TrainConfig, info: D.DistInfo) -> dict[str, Any]:
    """The ``--deepspeed`` JSON with the run's batch size and gradient clipping filled in where it is silent.

    The loop feeds ``--batch-size`` masks per rank and step (``TrainConfig.validate`` rejects another micro-batch).
    """
    assert config.deepspeed is not None
    settings = read_deepspeed_config(config.deepspeed)
    micro = settings.setdefault("train_micro_batch_size_per_gpu", config.batch_size)
    accumulation = settings.setdefault("gradient_accumulation_steps", 1)
    settings.setdefault("train_batch_size", micro * accumulation * info.world_size)
    if config.grad_clip > 0:
        settings.setdefault("gradient_clipping", config.grad_clip)
    return settings


class Trainer:
    """Holds the live objects of a run; ``fit`` runs the loop from ``self.step`` to the end."""

    def __init__(self, config: TrainConfig, out: Path, info: D.DistInfo) -> None:
        self.config = config
        self.out = out
        self.info = info
        self.skips = SkipCounter()
        self.warnings: list[str] = []
        self.step = 0
        self.elapsed_s = 0.0
        self.stop_reason = "max steps"
        self.iou_stalls = 0  # consecutive evaluations where IoU@32 did not beat IoU@8

        specs = [parse_data_spec(text) for text in config.data]
        sources = [build_source(spec, self.skips) for spec in specs]
        self.mixture = MaskMixture(sources, [s.weight for s in specs], seed=config.seed, skips=self.skips)
        self.val_sources = [build_source(parse_data_spec(text), self.skips) for text in config.val_data]
        self.val_masks: torch.Tensor | None = None

        self.model = build_model(config).to(info.device)
        self.export_config = model_config(config)
        self.model.train()
        self.codes = CodebookStats(
            self.model.config.codebook_size, self.model.config.num_latent_tokens, device=info.device
        )
        self.hml = HierarchicalMaskLoss(
            bce_weight=config.bce_weight,
            dice_weight=config.dice_weight,
            schedule=config.hml_schedule,
            n_levels=config.hml_levels,
            max_len=self.model.config.num_latent_tokens,
        )
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (decay if param.ndim >= 2 and "embedding" not in name else no_decay).append(param)
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.lr,
            betas=(0.9, 0.99),
        )
        budget = config.max_minutes * 60 if config.max_minutes else None
        self.scheduler = WarmupCosine(
            self.optimizer, config.lr, config.max_steps, config.warmup_steps, config.min_lr_ratio, budget
        )
        self.ema: dict[str, torch.Tensor] | None = None
        if config.ema > 0:
            self.ema = {
                k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()
            }
        self.engine: Any = None
        self.network: nn.Module = self.model
        if config.deepspeed:
            self._init_deepspeed()
        elif info.enabled:
            device_ids = [info.local_rank] if info.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    # ------------------------------------------------------------------ setup helpers
    def _init_deepspeed(self) -> None:
        try:
            import deepspeed  # type: ignore[import-not-found]
        except ImportError:
            raise ValueError("--deepspeed needs DeepSpeed: pip install 'himtok-apps[deepspeed]'") from None
        settings = deepspeed_settings(self.config, self.info)
        if not torch.distributed.is_initialized():
            # Not launched by torchrun: a one-process group, so DeepSpeed does not go looking for MPI.
            D.single_process_env()
            deepspeed.init_distributed(dist_backend="nccl" if self.info.device.type == "cuda" else "gloo")
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=self.model, optimizer=self.optimizer, config=settings
        )
        self.scheduler.optimizer = self.optimizer
        self.network = self.engine

    def validation_masks(self) -> torch.Tensor:
        if self.val_masks is None:
            size = self.export_config.image_size
            parts = [render_validation(s, self.config.val_size, size, self.skips) for s in self.val_sources]
            masks = torch.cat(parts)
            self.val_masks = masks[: self.config.val_size] if self.config.val_size else masks
        return self.val_masks

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "buffers": {k: v.detach().cpu() for k, v in non_persistent_buffers(self.model).items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": {k: v.cpu() for k, v in self.ema.items()} if self.ema is not None else {},
            "rng": {"torch": torch.get_rng_state()},
            "data": {"samples_seen": self.step * self.config.batch_size * self.info.world_size},
            "codes": {k: v.cpu() for k, v in self.codes.state_dict().items()},
            "skips": {name: sorted(items) for name, items in self.skips.seen.items()},
            "warnings": list(self.warnings),
            "iou_stalls": self.iou_stalls,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"], strict=True)
        buffers = dict(self.model.named_buffers())
        for name, value in state["buffers"].items():
            buffers[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state["ema"]:
            self.ema = {k: v.to(self.info.device) for k, v in state["ema"].items()}
        torch.set_rng_state(state["rng"]["torch"])
        restore_code_stats(self.codes, state["codes"])
        for name, items in state["skips"].items():
            for item in items:
                self.skips.add(name, item, "restored")
        self.warnings = list(state["warnings"])
        self.iou_stalls = int(state.get("iou_stalls", 0))
        self.step = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])

    def save(self) -> Path | None:
        """Rank 0 writes the checkpoint; every rank waits for it."""
        path = None
        if self.engine is not None:
            self.engine.save_checkpoint(
                str(self.out / "checkpoints" / "deepspeed"), tag=f"step-{self.step:07d}"
            )
        if self.info.is_main:
            path = save_checkpoint(
                self.out / "checkpoints", self.step, self.state_dict(), self.config.keep_checkpoints
            )
            self.export_pretrained()
        D.barrier(self.info)
        return path

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
    def compute_loss(
        self, masks: torch.Tensor, levels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float], Any]:
        autocast = self.info.device.type == "cuda"
        with torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = self.network(masks, levels, quantize=self.step >= self.config.vq_warmup_steps)
        hml = self.hml(out.logits.float(), out.targets, levels)
        loss = hml.total + self.config.vq_weight * out.vq_aux.loss.float()
        parts = {
            "hml": float(hml.total.detach()),
            "hml_full": float(hml.per_level[0].detach()),
            "vq_loss": float(out.vq_aux.loss.detach()),
        }
        return loss, parts, out

    def train_step(self) -> dict[str, float]:
        config, info = self.config, self.info
        torch.manual_seed(step_seed(config.seed, self.step, info.rank, 1))  # dead-code restarts, dropout
        masks = self.mixture.batch(self.step, config.batch_size, info.rank, info.world_size).to(info.device)
        size = self.model.config.image_size
        if masks.shape[-1] != size:  # area down-sampling, exactly what the tokenizer does internally
            masks = F.interpolate(masks[:, None], size=(size, size), mode="area")[:, 0]
        generator = torch.Generator().manual_seed(step_seed(config.seed, self.step, info.rank, 2))
        levels = sample_levels(
            config.hml_levels, self.model.config.num_latent_tokens, 8.0, generator, batch_size=masks.shape[0]
        ).to(info.device)
        lr = self.scheduler.apply(self.step, self.elapsed_s)
        loss, parts, out = self.compute_loss(masks, levels)
        if D.any_rank(not bool(torch.isfinite(loss.detach())), info):
            latest = latest_checkpoint(self.out / "checkpoints")
            where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
            raise TrainingStopped(
                f"stopped: the loss became {float(loss.detach())} at step {self.step} (lr {lr:.3g}); "
                f"{where}. Lower --lr or check the data, then --resume {self.out}."
            )
        if self.engine is not None:
            self.engine.backward(loss)
            # ZeRO stage 0 with a client optimizer reports no global norm; the gradients are still plain then.
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            local = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
            self.engine.step()
            reported = self.engine.get_global_grad_norm()
            grad_norm = float(reported) if reported is not None else local
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = config.grad_clip if config.grad_clip > 0 else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip))
            self.optimizer.step()
        if self.ema is not None:
            with torch.no_grad():
                state = self.model.state_dict()
                for name, value in self.ema.items():
                    value.lerp_(state[name], 1.0 - config.ema)
        self.codes.update(out.tokens.detach())
        return {"loss": float(loss.detach()), **parts, "grad_norm": grad_norm, "lr": lr}

    # ------------------------------------------------------------------ monitoring
    def warn(self, message: str) -> None:
        self.warnings.append(f"step {self.step}: {message}")
        if self.info.is_main:
            tqdm.write(f"WARNING: {message}", file=sys.stderr)

    def log_line(self, record: dict[str, Any]) -> None:
        if self.info.is_main:
            with open(self.out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")

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

    # ------------------------------------------------------------------ loop
    def fit(self) -> None:
        config, info = self.config, self.info
        bar = tqdm(
            total=config.max_steps,
            initial=self.step,
            disable=not info.is_main,
            dynamic_ncols=True,
            unit="step",
        )
        window: list[dict[str, float]] = []
        window_start, window_steps, window_cpu = time.perf_counter(), 0, time.process_time()
        loop_start, elapsed_before = time.perf_counter(), self.elapsed_s
        while self.step < config.max_steps:
            if config.halt_after is not None and self.step >= config.halt_after:
                self.stop_reason = "halted (--halt-after)"
                break
            if self.scheduler.budget_s and self.elapsed_s >= self.scheduler.budget_s:
                self.stop_reason = "time budget (--max-minutes)"
                break
            stats = self.train_step()
            self.step += 1
            self.elapsed_s = elapsed_before + time.perf_counter() - loop_start
            window.append(stats)
            window_steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2g}")
            if self.step % config.log_every == 0 or self.step == config.max_steps:
                duration = time.perf_counter() - window_start
                means = D.all_reduce_mean(
                    {k: float(np.mean([s[k] for s in window])) for k in window[0]}, info
                )
                codes = self.code_summary()
                rate = window_steps * config.batch_size * info.world_size / max(duration, 1e-9)
                bar.set_postfix(loss=f"{means['loss']:.3f}", masks_s=f"{rate:.0f}", codes=codes["codes_used"])
                record: dict[str, Any] = {
                    "step": self.step,
                    **{k: round(v, 6) for k, v in means.items()},
                    "masks_per_s": round(rate, 2),
                    # CPU seconds of this process per step: unlike wall time, barely affected by other jobs.
                    "cpu_s_per_step": round((time.process_time() - window_cpu) / window_steps, 3),
                    "elapsed_s": round(self.elapsed_s, 1),
                    **codes,
                }
                if codes["usage"] < config.collapse_usage:
                    self.warn(
                        f"codebook usage collapsed: {codes['codes_used']} codes used in the last "
                        f"{window_steps} steps (perplexity {codes['perplexity']:.1f})"
                    )
                if self.step % config.eval_every == 0 and info.is_main:
                    evaluation = self.run_validation(config.val_size_during)
                    record["val"] = evaluation.metrics()
                    self.check_validation(evaluation)
                    iou32 = evaluation.per_length[32]["miou"]
                    bar.write(
                        f"step {self.step}: val mIoU@8 {evaluation.per_length[8]['miou']:.3f} @32 {iou32:.3f}"
                    )
                self.log_line(record)
                self.codes.reset()
                window, window_start, window_steps = [], time.perf_counter(), 0
                window_cpu = time.process_time()
            if self.step % config.ckpt_every == 0:
                self.save()
        bar.close()


def _prepare_run_folder(config: TrainConfig, info: D.DistInfo) -> Path:
    out = Path(config.resume or config.out or default_out_dir())
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run_config.json").write_text(config.to_json() + "\n")
    D.barrier(info)
    return out


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint a run resumes from (they will be logged again)."""
    if not path.is_file():
        return
    kept = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def train(config: TrainConfig) -> dict[str, Any] | None:
    """Run (or resume) a stage-1 training; returns the summary on rank 0 (None on other ranks)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    info = D.setup(config.device)
    try:
        if config.resume is not None:
            config.out = config.resume
        out = _prepare_run_folder(config, info)
        trainer = Trainer(config, out, info)
        if config.resume is not None:
            checkpoint = latest_checkpoint(out / "checkpoints")
            if checkpoint is not None:
                trainer.load_state_dict(load_checkpoint(checkpoint))
                if trainer.engine is not None:
                    trainer.engine.load_checkpoint(
                        str(out / "checkpoints" / "deepspeed"), tag=checkpoint.name
                    )
                if info.is_main:
                    _truncate_metrics(out / "metrics.jsonl", trainer.step)
                    tqdm.write(f"resumed from {checkpoint} (step {trainer.step})", file=sys.stderr)
        elif info.is_main:
            (out / "metrics.jsonl").write_text("")
        D.barrier(info)
        trainer.fit()
        if trainer.stop_reason.startswith("halted"):
            return None  # as if killed: nothing more is written
        trainer.save()
        return finish(trainer)
    finally:
        D.teardown(info)


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
    digest = weights_digest(trainer.model)
    if info.enabled:
        ranks = trainer.out / "ranks"
        ranks.mkdir(exist_ok=True)
        (ranks / f"rank-{info.rank}.json").write_text(
            json.dumps({"rank": info.rank, "sha256": digest}) + "\n"
        )
        digests: list[Any] = [None] * info.world_size
        torch.distributed.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise TrainingStopped(f"ranks ended with different weights: {digests}")
    training_codes = trainer.code_summary()  # a collective: every rank takes part
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

"""The stage-2/3 trainer: the shared `TrainLoop` with the multimodal model, its conversations and its objective."""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from himtok_lmm_adapter import HiMTokModel
from tqdm import tqdm

from himtok_apps.stage2.batch import Batch, SampleEncoder, SampleError, collate
from himtok_apps.stage2.config import Stage2Config
from himtok_apps.stage2.data import held_out_samples, training_mixture
from himtok_apps.stage2.evaluate import evaluate_lmm, tokenizer_ceiling
from himtok_apps.stage2.lora import merged_language_model
from himtok_apps.stage2.model import configure_trainable, count_parameters, load_model
from himtok_apps.stage2.network import Stage2Network
from himtok_apps.training import distributed as D
from himtok_apps.training.checkpoint import latest_checkpoint, swap_directory
from himtok_apps.training.loop import TrainLoop, check_same_weights, run_training, step_seed

REDRAW_STRIDE = 1_000_003  # a skipped sample n is replaced by sample n + k * stride (k = 1, 2, ...)
MAX_REDRAWS = 32


class Stage2Trainer(TrainLoop):
    rate_name = "samples_per_s"

    def __init__(self, config: Stage2Config, out: Path, info: D.DistInfo) -> None:
        super().__init__(config, out, info)
        self.config: Stage2Config = config
        self.skips.echo = lambda line: tqdm.write(line, file=sys.stderr) if info.is_main else None
        model = load_model(config)
        self.himtok = model
        for note in configure_trainable(model, config):
            if info.is_main:
                tqdm.write(note, file=sys.stderr)
        self.encoder = SampleEncoder(model, config.max_length)
        self.data = training_mixture(config.data, seed=config.seed, skips=self.skips)
        self.val_samples: list[Any] | None = None
        network = Stage2Network(
            model.lmm,
            model.mask_tokenizer,
            model.vocab,
            loss=config.loss,
            mask_loss_weight=config.mask_loss_weight,
            hml_levels=config.hml_levels,
            length=model.settings.num_mask_tokens,
        ).to(info.device)
        trainable, total = count_parameters(network)
        self.parameter_counts = {"trainable": trainable, "total": total}
        self.initial_tokenizer = copy.deepcopy(model.mask_tokenizer).eval()  # the ceiling the run starts from
        self.setup_optimization(
            network, betas=(0.9, 0.999), lr_scales={"mask_tokenizer.": config.decoder_lr_scale}
        )

    # ------------------------------------------------------------------ data
    def encoded(self, n: int) -> Any:
        """Global sample `n`, encoded; unusable samples are counted and replaced deterministically."""
        for k in range(MAX_REDRAWS):
            sample = self.data.sample(n + k * REDRAW_STRIDE)
            try:
                return self.encoder.encode(sample)
            except SampleError as error:
                self.skips.add(sample.source, str(sample.key), f"unusable: {error}")
        raise RuntimeError(f"no usable sample after {MAX_REDRAWS} draws for sample {n}: check --data")

    def batch(self) -> Batch:
        config, info = self.config, self.info
        first = (self.step * info.world_size + info.rank) * config.batch_size
        samples = [self.encoded(first + i) for i in range(config.batch_size)]
        return collate(samples, int(self.himtok.tokenizer.pad_token_id)).to(info.device)

    def validation_samples(self) -> list[Any]:
        if self.val_samples is None:
            self.val_samples = held_out_samples(self.config.val_data, self.config.val_size, self.config.seed)
        return self.val_samples

    # ------------------------------------------------------------------ one step
    def compute_loss(self) -> tuple[torch.Tensor, dict[str, float], Any]:
        batch = self.batch()
        seed = step_seed(self.config.seed, self.step, self.info.rank, 3)
        autocast = self.info.device.type == "cuda"
        with torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=autocast):
            out = self.network(
                batch.input_ids, batch.labels, batch.attention_mask, batch.pixel_values, batch.masks, seed
            )
        parts = dict(out.parts)
        parts["tokens"] = float(batch.attention_mask.sum()) / batch.attention_mask.shape[0]
        return out.loss, parts, None

    # ------------------------------------------------------------------ evaluation and export
    def exported_model(self) -> HiMTokModel:
        lmm = merged_language_model(self.himtok.lmm) if self.config.lora else self.himtok.lmm
        return HiMTokModel.from_parts(
            lmm, self.himtok.tokenizer, self.himtok.mask_tokenizer, self.himtok.settings
        )

    def periodic_evaluation(self, record: dict[str, Any], bar: Any) -> None:
        samples = self.validation_samples()[: self.config.val_size_during]
        result = evaluate_lmm(self.himtok, samples, max_new_tokens=self.config.eval_max_new_tokens)
        self.network.train()
        record["val"] = result.summary
        summary = result.summary
        miou = summary["miou"]
        bar.write(
            f"step {self.step}: val mIoU {miou if miou is None else round(miou, 3)}, "
            f"well-formed {summary['well_formed']:.2f}, absent acc {summary['absent_accuracy']}"
        )

    def export_pretrained(self) -> Path:
        tmp = self.out / f".checkpoint.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.exported_model().save_pretrained(tmp)
        latest = latest_checkpoint(self.out / "checkpoints")
        if latest is not None:  # each training checkpoint also holds its loadable model
            shutil.copytree(tmp, latest / "model", dirs_exist_ok=True)
        final = self.out / "checkpoint"
        swap_directory(tmp, final)
        return final


def finish(trainer: Stage2Trainer) -> dict[str, Any] | None:
    from himtok_apps.stage2.report import write_report

    digest = check_same_weights(trainer)
    if not trainer.info.is_main:
        return None
    config = trainer.config
    samples = trainer.validation_samples()
    model = HiMTokModel.from_pretrained(trainer.out / "checkpoint")
    final = evaluate_lmm(
        model, samples, max_new_tokens=config.eval_max_new_tokens, keep_examples=12, progress=True
    )
    blind = evaluate_lmm(model, samples, max_new_tokens=config.eval_max_new_tokens, blind=True)
    summary: dict[str, Any] = {
        "stage": config.stage,
        "world_size": trainer.info.world_size,
        "steps": trainer.step,
        "elapsed_s": round(trainer.elapsed_s, 1),
        "stop_reason": trainer.stop_reason,
        "parameters": trainer.parameter_counts,
        "validation": final.summary,
        "blind_baseline": blind.summary,
        "tokenizer_ceiling": tokenizer_ceiling(trainer.initial_tokenizer, samples),
        "trained_decoder_ceiling": tokenizer_ceiling(model.mask_tokenizer, samples),
        "skipped": trainer.skips.summary(),
        "warnings": trainer.warnings,
        "weights_sha256": digest,
        "checkpoint": str(trainer.out / "checkpoint"),
    }
    write_report(trainer.out / "report", final, summary, trainer.out / "metrics.jsonl")
    (trainer.out / "report" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def train(config: Stage2Config) -> dict[str, Any] | None:
    prefix = f"stage{config.stage}"
    return run_training(config, Stage2Trainer, finish, prefix)

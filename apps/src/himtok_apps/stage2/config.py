"""Every setting of a stage-2 or stage-3 run as one plain dataclass (saved as ``run_config.json``).

Stage 2 teaches a multimodal model to write mask tokens and adapts the mask de-tokenizer to its soft answers
(CE + HML); stage 3 fine-tunes the multimodal model alone with more tiles (CE only). `stage_defaults` holds what
differs between the two, after the official scripts (``../shared/reference/official-himtok.md`` §5.1), scaled to
a CPU where the model is the tiny from-scratch one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from himtok_apps.training.loop import read_deepspeed_config
from himtok_apps.training.runconfig import (
    check_at_least_one,
    check_fresh_out,
    check_schedule,
    config_from_dict,
    config_to_json,
    load_config,
)

APPS_DIR = Path(__file__).resolve().parents[3]
SHIPPED_TOKENIZER = APPS_DIR / "data" / "shapes-coco-tokenizer"
DEMO_MODEL = APPS_DIR / "data" / "demo-model"
LOSSES = ("paper", "official")
PARTS = ("vision", "projector", "llm", "decoder")


@dataclass
class Stage2Config:
    stage: int = 2
    # model: a HiMTokModel directory, or --lmm (transformers InternVL) + --mask-tokenizer, or neither (tiny
    # from scratch with the shipped tokenizer)
    model: str | None = None
    lmm: str | None = None
    mask_tokenizer: str | None = None
    data: list[str] = field(default_factory=lambda: ["shapes:"])
    val_data: list[str] = field(default_factory=lambda: ["shapes:"])
    val_size: int = 64  # held-out samples of the final evaluation
    val_size_during: int = 24  # of the periodic evaluations
    max_steps: int = 100_000
    max_minutes: float | None = 15.0
    batch_size: int = 8
    max_length: int = 256  # tokens per sample; longer samples are skipped and counted
    max_tiles: int = 1
    out: str | None = None
    resume: str | None = None
    seed: int = 0
    device: str = "cpu"
    deepspeed: str | None = None
    # what trains
    train: list[str] = field(default_factory=lambda: list(PARTS))
    lora: int = 0  # LoRA rank on the language model (0: full fine-tuning)
    lora_alpha: int = 32
    grad_checkpointing: bool = False
    # The de-tokenizer learns from the soft answers of a model that is itself learning; at the LLM's rate it drifts
    # away from the codes (hard decoding of the shipped tokenizer fell from 0.77 to 0.33 mIoU in a 15-minute run).
    decoder_lr_scale: float = 0.1
    # optimisation
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    ema: float = 0.0
    # loss
    loss: str = "paper"
    mask_loss_weight: float = 1.0
    hml_levels: int = 3
    # evaluation and monitoring
    eval_max_new_tokens: int = 64
    log_every: int = 25
    eval_every: int = 250
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    halt_after: int | None = None
    threads: int | None = 1  # as stage 1: on a small shared CPU, extra intra-op threads thrash

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line message for the first bad setting."""
        if self.stage not in (2, 3):
            raise ValueError(f"stage must be 2 or 3, got {self.stage}")
        if self.model is not None and (self.lmm is not None or self.mask_tokenizer is not None):
            raise ValueError("give either --model or --lmm with --mask-tokenizer, not both")
        if (self.lmm is None) != (self.mask_tokenizer is None):
            raise ValueError("--lmm and --mask-tokenizer go together")
        for name in ("model", "lmm", "mask_tokenizer", "deepspeed"):
            value = getattr(self, name)
            if value is not None and not Path(value).exists():
                raise ValueError(f"--{name.replace('_', '-')} {value!r} does not exist")
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        unknown = sorted(set(self.train) - set(PARTS))
        if unknown:
            raise ValueError(f"--train takes parts from {', '.join(PARTS)}; unknown: {', '.join(unknown)}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"--device must be cpu or cuda, got {self.device!r}")
        positive = {
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "max_tiles": self.max_tiles,
            "log_every": self.log_every,
            "eval_every": self.eval_every,
            "ckpt_every": self.ckpt_every,
            "keep_checkpoints": self.keep_checkpoints,
            "val_size": self.val_size,
            "val_size_during": self.val_size_during,
            "eval_max_new_tokens": self.eval_max_new_tokens,
        }
        check_at_least_one({**positive, "halt_after": self.halt_after, "threads": self.threads})
        check_schedule(self)
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.mask_loss_weight < 0:
            raise ValueError(
                "--warmup-steps, --weight-decay, --grad-clip and --mask-loss-weight must be >= 0"
            )
        if not 0 <= self.hml_levels < 32:
            raise ValueError(f"--hml-levels must lie in 0..31, got {self.hml_levels}")
        if not self.decoder_lr_scale > 0:
            raise ValueError(f"--decoder-lr-scale must be positive, got {self.decoder_lr_scale}")
        if self.lora < 0:
            raise ValueError(f"--lora is a rank >= 0, got {self.lora}")
        if not self.data:
            raise ValueError("--data needs at least one source")
        if self.deepspeed is not None:
            micro = read_deepspeed_config(self.deepspeed).get(
                "train_micro_batch_size_per_gpu", self.batch_size
            )
            if micro != self.batch_size:
                raise ValueError(
                    f"--deepspeed sets train_micro_batch_size_per_gpu={micro} but --batch-size is {self.batch_size}"
                )
        check_fresh_out(self)

    @property
    def trains_decoder(self) -> bool:
        return "decoder" in self.train

    @property
    def uses_mask_loss(self) -> bool:
        return self.mask_loss_weight > 0

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stage2Config:
        return config_from_dict(cls, data)

    @classmethod
    def load(cls, path: Path) -> Stage2Config:
        return load_config(cls, path)


def stage_defaults(stage: int) -> dict[str, Any]:
    """What a stage changes from the dataclass defaults (the official stage split, CPU-sized)."""
    if stage == 2:
        return {}
    if stage == 3:
        return {
            "model": str(DEMO_MODEL),
            "max_tiles": 4,
            "train": ["vision", "projector", "llm"],
            "mask_loss_weight": 0.0,
            "hml_levels": 0,
            "lr": 2e-4,
            "max_minutes": 5.0,
            "max_length": 384,
        }
    raise ValueError(f"stage must be 2 or 3, got {stage}")


def known_fields() -> set[str]:
    return {f.name for f in fields(Stage2Config)}

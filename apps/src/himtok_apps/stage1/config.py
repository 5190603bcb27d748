"""Every setting of a stage-1 run as one plain dataclass (saved as ``run_config.json`` in the run folder)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from himtok_apps.training.loop import read_deepspeed_config
from himtok_apps.training.runconfig import check_at_least_one, check_fresh_out, check_schedule

APPS_DIR = Path(__file__).resolve().parents[3]
SAMPLE_DIR = APPS_DIR / "data" / "coco-masks"
DEFAULT_TRAIN_DATA = [f"coco:{SAMPLE_DIR / 'instances_train.json'}"]
DEFAULT_VAL_DATA = [f"coco:{SAMPLE_DIR / 'instances_val.json'}"]
PRESETS = ("cpu", "tiny", "small", "base", "large")
LAYOUTS = ("causal", "official")
HML_SCHEDULES = ("paper", "official", "resize")
EVAL_LENGTHS = (1, 2, 4, 8, 16, 32)

# Settings a resumed run may change; everything else must match the interrupted run.
RESUMABLE_OVERRIDES = frozenset(
    {"max_steps", "max_minutes", "device", "halt_after", "log_every", "eval_every", "ckpt_every", "resume"}
)

# Settings added after runs were written, with the value those runs used (resume must not change them).
LEGACY_DEFAULTS: dict[str, Any] = {"level_offset": 8.0}


@dataclass
class TrainConfig:
    preset: str = "cpu"
    layout: str = "causal"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: list[str] = field(default_factory=lambda: list(DEFAULT_TRAIN_DATA))
    val_data: list[str] = field(default_factory=lambda: list(DEFAULT_VAL_DATA))
    val_size: int | None = None  # None: every validation mask (the final evaluation always uses all)
    val_size_during: int = 96  # masks used by the periodic evaluations
    max_steps: int = 1_000_000  # the time budget ends CPU runs; set both for a run defined by its steps
    max_minutes: float | None = 15.0  # wall-clock budget of the training loop; the schedule follows it
    # The tiny CPU run is step-limited: small batches at a higher LR learn much faster per wall-second than
    # batch 16 at 1e-3 (measured on 2 cores; the figures are in apps/README.md).
    batch_size: int = 4
    train_size: int | None = None  # resolution of the training loss (None: the model's internal size)
    out: str | None = None
    resume: str | None = None
    init_from_official: str | None = None
    seed: int = 0
    device: str = "cpu"
    deepspeed: str | None = None
    # optimisation
    lr: float = 1e-3  # the `cpu` preset with its conv stem diverged at 1.5e-3 (apps/README.md)
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema: float = 0.0  # EMA decay of the weights (0: off); evaluation uses the EMA weights when on
    # quantizer training (applied to the model config unless --model sets them): restart codes whose running
    # count per batch (EMA with this decay) falls below the threshold; the tiny preset's own 1e-3 / 0.99 let
    # the codebook collapse to one code within 150 steps here.
    dead_code_threshold: float | None = 0.03
    usage_decay: float = 0.9
    # loss
    hml_schedule: str = "resize"
    # Sampled prefix levels per mask besides the full one (each is one more decoder pass). The coarse levels are an
    # easy curriculum: with 1 level, two 12-minute runs first collapsed to empty masks and ended at mIoU@32 0.37 and
    # 0.31, against 0.49 with 3 levels, although a 1-level step costs 26% less CPU.
    hml_levels: int = 3
    # Partial levels are drawn with p(l) proportional to 1 / (l + level_offset): a small offset favours the coarse
    # prefixes (1, 2, 4 tokens), a large one approaches uniform.
    level_offset: float = 2.0
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    vq_weight: float = 1.0
    # Steps at the start that decode the continuous latents instead of the codes (0: quantize from step 0).
    vq_warmup_steps: int = 0
    # monitoring and checkpoints
    log_every: int = 25
    eval_every: int = 500
    ckpt_every: int = 250
    keep_checkpoints: int = 2
    collapse_usage: float = 0.02  # warn when fewer than this fraction of codes are used in a log window
    halt_after: int | None = None  # stop after this many steps as if interrupted (resume testing)
    # torch intra-op threads per process. One by default: on a small shared CPU, oversubscribed threads thrash
    # (measured here: 1 thread ran a tiny step 4x faster than 2 while other jobs used the cores).
    threads: int | None = 1

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line message for the first bad setting."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r} (choose from {', '.join(PRESETS)})")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r} (choose from {', '.join(LAYOUTS)})")
        if self.hml_schedule not in HML_SCHEDULES:
            raise ValueError(
                f"unknown HML schedule {self.hml_schedule!r} (choose from {', '.join(HML_SCHEDULES)})"
            )
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"--device must be cpu or cuda, got {self.device!r}")
        positive = {
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "log_every": self.log_every,
            "eval_every": self.eval_every,
            "ckpt_every": self.ckpt_every,
            "keep_checkpoints": self.keep_checkpoints,
            "val_size_during": self.val_size_during,
        }
        check_at_least_one(
            {
                **positive,
                "val_size": self.val_size,
                "halt_after": self.halt_after,
                "threads": self.threads,
                "train_size": self.train_size,
            }
        )
        check_schedule(self)
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.vq_warmup_steps < 0:
            raise ValueError(
                "--warmup-steps, --vq-warmup-steps, --weight-decay and --grad-clip must be non-negative"
            )
        if not 0 <= self.hml_levels < 32:
            raise ValueError(f"--hml-levels must lie in 0..31, got {self.hml_levels}")
        if not self.level_offset > -1:
            raise ValueError(f"--level-offset must be above -1, got {self.level_offset}")
        if not self.data:
            raise ValueError("--data needs at least one source")
        if not self.val_data:
            raise ValueError("--val-data needs at least one source")
        for name in ("init_from_official", "deepspeed"):
            value = getattr(self, name)
            if value is not None and not Path(value).exists():
                raise ValueError(f"--{name.replace('_', '-')} {value!r} does not exist")
        if self.deepspeed is not None:
            micro = read_deepspeed_config(self.deepspeed).get(
                "train_micro_batch_size_per_gpu", self.batch_size
            )
            if micro != self.batch_size:
                raise ValueError(
                    f"--deepspeed sets train_micro_batch_size_per_gpu={micro} but --batch-size is {self.batch_size}"
                )
        check_fresh_out(self)
        if self.resume is not None and not (Path(self.resume) / "run_config.json").is_file():
            raise ValueError(f"--resume {self.resume!r} is not a stage-1 run folder (no run_config.json)")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = {**LEGACY_DEFAULTS, **data}  # run folders written before these settings existed
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {unknown}")
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise ValueError(f"cannot read the run configuration {path}: {error}") from None

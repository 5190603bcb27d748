"""Every setting of a refiner fine-tuning run as one plain dataclass (saved as ``run_config.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
PARTS = ("vision", "prompt", "decoder")
DEVICES = ("cpu", "cuda")


@dataclass
class RefinerTrainConfig:
    # model: a transformers SAM directory (`SamRefiner.from_pretrained`), or None for a tiny random SAM whose
    # input frame is `tiny_frame` pixels (16-pixel patches)
    init: str | None = None
    tiny_frame: int = 256
    mask_tokenizer: str = str(SHIPPED_TOKENIZER)
    data: str = "shapes:"
    val_data: str | None = None  # None: the held-out part of --data (other scenes; COCO image id % 10 == 0)
    val_size: int = 64  # held-out masks of the before/after evaluation
    val_size_during: int = 32  # of the periodic evaluations
    # coarse masks: the ground truth through the tokenizer at min..max tokens, then a random dilation or erosion
    min_tokens: int = 1
    max_tokens: int = 32
    morph_prob: float = 0.5
    max_radius: float = 0.04  # fraction of the image's long side
    max_steps: int = 1000
    max_minutes: float | None = 4.0
    batch_size: int = 8
    out: str | None = None
    resume: str | None = None
    seed: int = 0
    device: str = "cpu"
    deepspeed: str | None = None  # the shared loop reads it; this trainer has no DeepSpeed flag
    train: list[str] = field(default_factory=lambda: ["prompt", "decoder"])
    # optimisation
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema: float = 0.0
    # loss: BCE + Dice on the best of SAM's outputs, plus MSE of SAM's IoU estimates (every output)
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    # monitoring and checkpoints
    log_every: int = 10
    eval_every: int = 100
    ckpt_every: int = 100
    keep_checkpoints: int = 2
    halt_after: int | None = None
    threads: int | None = 1

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line message for the first bad setting."""
        for name in ("init", "mask_tokenizer"):
            value = getattr(self, name)
            if value is not None and not (Path(value) / "config.json").is_file():
                what = "transformers SAM" if name == "init" else "MaskTokenizer"
                raise ValueError(
                    f"--{name.replace('_', '-')} {value!r} is not a {what} directory (no config.json)"
                )
        unknown = sorted(set(self.train) - set(PARTS))
        if unknown or not self.train:
            raise ValueError(
                f"--train takes parts from {', '.join(PARTS)}; got {', '.join(self.train) or 'none'}"
            )
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"--device must be cpu or cuda, got {self.device!r}")
        positive = {
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "val_size": self.val_size,
            "val_size_during": self.val_size_during,
            "log_every": self.log_every,
            "eval_every": self.eval_every,
            "ckpt_every": self.ckpt_every,
            "keep_checkpoints": self.keep_checkpoints,
        }
        check_at_least_one({**positive, "halt_after": self.halt_after, "threads": self.threads})
        if self.tiny_frame < 64 or self.tiny_frame % 16:
            raise ValueError(f"--tiny-frame must be a multiple of 16, at least 64, got {self.tiny_frame}")
        if not 1 <= self.min_tokens <= self.max_tokens <= 32:
            raise ValueError(
                f"need 1 <= --min-tokens <= --max-tokens <= 32, got {self.min_tokens} and {self.max_tokens}"
            )
        if not 0 <= self.morph_prob <= 1:
            raise ValueError(f"--morph-prob is a probability in [0, 1], got {self.morph_prob}")
        if not 0 <= self.max_radius <= 0.25:
            raise ValueError(
                f"--max-radius is a fraction of the image side in [0, 0.25], got {self.max_radius}"
            )
        check_schedule(self)
        if min(self.warmup_steps, self.weight_decay, self.grad_clip) < 0:
            raise ValueError("--warmup-steps, --weight-decay and --grad-clip must be >= 0")
        if (
            min(self.bce_weight, self.dice_weight, self.iou_weight) < 0
            or not self.bce_weight + self.dice_weight > 0
        ):
            raise ValueError("loss weights must be >= 0, and --bce-weight + --dice-weight > 0")
        check_fresh_out(self)

    def to_json(self) -> str:
        return config_to_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefinerTrainConfig:
        return config_from_dict(cls, data)

    @classmethod
    def load(cls, path: Path) -> RefinerTrainConfig:
        return load_config(cls, path)

"""The settings of one inference run, their defaults, and device / dtype resolution."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from himtok_apps.infer.engine import DecodeOptions
from himtok_apps.infer.requests import Request

APPS_DIR = Path(__file__).resolve().parents[3]
DEFAULT_MODEL = APPS_DIR / "data" / "demo-model"
DEMO_REQUESTS = APPS_DIR / "data" / "demo-images" / "requests.jsonl"  # real photos, for real models
# The demo model is trained on procedural shapes: its default requests are held-out shapes scenes.
DEMO_MODEL_REQUESTS = APPS_DIR / "data" / "demo-shapes" / "requests.jsonl"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class InferConfig:
    """Everything `run` needs. `out=None` means `runs/infer-<timestamp>/`."""

    requests: list[Request]
    model: Path
    out: Path | None = None
    options: DecodeOptions = field(default_factory=DecodeOptions)
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    save_soft: bool = False
    overlays: bool = True
    refine: str | None = None
    sam: str | None = None
    retry_errors: bool = False
    progress: bool = True
    threads: int | None = None  # torch CPU threads; None: torch's default

    def settings(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """What the results depend on; a resumed run must match it (batch size and device may change)."""
        return {
            "model": str(Path(self.model).resolve()),
            "dtype": str(dtype).removeprefix("torch."),
            "num_tokens": self.options.num_tokens,
            "all_lengths": self.options.all_lengths,
            "mode": self.options.mode,
            "threshold": self.options.threshold,
            "max_new_tokens": self.options.max_new_tokens,
            "answer_prefix": self.options.answer_prefix,
            "save_soft": self.save_soft,
            "overlays": self.overlays,
            "refine": self.refine,
            "sam": str(Path(self.sam).resolve()) if self.sam else None,
        }


def is_model_dir(path: Path) -> bool:
    return (path / "himtok.json").is_file()


def parse_device(text: str) -> str:
    """`auto`, `cpu`, `cuda` or `cuda:N`; `ValueError` for anything else."""
    if text in ("auto", "cpu", "cuda"):
        return text
    prefix, _, index = text.partition(":")
    if prefix == "cuda" and index.isdigit():
        return text
    raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {text!r}")


def resolve_device(text: str, local_rank: int | None = None) -> torch.device:
    """The torch device; under torchrun a CUDA run uses the process's own GPU (`cuda:LOCAL_RANK`)."""
    name = parse_device(text)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {text} was asked for but CUDA is not available")
        if local_rank is not None:
            return torch.device("cuda", local_rank)
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here")
        return device
    return torch.device("cpu")


def resolve_dtype(text: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 on GPUs that support it (else fp16), fp32 on CPU; otherwise the named dtype."""
    if text == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if text not in DTYPES:
        raise ValueError(f"--dtype must be auto, {', '.join(DTYPES)}; got {text!r}")
    return DTYPES[text]

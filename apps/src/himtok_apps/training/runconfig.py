"""Run configurations as JSON dataclasses, and the rule for which settings a resumed run may change."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Settings a resumed run may change in every stage; everything else must match the interrupted run.
RESUMABLE_OVERRIDES = frozenset(
    {"max_steps", "max_minutes", "device", "halt_after", "log_every", "eval_every", "ckpt_every", "resume"}
)


def config_to_json(config: Any) -> str:
    return json.dumps(asdict(config), indent=2)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown training settings: {unknown}")
    return cls(**data)


def load_config(cls: type[T], path: Path) -> T:
    try:
        return config_from_dict(cls, json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"cannot read the run configuration {path}: {error}") from None


def merge_resume(
    cls: type[T], explicit: dict[str, Any], stage: str, resumable: frozenset[str] = RESUMABLE_OVERRIDES
) -> T:
    """The stored configuration of the run in ``explicit["resume"]`` updated with the flags given again.

    Flags outside ``resumable`` must repeat the stored value (else ``ValueError`` naming them).
    """
    run = Path(explicit["resume"])
    if not (run / "run_config.json").is_file():
        raise ValueError(f"--resume {str(run)!r} is not a {stage} run folder (no run_config.json)")
    stored = asdict(load_config(cls, run / "run_config.json"))  # type: ignore[call-overload]
    changed = sorted(
        k for k, v in explicit.items() if k not in resumable and stored.get(k) != v and k != "out"
    )
    if changed:
        raise ValueError(f"--resume cannot change {', '.join('--' + k.replace('_', '-') for k in changed)}")
    stored["halt_after"] = None  # a simulated kill belongs to the interrupted process, not to the run
    stored.update(explicit)
    stored["out"] = str(run)
    return config_from_dict(cls, stored)


def check_at_least_one(values: dict[str, int | None]) -> None:
    """``ValueError`` naming the first flag below 1 (``None``: not set, allowed)."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def check_schedule(config: Any) -> None:
    """The checks every trainer makes on ``max_minutes``, ``lr``, ``min_lr_ratio`` and ``ema``."""
    if config.max_minutes is not None and config.max_minutes <= 0:
        raise ValueError(f"--max-minutes must be positive, got {config.max_minutes}")
    if not config.lr > 0 or not 0 <= config.min_lr_ratio <= 1:
        raise ValueError(
            f"need --lr > 0 and 0 <= --min-lr-ratio <= 1, got {config.lr}, {config.min_lr_ratio}"
        )
    if not 0 <= config.ema < 1:
        raise ValueError(f"--ema is a decay in [0, 1), got {config.ema}")


def check_fresh_out(config: Any) -> None:
    """A new run may not write into a folder that already holds one."""
    if config.resume is None and config.out is not None and (Path(config.out) / "run_config.json").exists():
        raise ValueError(
            f"--out {config.out!r} already holds a run: --resume {config.out} continues it, or pick another --out"
        )

"""Where the time goes: the runner's timing hooks and per-stage totals.

Stages: `load` (reading images and masks, building questions), `preprocess` (tiling), `vision` (vision tower and
projector), `generate` (the language model's generation, the rest of `generate`), `decode` (spans -> masks at
image size, parsing), `refine` (the optional SAM refiner), `write` (PNGs and the results line). Preprocessing
and the vision tower run inside `HiMTokModel.generate`; `TimingHooks` measures them from the outside, by
wrapping the model's `preprocess_images` and hooking the vision modules, so the model code stays untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

STAGES = ("load", "preprocess", "vision", "generate", "decode", "refine", "write")


class Clock:
    """`perf_counter`, after waiting for queued CUDA work when the model runs on a GPU."""

    def __init__(self, device: torch.device) -> None:
        self.sync = device.type == "cuda"

    def __call__(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()


@dataclass
class StageTimes:
    """Seconds per stage, summed over whatever they describe (one request, one batch, one run)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, stage: str, seconds: float) -> None:
        if stage not in self.seconds:
            raise ValueError(f"unknown stage {stage!r}; stages: {STAGES}")
        self.seconds[stage] += seconds

    def merge(self, other: StageTimes, scale: float = 1.0) -> None:
        for stage, value in other.seconds.items():
            self.seconds[stage] += value * scale

    def scaled(self, scale: float) -> StageTimes:
        return StageTimes({k: v * scale for k, v in self.seconds.items()})

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def shares(self) -> dict[str, float]:
        total = self.total
        return {k: (v / total if total > 0 else 0.0) for k, v in self.seconds.items()}

    def as_dict(self, digits: int = 6) -> dict[str, float]:
        out = {k: round(v, digits) for k, v in self.seconds.items()}
        out["total"] = round(self.total, digits)
        return out

    @contextmanager
    def measure(self, stage: str, clock: Callable[[], float]) -> Iterator[None]:
        start = clock()
        try:
            yield
        finally:
            self.add(stage, clock() - start)


class TimingHooks:
    """Times `model.preprocess_images` and the vision tower + projector of a `HiMTokModel` while installed.

    Models without `lmm.model.vision_tower` / `multi_modal_projector` report no vision time (it stays inside
    `generate`).
    """

    def __init__(self, model: Any, clock: Callable[[], float]) -> None:
        self.model = model
        self.clock = clock
        self.preprocess = 0.0
        self.vision = 0.0
        self._vision_start: float | None = None
        self._handles: list[Any] = []

    def reset(self) -> None:
        self.preprocess = 0.0
        self.vision = 0.0

    def install(self) -> None:
        original = type(self.model).preprocess_images
        model = self.model

        def timed_preprocess(images: Any) -> Any:
            start = self.clock()
            try:
                return original(model, images)
            finally:
                self.preprocess += self.clock() - start

        model.preprocess_images = timed_preprocess  # instance attribute shadows the method
        inner = getattr(getattr(model, "lmm", None), "model", None)
        tower = getattr(inner, "vision_tower", None)
        projector = getattr(inner, "multi_modal_projector", None)
        if isinstance(tower, torch.nn.Module) and isinstance(projector, torch.nn.Module):
            self._handles.append(tower.register_forward_pre_hook(self._vision_begins))
            self._handles.append(projector.register_forward_hook(self._vision_ends))

    def remove(self) -> None:
        self.model.__dict__.pop("preprocess_images", None)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> TimingHooks:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _vision_begins(self, module: Any, args: Any) -> None:
        self._vision_start = self.clock()

    def _vision_ends(self, module: Any, args: Any, output: Any) -> None:
        if self._vision_start is not None:
            self.vision += self.clock() - self._vision_start
            self._vision_start = None

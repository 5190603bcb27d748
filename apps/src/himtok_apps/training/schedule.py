"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_ratio`` of the peak.

Progress through the decay is the larger of the step fraction and, when a time budget is set, the elapsed
fraction of the budget, so a time-limited run still ends its schedule (fully decayed) on time.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer


class WarmupCosine:
    def __init__(
        self,
        optimizer: Optimizer,
        peak_lr: float,
        max_steps: int,
        warmup_steps: int = 0,
        min_ratio: float = 0.0,
        budget_s: float | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.peak_lr = peak_lr
        self.max_steps = max_steps
        self.warmup_steps = warmup_steps
        self.min_ratio = min_ratio
        self.budget_s = budget_s
        self.last_lr = 0.0

    def progress(self, step: int, elapsed_s: float = 0.0) -> float:
        by_steps = step / self.max_steps
        by_time = elapsed_s / self.budget_s if self.budget_s else 0.0
        return min(1.0, max(by_steps, by_time))

    def factor(self, step: int, elapsed_s: float = 0.0) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        start = min(self.warmup_steps / self.max_steps, 0.999)
        q = min(1.0, max(0.0, (self.progress(step, elapsed_s) - start) / (1.0 - start)))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * q))

    def apply(self, step: int, elapsed_s: float = 0.0) -> float:
        """Set the optimizer's learning rate for ``step`` and return it."""
        self.last_lr = self.peak_lr * self.factor(step, elapsed_s)
        for group in self.optimizer.param_groups:
            group["lr"] = self.last_lr * group.get("lr_scale", 1.0)
        return self.last_lr

    def state_dict(self) -> dict[str, Any]:
        return {
            "peak_lr": self.peak_lr,
            "max_steps": self.max_steps,
            "warmup_steps": self.warmup_steps,
            "min_ratio": self.min_ratio,
            "budget_s": self.budget_s,
            "last_lr": self.last_lr,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_lr = float(state.get("last_lr", 0.0))

"""The "fine tokens carry no information" warning: persistent at periodic evaluations, immediate at the end."""

from __future__ import annotations

from types import SimpleNamespace

from himtok_apps.stage1.trainer import Trainer
from himtok_apps.tokenizer_eval import Evaluation


def evaluation(iou8: float, iou32: float) -> Evaluation:
    per_length = {8: {"miou": iou8, "boundary_iou": 0.0}, 32: {"miou": iou32, "boundary_iou": 0.0}}
    return Evaluation(per_length=per_length, ious={}, codes={}, examples={})


def fake_trainer() -> SimpleNamespace:
    warnings: list[str] = []
    return SimpleNamespace(iou_stalls=0, warnings=warnings, warn=warnings.append)


def test_one_periodic_stall_is_tolerated_two_in_a_row_warn() -> None:
    trainer = fake_trainer()
    Trainer.check_validation(trainer, evaluation(0.14, 0.13))  # type: ignore[arg-type]
    assert trainer.warnings == []
    Trainer.check_validation(trainer, evaluation(0.20, 0.25))  # type: ignore[arg-type]
    Trainer.check_validation(trainer, evaluation(0.30, 0.29))  # type: ignore[arg-type]
    assert trainer.warnings == [], "a recovered curve resets the count"
    Trainer.check_validation(trainer, evaluation(0.31, 0.31))  # type: ignore[arg-type]
    assert len(trainer.warnings) == 1 and "no longer beats" in trainer.warnings[0]


def test_final_evaluation_warns_at_once() -> None:
    trainer = fake_trainer()
    Trainer.check_validation(trainer, evaluation(0.5, 0.49), final=True)  # type: ignore[arg-type]
    assert len(trainer.warnings) == 1
    trainer = fake_trainer()
    Trainer.check_validation(trainer, evaluation(0.5, 0.6), final=True)  # type: ignore[arg-type]
    assert trainer.warnings == []

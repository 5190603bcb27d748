"""What the stage-1, stage-2 and stage-3 trainers share: the loop, checkpoints, schedules, distribution."""

from himtok_apps.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    swap_directory,
)
from himtok_apps.training.loop import (
    LoopConfig,
    TrainingStopped,
    TrainLoop,
    check_same_weights,
    deepspeed_settings,
    default_out_dir,
    read_deepspeed_config,
    run_training,
    step_seed,
    weights_digest,
)
from himtok_apps.training.schedule import WarmupCosine

__all__ = [
    "LoopConfig",
    "TrainLoop",
    "TrainingStopped",
    "WarmupCosine",
    "check_same_weights",
    "deepspeed_settings",
    "default_out_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "read_deepspeed_config",
    "run_training",
    "save_checkpoint",
    "step_seed",
    "swap_directory",
    "weights_digest",
]

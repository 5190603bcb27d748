"""The training loop every stage shares: optimisation, distribution, logging, checkpoints, resume.

A stage subclasses `TrainLoop`, builds its model and data, calls `setup_optimization(model)` and implements
`compute_loss` (one step's loss for `self.step`) and `export_pretrained` (the loadable weights of a checkpoint).
Optional hooks add per-window statistics, periodic evaluation and extra checkpoint state. `run_training` wraps
a loop in the run-folder, resume and process-group plumbing. Every random choice of a step comes from seeds
derived from `(seed, step, rank)`, so a resumed run replays exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from himtok_apps.data import SkipCounter
from himtok_apps.training import distributed as D
from himtok_apps.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from himtok_apps.training.schedule import WarmupCosine


class TrainingStopped(RuntimeError):
    """The run stopped on purpose (non-finite loss); the message says why and where the last checkpoint is."""


class LoopConfig(Protocol):
    """The settings `TrainLoop` reads (every stage's config dataclass has them)."""

    seed: int
    device: str
    batch_size: int
    max_steps: int
    max_minutes: float | None
    lr: float
    min_lr_ratio: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    ema: float
    log_every: int
    eval_every: int
    ckpt_every: int
    keep_checkpoints: int
    halt_after: int | None
    deepspeed: str | None
    threads: int | None
    out: str | None
    resume: str | None

    def to_json(self) -> str: ...


def step_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([abs(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def default_out_dir(prefix: str) -> Path:
    return Path("runs") / f"{prefix}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def non_persistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    persistent = set(model.state_dict())
    return {name: buf for name, buf in model.named_buffers() if name not in persistent}


def read_deepspeed_config(path: str | Path) -> dict[str, Any]:
    """The JSON object of a ``--deepspeed`` file, or ``ValueError`` with a one-line reason."""
    try:
        settings = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--deepspeed {str(path)!r} is not a readable JSON file: {error}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"--deepspeed {str(path)!r} must hold a JSON object")
    return settings


def deepspeed_settings(config: LoopConfig, info: D.DistInfo) -> dict[str, Any]:
    """The ``--deepspeed`` JSON with the run's batch size and gradient clipping filled in where it is silent.

    The loop feeds ``--batch-size`` samples per rank and step (the configs reject another micro-batch).
    """
    assert config.deepspeed is not None
    settings = read_deepspeed_config(config.deepspeed)
    micro = settings.setdefault("train_micro_batch_size_per_gpu", config.batch_size)
    accumulation = settings.setdefault("gradient_accumulation_steps", 1)
    settings.setdefault("train_batch_size", micro * accumulation * info.world_size)
    if config.grad_clip > 0:
        settings.setdefault("gradient_clipping", config.grad_clip)
    return settings


def parameter_groups(
    model: nn.Module, weight_decay: float, lr_scales: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Trainable parameters: matrices decay, vectors and embeddings do not. ``lr_scales`` maps a parameter-name
    prefix to a factor on the learning rate of the parameters under it (read by the schedule as ``lr_scale``)."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = next((f for prefix, f in (lr_scales or {}).items() if name.startswith(prefix)), 1.0)
        decays = param.ndim >= 2 and "embedding" not in name
        groups.setdefault((scale, decays), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
        for (scale, decays), params in sorted(groups.items(), key=lambda item: (-item[0][0], not item[0][1]))
    ]


class TrainLoop:
    """Holds the live objects of a run; ``fit`` runs the loop from ``self.step`` to the end."""

    rate_name = "samples_per_s"  # the throughput key of metrics.jsonl

    def __init__(self, config: LoopConfig, out: Path, info: D.DistInfo) -> None:
        self.config = config
        self.out = out
        self.info = info
        self.skips = SkipCounter()
        self.warnings: list[str] = []
        self.step = 0
        self.elapsed_s = 0.0
        self.stop_reason = "max steps"
        self.ema: dict[str, torch.Tensor] | None = None
        self.engine: Any = None

    # ------------------------------------------------------------------ setup
    def setup_optimization(
        self,
        model: nn.Module,
        betas: tuple[float, float] = (0.9, 0.99),
        lr_scales: dict[str, float] | None = None,
    ) -> None:
        """AdamW over the trainable parameters, the warm-up/cosine schedule, EMA, and DDP or DeepSpeed."""
        config = self.config
        self.model = model
        self.optimizer: Any = torch.optim.AdamW(
            parameter_groups(model, config.weight_decay, lr_scales), lr=config.lr, betas=betas
        )
        budget = config.max_minutes * 60 if config.max_minutes else None
        self.scheduler = WarmupCosine(
            self.optimizer, config.lr, config.max_steps, config.warmup_steps, config.min_lr_ratio, budget
        )
        if config.ema > 0:
            self.ema = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        self.network: nn.Module = model
        if config.deepspeed:
            self._init_deepspeed()
        elif self.info.enabled:
            device_ids = [self.info.local_rank] if self.info.device.type == "cuda" else None
            self.network = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    def _init_deepspeed(self) -> None:
        try:
            import deepspeed  # type: ignore[import-not-found]
        except ImportError:
            raise ValueError("--deepspeed needs DeepSpeed: pip install 'himtok-apps[deepspeed]'") from None
        settings = deepspeed_settings(self.config, self.info)
        if not torch.distributed.is_initialized():
            # Not launched by torchrun: a one-process group, so DeepSpeed does not go looking for MPI.
            D.single_process_env()
            deepspeed.init_distributed(dist_backend="nccl" if self.info.device.type == "cuda" else "gloo")
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=self.model, optimizer=self.optimizer, config=settings
        )
        self.scheduler.optimizer = self.optimizer
        self.network = self.engine

    # ------------------------------------------------------------------ hooks
    def compute_loss(self) -> tuple[torch.Tensor, dict[str, float], Any]:
        """The loss of step ``self.step`` (called after the step's seed is set), logged parts, and extras."""
        raise NotImplementedError

    def after_update(self, extra: Any) -> None:
        """Called after each optimizer step with what ``compute_loss`` returned as extras."""

    def window_statistics(self, record: dict[str, Any], window_steps: int) -> None:
        """Add statistics of the last logging window to ``record`` (a collective is allowed here)."""

    def periodic_evaluation(self, record: dict[str, Any], bar: Any) -> None:
        """Evaluate on rank 0 every ``eval_every`` steps; add the results to ``record``."""

    def export_pretrained(self) -> Path:
        """Write the loadable weights of the current state (e.g. ``save_pretrained``); rank 0 only."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` saved."""

    def trainable_module(self) -> nn.Module:
        """The module whose parameters are clipped and summed for the gradient norm."""
        return self.model

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "buffers": {k: v.detach().cpu() for k, v in non_persistent_buffers(self.model).items()},
            "optimizer": self.optimizer.state_dict() if self.engine is None else {},
            "scheduler": self.scheduler.state_dict(),
            "ema": {k: v.cpu() for k, v in self.ema.items()} if self.ema is not None else {},
            "rng": {"torch": torch.get_rng_state()},
            "data": {"samples_seen": self.step * self.config.batch_size * self.info.world_size},
            "skips": {name: sorted(items) for name, items in self.skips.seen.items()},
            "warnings": list(self.warnings),
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.engine is None:  # DeepSpeed restores weights and optimizer from its own checkpoint
            self.model.load_state_dict(state["model"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
        buffers = dict(self.model.named_buffers())
        for name, value in state["buffers"].items():
            buffers[name].copy_(value)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state["ema"]:
            self.ema = {k: v.to(self.info.device) for k, v in state["ema"].items()}
        torch.set_rng_state(state["rng"]["torch"])
        for name, items in state["skips"].items():
            for item in items:
                self.skips.add(name, item, "restored")
        self.warnings = list(state["warnings"])
        self.step = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])
        self.load_extra_state(state)

    def gathered(self) -> AbstractContextManager[Any]:
        """Under ZeRO-3, a context in which every rank holds the full weights (enter it on every rank)."""
        if self.engine is None or self.engine.zero_optimization_stage() < 3:
            return nullcontext()
        import deepspeed  # type: ignore[import-not-found]

        return deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=None)

    def save(self) -> Path | None:
        """Rank 0 writes the checkpoint and the exported weights; every rank waits for it."""
        path = None
        if self.engine is not None:
            self.engine.save_checkpoint(
                str(self.out / "checkpoints" / "deepspeed"), tag=f"step-{self.step:07d}"
            )
        with self.gathered():
            if self.info.is_main:
                path = save_checkpoint(
                    self.out / "checkpoints", self.step, self.state_dict(), self.config.keep_checkpoints
                )
                self.export_pretrained()
            D.barrier(self.info)
        return path

    def restore(self) -> bool:
        """Load the latest checkpoint of the run folder, if any; True when one was loaded."""
        checkpoint = latest_checkpoint(self.out / "checkpoints")
        if checkpoint is None:
            return False
        self.load_state_dict(load_checkpoint(checkpoint))
        if self.engine is not None:
            self.engine.load_checkpoint(str(self.out / "checkpoints" / "deepspeed"), tag=checkpoint.name)
        if self.info.is_main:
            truncate_metrics(self.out / "metrics.jsonl", self.step)
            tqdm.write(f"resumed from {checkpoint} (step {self.step})", file=sys.stderr)
        return True

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        config, info = self.config, self.info
        torch.manual_seed(step_seed(config.seed, self.step, info.rank, 1))  # restarts, dropout
        lr = self.scheduler.apply(self.step, self.elapsed_s)
        loss, parts, extra = self.compute_loss()
        if D.any_rank(not bool(torch.isfinite(loss.detach())), info):
            latest = latest_checkpoint(self.out / "checkpoints")
            where = f"the last good checkpoint is {latest}" if latest else "no checkpoint was written yet"
            raise TrainingStopped(
                f"stopped: the loss became {float(loss.detach())} at step {self.step} (lr {lr:.3g}); "
                f"{where}. Lower --lr or check the data, then --resume {self.out}."
            )
        trainable = [p for p in self.trainable_module().parameters() if p.requires_grad]
        if self.engine is not None:
            self.engine.backward(loss)
            # ZeRO stage 0 with a client optimizer reports no global norm; the gradients are still plain then.
            grads = [p.grad for p in trainable if p.grad is not None]
            local = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
            self.engine.step()
            reported = self.engine.get_global_grad_norm()
            grad_norm = float(reported) if reported is not None else local
        else:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = config.grad_clip if config.grad_clip > 0 else math.inf
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, clip))
            self.optimizer.step()
        if self.ema is not None:
            with torch.no_grad():
                state = self.model.state_dict()
                for name, value in self.ema.items():
                    value.lerp_(state[name], 1.0 - config.ema)
        self.after_update(extra)
        return {"loss": float(loss.detach()), **parts, "grad_norm": grad_norm, "lr": lr}

    # ------------------------------------------------------------------ monitoring
    def warn(self, message: str) -> None:
        self.warnings.append(f"step {self.step}: {message}")
        if self.info.is_main:
            tqdm.write(f"WARNING: {message}", file=sys.stderr)

    def log_line(self, record: dict[str, Any]) -> None:
        if self.info.is_main:
            with open(self.out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ loop
    def fit(self) -> None:
        config, info = self.config, self.info
        bar = tqdm(
            total=config.max_steps,
            initial=self.step,
            disable=not info.is_main,
            dynamic_ncols=True,
            unit="step",
        )
        window: list[dict[str, float]] = []
        window_start, window_steps, window_cpu = time.perf_counter(), 0, time.process_time()
        loop_start, elapsed_before = time.perf_counter(), self.elapsed_s
        while self.step < config.max_steps:
            if config.halt_after is not None and self.step >= config.halt_after:
                self.stop_reason = "halted (--halt-after)"
                break
            if self.scheduler.budget_s and self.elapsed_s >= self.scheduler.budget_s:
                self.stop_reason = "time budget (--max-minutes)"
                break
            stats = self.train_step()
            self.step += 1
            self.elapsed_s = elapsed_before + time.perf_counter() - loop_start
            window.append(stats)
            window_steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.2g}")
            if self.step % config.log_every == 0 or self.step == config.max_steps:
                duration = time.perf_counter() - window_start
                means = D.all_reduce_mean(
                    {k: float(np.mean([s[k] for s in window])) for k in window[0]}, info
                )
                rate = window_steps * config.batch_size * info.world_size / max(duration, 1e-9)
                record: dict[str, Any] = {
                    "step": self.step,
                    **{k: round(v, 6) for k, v in means.items()},
                    self.rate_name: round(rate, 2),
                    # CPU seconds of this process per step: unlike wall time, barely affected by other jobs.
                    "cpu_s_per_step": round((time.process_time() - window_cpu) / window_steps, 3),
                    "elapsed_s": round(self.elapsed_s, 1),
                }
                self.window_statistics(record, window_steps)
                bar.set_postfix(loss=f"{means['loss']:.3f}", per_s=f"{rate:.0f}")
                if self.step % config.eval_every == 0:
                    with self.gathered():
                        if info.is_main:
                            self.periodic_evaluation(record, bar)
                        D.barrier(info)
                self.log_line(record)
                window, window_start, window_steps = [], time.perf_counter(), 0
                window_cpu = time.process_time()
            if self.step % config.ckpt_every == 0:
                self.save()
        bar.close()


def prepare_run_folder(config: LoopConfig, info: D.DistInfo, prefix: str) -> Path:
    out = Path(config.resume or config.out or default_out_dir(prefix))
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run_config.json").write_text(config.to_json() + "\n")
    D.barrier(info)
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint a run resumes from (they will be logged again)."""
    if not path.is_file():
        return
    kept = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(line + "\n" for line in kept))


def run_training(
    config: LoopConfig,
    build: Callable[[Any, Path, D.DistInfo], TrainLoop],
    finish: Callable[[Any], dict[str, Any] | None],
    prefix: str,
) -> dict[str, Any] | None:
    """Set up threads and processes, the run folder, build the loop, resume it, fit, save and finish.

    Returns ``finish``'s summary on rank 0 (None elsewhere, and None for a run halted by ``--halt-after``).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    info = D.setup(config.device)
    try:
        if config.resume is not None:
            config.out = config.resume
        out = prepare_run_folder(config, info, prefix)
        loop = build(config, out, info)
        if not (config.resume is not None and loop.restore()) and info.is_main:
            (out / "metrics.jsonl").write_text("")
        D.barrier(info)
        loop.fit()
        if loop.stop_reason.startswith("halted"):
            return None  # as if killed: nothing more is written
        loop.save()
        return finish(loop)
    finally:
        D.teardown(info)


def check_same_weights(loop: TrainLoop) -> str:
    """The weights' sha256; under torch.distributed, raise `TrainingStopped` unless every rank agrees."""
    with loop.gathered():
        digest = weights_digest(loop.model)
    if loop.info.enabled:
        ranks = loop.out / "ranks"
        ranks.mkdir(exist_ok=True)
        (ranks / f"rank-{loop.info.rank}.json").write_text(
            json.dumps({"rank": loop.info.rank, "sha256": digest}) + "\n"
        )
        digests: list[Any] = [None] * loop.info.world_size
        torch.distributed.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise TrainingStopped(f"ranks ended with different weights: {digests}")
    return digest

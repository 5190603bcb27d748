"""End-to-end stage-1 runs on a very small model: outputs, resume equality, NaN stop, bad arguments, DDP, DeepSpeed."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from himtok_apps.stage1 import TrainConfig, TrainingStopped, main, train
from himtok_apps.stage1.cli import config_from_args
from himtok_apps.stage1.config import SAMPLE_DIR
from himtok_apps.stage1.trainer import Trainer
from himtok_apps.training.checkpoint import latest_checkpoint, load_checkpoint
from himtok_mask_tokenizer import MaskTokenizer

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)  # pycocotools on NumPy 2

REPO = Path(__file__).resolve().parents[2]
SMALL_MODEL = {
    "encoder_width": 32,
    "encoder_heads": 2,
    "encoder_depth": 1,
    "decoder_width": 32,
    "decoder_heads": 2,
    "decoder_depth": 1,
    "head_hidden": 32,
    "z_channels": 32,
    "codebook_size": 64,
}
TRAIN_DATA = f"coco:{SAMPLE_DIR / 'instances_train.json'}?limit=64"
VAL_DATA = f"coco:{SAMPLE_DIR / 'instances_val.json'}?limit=6"


def small_config(out: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "model_overrides": dict(SMALL_MODEL),
        "data": [TRAIN_DATA],
        "val_data": [VAL_DATA],
        "batch_size": 4,
        "max_steps": 6,
        "max_minutes": None,
        "warmup_steps": 2,
        "log_every": 2,
        "eval_every": 4,
        "ckpt_every": 2,
        "val_size_during": 4,
        "out": str(out),
    }
    settings.update(overrides)
    return TrainConfig(**settings)  # type: ignore[arg-type]


def small_args(out: Path, *extra: str) -> list[str]:
    args = [
        "--data",
        TRAIN_DATA,
        "--val-data",
        VAL_DATA,
        "--batch-size",
        "4",
        "--max-minutes",
        "0",
        "--warmup-steps",
        "2",
        "--log-every",
        "2",
        "--eval-every",
        "4",
        "--ckpt-every",
        "2",
        "--out",
        str(out),
    ]
    for key, value in SMALL_MODEL.items():
        args += ["--model", f"{key}={value}"]
    return args + list(extra)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))["model"]  # type: ignore[arg-type]


def test_run_writes_checkpoint_metrics_and_report(tmp_path: Path) -> None:
    summary = train(small_config(tmp_path / "run"))
    run = tmp_path / "run"
    assert summary is not None and summary["steps"] == 6
    model = MaskTokenizer.from_pretrained(run / "checkpoint")
    assert model.config.image_size == 256 and model.config.encoder_width == 32
    tokens = model.encode(torch.zeros(1, 256, 256))
    assert tokens.shape == (1, 32) and model.decode(tokens[:, :4]).shape == (1, 256, 256)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6]
    assert {
        "loss",
        "lr",
        "grad_norm",
        "usage",
        "perplexity",
        "entropy_bits",
        "masks_per_s",
        "cpu_s_per_step",
    } <= set(lines[0])
    assert len(lines[0]["entropy_bits"]) == 32
    assert set(lines[1]["val"]["per_length"]) == {"1", "2", "4", "8", "16", "32"}
    report = json.loads((run / "report" / "summary.json").read_text())
    per_length = report["validation"]["per_length"]
    assert set(per_length) == {"1", "2", "4", "8", "16", "32"}
    assert all(0 <= v["miou"] <= 1 and 0 <= v["boundary_iou"] <= 1 for v in per_length.values())
    assert report["validation"]["masks"] == 6
    references = report["validation"]["references"]
    assert set(references) == {"bounding box", "64px ceiling"}
    assert 0 < references["bounding box"] < references["64px ceiling"] <= 1
    assert {"usage", "perplexity"} <= set(report["training_codes"])
    assert report["training_codes"]["usage"] > 0, "the run ends on a log step: the last window is reported"
    for name in ("reconstructions.png", "iou_vs_tokens.png"):
        assert (run / "report" / name).stat().st_size > 1000


def test_resume_reaches_the_same_weights_bitwise(tmp_path: Path) -> None:
    straight = train(small_config(tmp_path / "straight", ema=0.5))
    assert train(small_config(tmp_path / "broken", ema=0.5, halt_after=5)) is None
    assert latest_checkpoint(tmp_path / "broken" / "checkpoints").name == "step-0000004"
    resumed = train(small_config(tmp_path / "broken", ema=0.5, resume=str(tmp_path / "broken")))
    assert straight is not None and resumed is not None
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "broken")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "broken" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [2, 4, 6], "lines logged after the checkpoint are not duplicated"


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Trainer.compute_loss

    def poisoned(self: Trainer):  # type: ignore[no-untyped-def]
        loss, parts, out = original(self)
        return (loss * float("nan") if self.step == 3 else loss), parts, out

    monkeypatch.setattr(Trainer, "compute_loss", poisoned)
    with pytest.raises(TrainingStopped, match=r"loss became nan at step 3.*step-0000002"):
        train(small_config(tmp_path / "run"))
    state = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))  # type: ignore[arg-type]
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    MaskTokenizer.from_pretrained(tmp_path / "run" / "checkpoint")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "huge"], "invalid choice: 'huge'"),
        (["--data", "coco:/no/such.json"], "does not exist"),
        (["--data", "coco"], "expected KIND:PATH"),
        (["--data", "svg:x"], "unknown kind 'svg'"),
        (["--max-steps", "0"], "--max-steps must be at least 1"),
        (["--model", "wings=2"], "unknown MaskTokenizerConfig fields"),
        (["--resume", "/no/such/run"], "not a stage-1 run folder"),
        (["--init-from-official", "/no/such.pth"], "does not exist"),
        (["--layout", "causal", "--init-from-official", __file__], "needs --layout official"),
        (["--train-size", "512"], "--train-size must lie between"),
        (["--lr", "fast"], "invalid float value"),
        (["--deepspeed", __file__], "is not a readable JSON file"),
    ],
)
def test_bad_arguments_fail_early_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    try:
        status = main([*args, "--out", str(out)])
    except SystemExit as exit_:
        status = exit_.code  # argparse's own checks
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists(), "nothing is written before the arguments are checked"


def test_resume_refuses_to_change_the_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(small_config(run).to_json())
    assert main(["--resume", str(run), "--lr", "0.5"]) == 2
    assert "--resume cannot change --lr" in capsys.readouterr().err


def test_out_refuses_a_folder_that_holds_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(small_config(run).to_json())
    assert main(["--out", str(run), "--max-steps", "1"]) == 2
    assert "already holds a run: --resume" in capsys.readouterr().err
    assert not (run / "metrics.jsonl").exists()


def test_resume_forgets_the_simulated_kill(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_config.json").write_text(small_config(run, halt_after=5).to_json())
    assert config_from_args(["--resume", str(run)]).halt_after is None
    assert config_from_args(["--resume", str(run), "--halt-after", "7"]).halt_after == 7


def run_cli(args: list[str], **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_help_runs_as_a_folder_script() -> None:
    process = run_cli(["apps/train_stage1", "--help"])
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    assert "--init-from-official" in output and "coco:ANNOTATIONS_JSON" in output


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_straight_run(tmp_path: Path) -> None:
    steps = "40"
    straight = run_cli(["apps/train_stage1", *small_args(tmp_path / "straight", "--max-steps", steps)])
    output, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, output
    victim = run_cli(["apps/train_stage1", *small_args(tmp_path / "killed", "--max-steps", steps)])
    deadline = time.time() + 300
    while latest_checkpoint(tmp_path / "killed" / "checkpoints") is None and time.time() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    resumed = run_cli(["apps/train_stage1", "--resume", str(tmp_path / "killed")])
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    process = run_cli(
        [
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29517",
            "apps/train_stage1",
            *small_args(run, "--max-steps", "4"),
        ]
    )
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    digests = [json.loads((run / "ranks" / f"rank-{r}.json").read_text())["sha256"] for r in range(2)]
    assert digests[0] == digests[1]
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["weights_sha256"] == digests[0]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4], "only rank 0 writes metrics"


# ---------------------------------------------------------------------------------------------------- DeepSpeed
needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed (dev group) is not installed"
)

ZERO_STAGE_0 = {"zero_optimization": {"stage": 0}}


def deepspeed_json(tmp_path: Path, **settings: object) -> str:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({**ZERO_STAGE_0, **settings}))
    return str(path)


def run_to_end(args: list[str], timeout: float = 600) -> str:
    process = run_cli(args)
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def logged(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@needs_deepspeed
@pytest.mark.slow
def test_deepspeed_one_process_without_torchrun_follows_the_plain_loop(tmp_path: Path) -> None:
    config = deepspeed_json(tmp_path)
    run_to_end(["apps/train_stage1", *small_args(tmp_path / "plain", "--max-steps", "6")])
    run_to_end(["apps/train_stage1", *small_args(tmp_path / "ds", "--max-steps", "6", "--deepspeed", config)])
    plain, ds = logged(tmp_path / "plain"), logged(tmp_path / "ds")
    assert [line["step"] for line in ds] == [line["step"] for line in plain] == [2, 4, 6]
    for a, b in zip(plain, ds, strict=True):
        # Same data, initial weights, AdamW and clipping: only DeepSpeed's clipping arithmetic differs.
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-3) and b["grad_norm"] > 0
        assert b["lr"] == pytest.approx(a["lr"])
    summary = json.loads((tmp_path / "ds" / "report" / "summary.json").read_text())
    assert summary["steps"] == 6 and (tmp_path / "ds" / "checkpoint" / "model.safetensors").is_file()
    assert any((tmp_path / "ds" / "checkpoints" / "deepspeed").iterdir()), "DeepSpeed's own checkpoint"


@needs_deepspeed
@pytest.mark.slow
def test_resumed_deepspeed_run_matches_the_straight_one(tmp_path: Path) -> None:
    config = deepspeed_json(tmp_path)
    run_to_end(
        ["apps/train_stage1", *small_args(tmp_path / "straight", "--max-steps", "6", "--deepspeed", config)]
    )
    broken = tmp_path / "broken"
    run_to_end(
        [
            "apps/train_stage1",
            *small_args(broken, "--max-steps", "6", "--deepspeed", config, "--halt-after", "5"),
        ]
    )
    run_to_end(["apps/train_stage1", "--resume", str(broken)])
    straight = json.loads((tmp_path / "straight" / "report" / "summary.json").read_text())
    resumed = json.loads((broken / "report" / "summary.json").read_text())
    assert resumed["weights_sha256"] == straight["weights_sha256"]


@needs_deepspeed
@pytest.mark.slow
def test_deepspeed_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    run = tmp_path / "ds2"
    config = deepspeed_json(tmp_path)
    launcher = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531"]
    run_to_end([*launcher, "apps/train_stage1", *small_args(run, "--max-steps", "4", "--deepspeed", config)])
    digests = [json.loads((run / "ranks" / f"rank-{r}.json").read_text())["sha256"] for r in range(2)]
    assert digests[0] == digests[1]
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["weights_sha256"] == digests[0]


@needs_deepspeed
@pytest.mark.slow
def test_deepspeed_micro_batch_other_than_batch_size_fails_before_any_work(tmp_path: Path) -> None:
    config = deepspeed_json(tmp_path, train_micro_batch_size_per_gpu=8)
    process = run_cli(
        ["apps/train_stage1", *small_args(tmp_path / "bad", "--max-steps", "6", "--deepspeed", config)]
    )
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2
    assert "train_micro_batch_size_per_gpu=8 but --batch-size is 4" in output
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()

"""`uv run apps/convert_official`: end to end as a user runs it, and one-line errors (exit 2) on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from himtok_apps.convert_official.cli import main
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden_release(shared_dir: Path) -> Path:
    path = shared_dir / "reference" / "golden" / "official-tiny-lmm" / "official-checkpoint"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"golden release not found at {path}")
    return path


@pytest.fixture
def release(golden_release: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "release"
    shutil.copytree(golden_release, dest)
    for path in dest.iterdir():
        path.chmod(0o644)
    return dest


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["--quiet", "--no-hash", *args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("convert_official: error:")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_cli_as_a_user_runs_it(golden_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "converted"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "apps" / "convert_official"),
            "--src",
            str(golden_release),
            "--out",
            str(out),
            "--mask-heads",
            "4",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "<|mt_start|> 609, <|mt_end|> 610, <|mt_0|> 611, vocabulary 1635" in done.stdout
    report = json.loads((out / "conversion_report.json").read_text())
    assert {f["name"] for f in report["source_files"]} >= {"model.safetensors", "tokenizer.model"}
    assert all(len(f["sha256"]) == 64 for f in report["source_files"])
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "himtok.json",
        "model.safetensors",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 4  # <|im_end|>
    assert (out / "mask_tokenizer" / "model.safetensors").is_file()


def test_existing_output_needs_overwrite(release: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, "--src", str(release), "--out", str(out), "--mask-heads", "4")
    assert_one_line_error(code, err, "exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"
    code, _, err = run_cli(
        capsys, "--src", str(release), "--out", str(out), "--mask-heads", "4", "--overwrite"
    )
    assert code == 0, err
    assert not (out / "keep.txt").exists() and (out / "himtok.json").is_file()
    assert leftovers(tmp_path) == []


def test_not_an_official_checkpoint(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "--src", str(empty), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "config.json", "not an official")
    code, _, err = run_cli(capsys, "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "does not exist")
    assert not (tmp_path / "out").exists()


def test_unknown_language_model(release: Path, tmp_path: Path, capsys) -> None:
    config = json.loads((release / "config.json").read_text())
    config["llm_config"]["architectures"] = ["MistralForCausalLM"]
    (release / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "--src", str(release), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "unknown language model", "MistralForCausalLM")


def test_missing_shard(release: Path, tmp_path: Path, capsys) -> None:
    state = load_file(release / "model.safetensors")
    keys = sorted(state)
    save_file({k: state[k] for k in keys[:100]}, release / "a.safetensors", metadata={"format": "pt"})
    (release / "model.safetensors").unlink()
    weight_map = {k: ("a.safetensors" if i < 100 else "b.safetensors") for i, k in enumerate(keys)}
    (release / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    code, _, err = run_cli(capsys, "--src", str(release), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "missing shard", "b.safetensors")


def test_non_contiguous_mask_ids(release: Path, tmp_path: Path, capsys) -> None:
    # Swap the ids of <|mt_end|> (610) and <|mt_5|> (616): <|mt_5|> no longer follows <|mt_4|>.
    config = json.loads((release / "tokenizer_config.json").read_text())
    decoder = config["added_tokens_decoder"]
    decoder["610"]["content"], decoder["616"]["content"] = (
        decoder["616"]["content"],
        decoder["610"]["content"],
    )
    (release / "tokenizer_config.json").write_text(json.dumps(config))
    added = json.loads((release / "added_tokens.json").read_text())
    added["<|mt_end|>"], added["<|mt_5|>"] = 616, 610
    (release / "added_tokens.json").write_text(json.dumps(added))
    code, _, err = run_cli(capsys, "--src", str(release), "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "mask")
    assert "contiguous" in err or "inside the mask-token id range" in err


def test_wrong_shape_missing_and_extra_tensors_are_named(release: Path, tmp_path: Path, capsys) -> None:
    state = load_file(release / "model.safetensors")
    state["mlp1.1.weight"] = state["mlp1.1.weight"].t().contiguous()
    del state["language_model.model.norm.weight"]
    state["vision_model.encoder.layers.0.attn.extra"] = torch.zeros(3)
    save_file(state, release / "model.safetensors", metadata={"format": "pt"})
    code, _, err = run_cli(capsys, "--src", str(release), "--out", str(tmp_path / "out"), "--mask-heads", "4")
    assert_one_line_error(
        code,
        err,
        "vision_model.encoder.layers.0.attn.extra",
        "model.language_model.norm.weight",
        "mlp1.1.weight",
    )
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_bad_mask_decoder_is_refused(release: Path, tmp_path: Path, capsys) -> None:
    state = load_file(release / "model.safetensors")
    del state["mask_decoder.quantize.embedding_proj.weight"]
    save_file(state, release / "model.safetensors", metadata={"format": "pt"})
    code, _, err = run_cli(capsys, "--src", str(release), "--out", str(tmp_path / "out"), "--mask-heads", "4")
    assert_one_line_error(code, err, "quantize.embedding_proj.weight")


def test_bad_flags_get_one_line(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(
        capsys, "--src", str(tmp_path), "--out", str(tmp_path / "o"), "--shard-size", "lots"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a size" in err
    code, _, err = run_cli(capsys, "--src", str(tmp_path), "--out", str(tmp_path / "o"), "--mask-heads", "0")
    assert_one_line_error(code, err, "--mask-heads")


def test_bare_himtok_pth_becomes_a_mask_tokenizer(shared_dir: Path, tmp_path: Path, capsys) -> None:
    golden = shared_dir / "reference" / "golden" / "official-tiny"
    if not (golden / "himtok.pth").is_file():
        pytest.skip("official-tiny golden set not found")
    out = tmp_path / "tok"
    code, _, err = run_cli(
        capsys, "--src", str(golden / "himtok.pth"), "--out", str(out), "--mask-heads", "4"
    )
    assert code == 0, err
    loaded = MaskTokenizer.from_pretrained(out)
    reference = MaskTokenizer.from_official(
        golden / "himtok.pth", MaskTokenizerConfig.from_official_json(golden / "config.json")
    )
    assert loaded.config == reference.config
    for (name, a), b in zip(loaded.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    not_a_checkpoint = tmp_path / "junk.pth"
    not_a_checkpoint.write_bytes(b"not a pickle")
    code, _, err = run_cli(capsys, "--src", str(not_a_checkpoint), "--out", str(tmp_path / "tok2"))
    assert_one_line_error(code, err, "junk.pth")

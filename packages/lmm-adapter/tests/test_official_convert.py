"""Converter behaviour beyond the golden model: other language models, tied heads, shards, dtypes, strictness.

Synthetic official releases are built from the golden tiny release (its tokenizer, vision tower and mask decoder)
with the language model swapped for a random transformers Qwen2 or Llama model written under the official names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from himtok_lmm_adapter import HiMTokModel
from himtok_lmm_adapter.official import (
    HeadLayout,
    OfficialFormatError,
    convert_official,
    split_grouped_qkv,
)
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

SIZES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1635,
    "max_position_embeddings": 2048,
}


@pytest.fixture(scope="module")
def golden_release(shared_dir: Path) -> Path:
    path = shared_dir / "reference" / "golden" / "official-tiny-lmm" / "official-checkpoint"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"golden release not found at {path}")
    return path


def copy_release(golden: Path, dest: Path) -> Path:
    shutil.copytree(golden, dest)
    for path in dest.iterdir():
        path.chmod(0o644)
    return dest


def swap_language_model(release: Path, architecture: str, lm: torch.nn.Module, config: dict) -> None:
    """Replace the InternLM2 of a release by `lm`, under the official `language_model.` names."""
    state = {
        k: v
        for k, v in load_file(release / "model.safetensors").items()
        if not k.startswith("language_model.")
    }
    state.update({f"language_model.{k}": v.clone().contiguous() for k, v in lm.state_dict().items()})
    if config.get("tie_word_embeddings"):
        state.pop("language_model.lm_head.weight")
    save_file(state, release / "model.safetensors", metadata={"format": "pt"})
    official = json.loads((release / "config.json").read_text())
    official["llm_config"] = {**config, "architectures": [architecture]}
    (release / "config.json").write_text(json.dumps(official))


@pytest.mark.parametrize(
    ("architecture", "config_class", "model_class", "tie"),
    [
        ("Qwen2ForCausalLM", Qwen2Config, Qwen2ForCausalLM, False),
        ("Qwen2ForCausalLM", Qwen2Config, Qwen2ForCausalLM, True),
        ("LlamaForCausalLM", LlamaConfig, LlamaForCausalLM, False),
    ],
)
def test_other_language_models_convert_to_identical_logits(
    golden_release: Path, tmp_path: Path, architecture: str, config_class, model_class, tie: bool
) -> None:
    config = config_class(**SIZES, tie_word_embeddings=tie, rope_theta=50000.0)
    torch.manual_seed(0)
    lm = model_class(config).eval()
    release = copy_release(golden_release, tmp_path / "release")
    swap_language_model(release, architecture, lm, config.to_dict())
    convert_official(release, tmp_path / "out", mask_heads=4, hashes=False)
    model = HiMTokModel.from_pretrained(tmp_path / "out")
    assert model.lmm.config.text_config.model_type == config.model_type
    assert model.lmm.config.text_config.tie_word_embeddings is tie
    ids = torch.randint(0, 600, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = lm(input_ids=ids).logits
        got = model.lmm(input_ids=ids).logits
    assert float((got - want).abs().max()) < 1e-5


def test_grouped_qkv_split_orders_rows_per_kv_head() -> None:
    heads = HeadLayout(num_heads=4, num_kv_heads=2, head_dim=3)
    # Row r of the packed tensor holds the value r; the layout per kv group is q, q, k, v (3 rows each).
    packed = torch.arange(24.0)[:, None].expand(24, 5)
    q, k, v = split_grouped_qkv(packed, heads)
    rows = [list(range(g * 12 + i * 3, g * 12 + i * 3 + 3)) for g in range(2) for i in range(4)]
    assert q[:, 0].tolist() == [float(r) for r in rows[0] + rows[1] + rows[4] + rows[5]]
    assert k[:, 0].tolist() == [float(r) for r in rows[2] + rows[6]]
    assert v[:, 0].tolist() == [float(r) for r in rows[3] + rows[7]]
    with pytest.raises(ValueError, match="wqkv has"):
        split_grouped_qkv(packed[:21], heads)


def test_sharded_output_and_dtype(golden_release: Path, tmp_path: Path) -> None:
    single = tmp_path / "single"
    convert_official(golden_release, single, mask_heads=4, hashes=False)
    sharded = tmp_path / "sharded"
    report = convert_official(
        golden_release, sharded, mask_heads=4, hashes=False, shard_bytes=200_000, dtype="bf16"
    )
    assert report["output_shards"] > 1 and report["dtype"] == "bfloat16"
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == report["output_shards"]
    assert all(
        (sharded / name).stat().st_size <= 200_000 + 70_000 for name in set(index["weight_map"].values())
    )
    a = HiMTokModel.from_pretrained(single)
    b = HiMTokModel.from_pretrained(sharded)
    assert b.dtype == torch.bfloat16 and b.mask_tokenizer.dtype == torch.bfloat16
    for (name, pa), pb in zip(a.lmm.state_dict().items(), b.lmm.state_dict().values(), strict=True):
        assert torch.equal(pa.to(torch.bfloat16), pb), name


def test_source_shards_are_read_through_the_index(golden_release: Path, tmp_path: Path) -> None:
    release = copy_release(golden_release, tmp_path / "release")
    state = load_file(release / "model.safetensors")
    keys = sorted(state)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in halves.items():
        save_file({k: state[k] for k in part}, release / name, metadata={"format": "pt"})
    (release / "model.safetensors").unlink()
    weight_map = {k: name for name, part in halves.items() for k in part}
    (release / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    report = convert_official(release, tmp_path / "out", mask_heads=4, hashes=True)
    assert report["tensors_read"] == len(keys)
    assert {f["name"] for f in report["source_files"]} >= set(halves)
    assert all(len(f["sha256"]) == 64 for f in report["source_files"])
    (release / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(OfficialFormatError, match="missing shard"):
        convert_official(release, tmp_path / "out2", mask_heads=4)
    assert not (tmp_path / "out2").exists()


def test_a_plain_internvl_converts_without_mask_parts(golden_release: Path, tmp_path: Path) -> None:
    release = copy_release(golden_release, tmp_path / "release")
    state = {
        k: v for k, v in load_file(release / "model.safetensors").items() if not k.startswith("mask_decoder.")
    }
    save_file(state, release / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((release / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {
        k: v for k, v in config["added_tokens_decoder"].items() if "<|mt_" not in v["content"]
    }
    config["additional_special_tokens"] = [t for t in config["additional_special_tokens"] if "<|mt_" not in t]
    (release / "tokenizer_config.json").write_text(json.dumps(config))
    added = json.loads((release / "added_tokens.json").read_text())
    (release / "added_tokens.json").write_text(
        json.dumps({k: v for k, v in added.items() if "<|mt_" not in k})
    )
    report = convert_official(release, tmp_path / "out", hashes=False)
    assert report["kind"] == "internvl"
    assert not (tmp_path / "out" / "mask_tokenizer").exists()
    with pytest.raises(ValueError, match="not a HiMTokModel directory"):
        HiMTokModel.from_pretrained(tmp_path / "out")

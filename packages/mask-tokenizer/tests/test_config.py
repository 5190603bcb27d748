"""MaskTokenizerConfig: presets, JSON round trip, validation, the official JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from himtok_mask_tokenizer import PRESETS, MaskTokenizer, MaskTokenizerConfig
from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def configs(draw: st.DrawFn) -> MaskTokenizerConfig:
    heads = draw(st.sampled_from([1, 2, 4]))
    patch = draw(st.sampled_from([8, 16]))
    grid = draw(st.sampled_from([2, 4, 8]))
    head = draw(st.sampled_from(["linear", "conv"]))
    overrides: dict[str, object] = {
        "internal_size": patch * grid,
        "patch_size": patch,
        "encoder_width": heads * draw(st.integers(1, 16)),
        "encoder_heads": heads,
        "decoder_width": heads * draw(st.integers(1, 16)),
        "decoder_heads": heads,
        "encoder_depth": draw(st.integers(1, 4)),
        "decoder_depth": draw(st.integers(1, 4)),
        "num_latent_tokens": draw(st.integers(1, 40)),
        "layout": draw(st.sampled_from(["official", "causal"])),
        "l2_norm": draw(st.booleans()),
        "vq_reparam": draw(st.sampled_from(["linear", "none", "frozen_base"])),
        "commitment": draw(st.floats(0, 1)),
        "dead_code_threshold": draw(st.none() | st.floats(1e-4, 1.0)),
        "pixel_head": head,
    }
    if head == "conv":
        # grid * 2**(len(mult) - 1) must equal internal_size = grid * patch
        doublings = patch.bit_length() - 1
        overrides["pixel_channel_mult"] = tuple(draw(st.integers(1, 3)) for _ in range(doublings + 1))
        overrides["pixel_hidden_channels"] = 32
    return MaskTokenizerConfig(**overrides)  # type: ignore[arg-type]


@settings(max_examples=40)
@given(configs())
def test_json_round_trip(config: MaskTokenizerConfig) -> None:
    restored = MaskTokenizerConfig.from_json(config.to_json())
    assert restored == config
    assert json.loads(restored.to_json()) == config.to_dict()


def test_json_file_round_trip(tmp_path: Path) -> None:
    config = MaskTokenizerConfig.preset("tiny", dead_code_threshold=0.5)
    config.to_json(tmp_path / "config.json")
    assert MaskTokenizerConfig.from_json(tmp_path / "config.json") == config


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_keep_256_outputs(name: str) -> None:
    config = MaskTokenizerConfig.preset(name)
    assert config.image_size == 256
    assert config.num_latent_tokens == 32
    assert config.codebook_size == 1024 and config.token_dim == 12
    assert config.internal_size is not None and config.internal_size <= 256


def test_preset_overrides_apply() -> None:
    config = MaskTokenizerConfig.preset("tiny", layout="official", dead_code_threshold=None)
    assert config.layout == "official" and config.dead_code_threshold is None
    assert MaskTokenizerConfig.preset("large").layout == "official"


def test_large_preset_is_the_official_size() -> None:
    config = MaskTokenizerConfig.preset("large")
    assert (config.encoder_width, config.encoder_depth, config.encoder_heads) == (1024, 24, 16)
    assert (config.head_hidden, config.z_channels, config.pixel_hidden_channels) == (2048, 1024, 128)
    assert (config.commitment, config.vq_reparam, config.dead_code_threshold) == (0.01, "linear", None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"encoder_width": 100, "encoder_heads": 16}, "divisible by encoder_heads"),
        ({"layout": "sideways"}, "layout"),
        ({"pixel_head": "mlp"}, "pixel_head"),
        ({"vq_reparam": "x"}, "vq_reparam"),
        ({"resize_mode": "crop"}, "resize_mode"),
        ({"internal_size": 512}, "must not exceed image_size"),
        ({"patch_size": 24}, "multiple of patch_size"),
        ({"pixel_channel_mult": (1, 2, 4)}, "upsamples"),
        ({"pixel_hidden_channels": 48}, "GroupNorm"),
        ({"num_latent_tokens": 0}, "num_latent_tokens"),
        ({"mlp_ratio": 0.0}, "mlp_ratio"),
    ],
)
def test_invalid_configs_raise(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaskTokenizerConfig(**overrides)  # type: ignore[arg-type]


def test_unknown_names_raise() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        MaskTokenizerConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown MaskTokenizerConfig fields"):
        MaskTokenizerConfig.preset("tiny", widht=3)
    with pytest.raises(ValueError, match="unknown MaskTokenizerConfig fields"):
        MaskTokenizerConfig.from_dict({"widht": 3})


def _official_json(**changes: object) -> dict[str, object]:
    block = {"width": 64, "depth": 2, "heads": 4, "mlp_ratio": 4.0, "patch_size": 16, "is_legacy": True}
    data: dict[str, object] = {
        "image_size": 256,
        "codebook_size": 1024,
        "token_size": 12,
        "use_l2_norm": True,
        "commitment_cost": 0.01,
        "quantize_mode": "vq",
        "num_latent_tokens": 32,
        "encoder": dict(block),
        "decoder": {**block, "ffn": [64, 128, 32]},
        "pixel_decoder": {
            "channel_mult": [1, 1, 2, 2, 4],
            "num_resolutions": 5,
            "hidden_channels": 32,
            "num_channels": 3,
            "num_res_blocks": 2,
            "resolution": 256,
            "z_channels": 32,
        },
    }
    data.update(changes)
    return data


def test_from_official_json_schema(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_official_json()))
    config = MaskTokenizerConfig.from_official_json(path)
    assert config.layout == "official" and config.in_channels == 3
    assert (config.decoder_width, config.head_hidden, config.z_channels) == (64, 128, 32)
    not_legacy = _official_json()
    not_legacy["encoder"] = {**not_legacy["encoder"], "is_legacy": False}  # type: ignore[dict-item]
    not_legacy["decoder"] = {**not_legacy["decoder"], "is_legacy": False}  # type: ignore[dict-item]
    path.write_text(json.dumps(not_legacy))
    assert MaskTokenizerConfig.from_official_json(path).layout == "causal"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({k: v for k, v in _official_json().items() if k != "encoder"}, "lacks the field 'encoder'"),
        (_official_json(quantize_mode="fsq"), "quantize_mode"),
        (
            _official_json(decoder={"width": 64, "depth": 2, "heads": 4, "patch_size": 8}),
            "patch sizes differ",
        ),
    ],
)
def test_from_official_json_rejects_bad_files(tmp_path: Path, data: dict[str, object], message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        MaskTokenizerConfig.from_official_json(path)
    with pytest.raises(ValueError, match="cannot read"):
        MaskTokenizerConfig.from_official_json(tmp_path / "absent.json")


def test_large_preset_has_the_official_keys_and_shapes(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``large`` preset's state dict equals official-himt-state-dict.txt: names, order, shapes, dtypes."""
    listing = shared_dir / "reference" / "official-himt-state-dict.txt"
    expected = []
    for line in listing.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            expected.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype))
    # Only names and shapes matter: skip the random init of the 644 M parameters (untouched pages stay free).
    for name in ("normal_", "uniform_", "kaiming_uniform_", "xavier_uniform_"):
        monkeypatch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    model = MaskTokenizer(MaskTokenizerConfig.preset("large"))
    ours = [(key, tuple(value.shape), str(value.dtype)) for key, value in model.state_dict().items()]
    assert ours == expected
    assert sum(p.numel() for p in model.parameters()) == 644_294_815


def test_infer_official_config_reads_every_size_off_the_shapes() -> None:
    from himtok_mask_tokenizer import default_heads, infer_official_config

    for config in (
        MaskTokenizerConfig.preset("large"),
        MaskTokenizerConfig.preset(
            "large",
            encoder_width=64,
            decoder_width=96,
            encoder_depth=2,
            decoder_depth=3,
            encoder_heads=4,
            decoder_heads=4,
            head_hidden=80,
            z_channels=32,
            pixel_hidden_channels=32,
            pixel_channel_mult=(1, 2, 2, 4, 4),
        ),
    ):
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in MaskTokenizer(config).state_dict().items()}
        heads = None if config.encoder_width == 1024 else config.encoder_heads
        assert infer_official_config(shapes, heads=heads) == config
    assert default_heads(1024) == 16 and default_heads(768) == 12 and default_heads(32) == 1
    with pytest.raises(ValueError, match=r"lacks quantize\.embedding\.weight"):
        infer_official_config({k: v for k, v in shapes.items() if not k.startswith("quantize.")})

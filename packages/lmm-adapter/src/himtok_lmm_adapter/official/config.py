"""Official `InternVLChatConfig` (the `config.json` of an InternVL / HiMTok release) -> transformers-native configs.

The official release describes its vision tower (InternViT) and its language model (InternLM2, Qwen2 or Llama)
in `vision_config` and `llm_config`. Each maps onto a transformers 5.x class: InternViT onto
`InternVLVisionConfig`, InternLM2 and Llama onto `LlamaConfig`, Qwen2 onto `Qwen2Config`. The settings that are
not part of the model (tiling, chat template) are returned as `OfficialSettings` for `HiMTokModel`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import InternVLConfig, InternVLVisionConfig, LlamaConfig, PreTrainedConfig, Qwen2Config


class OfficialFormatError(ValueError):
    """The source is not an official InternVL/HiMTok release, or a part of it is malformed."""


# Language models the converter understands, by `llm_config.architectures[0]`.
LLM_ARCHITECTURES = {
    "InternLM2ForCausalLM": "internlm2",
    "Qwen2ForCausalLM": "qwen2",
    "LlamaForCausalLM": "llama",
}


@dataclass(frozen=True)
class OfficialSettings:
    """What the official model config says about inputs rather than weights."""

    template: str
    image_size: int
    min_dynamic_patch: int
    max_dynamic_patch: int
    dynamic_image_size: bool
    use_thumbnail: bool
    downsample_ratio: float
    llm_architecture: str


def read_official_config(source: str | Path) -> dict[str, Any]:
    """The parsed `config.json` of an official release directory, checked to be an `internvl_chat` config."""
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise OfficialFormatError(f"no config.json at {path}: not an official InternVL/HiMTok release")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise OfficialFormatError(f"cannot read {path}: {err}") from err
    if not isinstance(data, dict) or "llm_config" not in data or "vision_config" not in data:
        raise OfficialFormatError(
            f"{path} has no llm_config / vision_config: not an official InternVLChatConfig"
        )
    return data


def llm_architecture(config: dict[str, Any]) -> str:
    """`internlm2`, `qwen2` or `llama`; an unknown language model raises `OfficialFormatError`."""
    llm = config["llm_config"]
    names = llm.get("architectures") or []
    arch = names[0] if names else None
    if arch not in LLM_ARCHITECTURES:
        known = ", ".join(LLM_ARCHITECTURES)
        raise OfficialFormatError(
            f"unknown language model {arch!r} (llm_config.architectures); known: {known}"
        )
    return LLM_ARCHITECTURES[arch]


def official_settings(config: dict[str, Any]) -> OfficialSettings:
    vision = config["vision_config"]
    image_size = int(config.get("force_image_size") or vision.get("image_size", 448))
    if config.get("ps_version", "v2") != "v2":
        raise OfficialFormatError(
            f"ps_version {config.get('ps_version')!r} is not supported: transformers' InternVL implements "
            "the v2 pixel shuffle only"
        )
    return OfficialSettings(
        template=str(config.get("template", "internvl2_5")),
        image_size=image_size,
        min_dynamic_patch=int(config.get("min_dynamic_patch", 1)),
        max_dynamic_patch=int(config.get("max_dynamic_patch", 6)),
        dynamic_image_size=bool(config.get("dynamic_image_size", True)),
        use_thumbnail=bool(config.get("use_thumbnail", True)),
        downsample_ratio=float(config.get("downsample_ratio", 0.5)),
        llm_architecture=llm_architecture(config),
    )


def _rope_parameters(llm: dict[str, Any]) -> dict[str, Any]:
    theta = float(llm.get("rope_theta", 10000.0))
    scaling = llm.get("rope_scaling") or llm.get("rope_parameters")
    if not scaling:
        return {"rope_type": "default", "rope_theta": theta}
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    params = {key: value for key, value in scaling.items() if key not in ("type", "rope_type")}
    params.update(rope_type=rope_type, rope_theta=float(params.get("rope_theta", theta)))
    return params


def text_config_from_official(llm: dict[str, Any], architecture: str) -> PreTrainedConfig:
    """The transformers config of the language model (InternLM2 and Llama -> Llama, Qwen2 -> Qwen2)."""
    try:
        common: dict[str, Any] = {
            "vocab_size": int(llm["vocab_size"]),
            "hidden_size": int(llm["hidden_size"]),
            "intermediate_size": int(llm["intermediate_size"]),
            "num_hidden_layers": int(llm["num_hidden_layers"]),
            "num_attention_heads": int(llm["num_attention_heads"]),
            "num_key_value_heads": int(llm.get("num_key_value_heads") or llm["num_attention_heads"]),
            "hidden_act": str(llm.get("hidden_act", "silu")),
            "max_position_embeddings": int(llm.get("max_position_embeddings", 32768)),
            "rms_norm_eps": float(llm.get("rms_norm_eps", 1e-6)),
            "rope_parameters": _rope_parameters(llm),
            "tie_word_embeddings": bool(llm.get("tie_word_embeddings", False)),
            "bos_token_id": llm.get("bos_token_id"),
            "eos_token_id": llm.get("eos_token_id"),
            "pad_token_id": llm.get("pad_token_id"),
        }
    except (KeyError, TypeError, ValueError) as err:
        raise OfficialFormatError(f"llm_config lacks or has a malformed field: {err}") from err
    if architecture == "internlm2":
        # InternLM2's `bias` covers wqkv and wo only; its MLP never has a bias.
        return LlamaConfig(**common, attention_bias=bool(llm.get("bias", False)), mlp_bias=False)
    if architecture == "llama":
        return LlamaConfig(
            **common,
            attention_bias=bool(llm.get("attention_bias", False)),
            mlp_bias=bool(llm.get("mlp_bias", False)),
            head_dim=llm.get("head_dim"),
        )
    if architecture == "qwen2":
        return Qwen2Config(
            **common,
            use_sliding_window=bool(llm.get("use_sliding_window", False)),
            sliding_window=llm.get("sliding_window"),
            max_window_layers=int(llm.get("max_window_layers", common["num_hidden_layers"])),
        )
    raise OfficialFormatError(f"unknown language model {architecture!r}")


def vision_config_from_official(vision: dict[str, Any], image_size: int) -> InternVLVisionConfig:
    """InternViT -> `InternVLVisionConfig`. InternViT has no final norm: mean pooling keeps it an identity."""
    norm_type = vision.get("norm_type", "rms_norm")
    if norm_type not in ("layer_norm", "rms_norm"):
        raise OfficialFormatError(f"vision_config.norm_type {norm_type!r} is neither layer_norm nor rms_norm")
    try:
        return InternVLVisionConfig(
            hidden_size=int(vision["hidden_size"]),
            num_hidden_layers=int(vision["num_hidden_layers"]),
            num_attention_heads=int(vision["num_attention_heads"]),
            intermediate_size=int(vision["intermediate_size"]),
            hidden_act=str(vision.get("hidden_act", "gelu")),
            attention_bias=bool(vision.get("qkv_bias", True)),
            use_qk_norm=bool(vision.get("qk_normalization", False)),
            norm_type=norm_type,
            layer_norm_eps=float(vision.get("layer_norm_eps", 1e-6)),
            image_size=int(image_size),
            patch_size=int(vision["patch_size"]),
            num_channels=int(vision.get("num_channels", 3)),
            use_mean_pooling=True,
            use_absolute_position_embeddings=True,
            # Only an init value: the converted weights overwrite the layer scales.
            layer_scale_init_value=float(vision.get("initializer_factor", 0.1)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise OfficialFormatError(f"vision_config lacks or has a malformed field: {err}") from err


def internvl_config_from_official(
    config: dict[str, Any], image_token_id: int, *, tie_word_embeddings: bool | None = None
) -> InternVLConfig:
    """The full `InternVLConfig`: vision tower, projector and language model of an official release."""
    settings = official_settings(config)
    text = text_config_from_official(config["llm_config"], settings.llm_architecture)
    if tie_word_embeddings is not None:
        text.tie_word_embeddings = tie_word_embeddings
    vision = vision_config_from_official(config["vision_config"], settings.image_size)
    select_layer = int(config.get("select_layer", -1))
    grid = settings.image_size // int(config["vision_config"]["patch_size"])
    image_seq_length = int(grid * settings.downsample_ratio) ** 2
    return InternVLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=int(image_token_id),
        image_seq_length=image_seq_length,
        downsample_ratio=settings.downsample_ratio,
        projector_hidden_act="gelu",
        vision_feature_layer=select_layer,
        vision_feature_select_strategy="default",
        tie_word_embeddings=text.tie_word_embeddings,
    )

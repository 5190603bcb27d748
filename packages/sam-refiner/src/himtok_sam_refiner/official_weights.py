"""The released `sam.pth` (raw state_dict of the official modified SAM) <-> `OfficialSamModel`.

The architecture is read from the tensor shapes, so any size the official builder makes (ViT-B/L/H, or the tiny
golden model) loads; only the decoder's head count (8 in every official build) cannot be read from shapes.
Loading is strict: any key left over on either side, or any shape mismatch, is an error that names the keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import torch
from torch import nn
from transformers import SamConfig, SamMaskDecoderConfig, SamPromptEncoderConfig, SamVisionConfig

from .official_model import OfficialSamModel

# SAM's pixel statistics (non-persistent buffers in the official model, so absent from sam.pth)
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
DECODER_HEADS = 8
HYPERNETWORK_DEPTH = 3  # SAM's per-mask-token MLPs (fixed in both implementations)

# (official, ours) key templates; {i} and {n} are integers, {rest} is the remainder of the key
_RULES: list[tuple[str, str]] = [
    ("image_encoder.patch_embed.proj.{rest}", "vision_encoder.patch_embed.projection.{rest}"),
    ("image_encoder.pos_embed", "vision_encoder.pos_embed"),
    ("image_encoder.blocks.{i}.norm{n}.{rest}", "vision_encoder.layers.{i}.layer_norm{n}.{rest}"),
    ("image_encoder.blocks.{i}.attn.{rest}", "vision_encoder.layers.{i}.attn.{rest}"),
    ("image_encoder.blocks.{i}.mlp.{rest}", "vision_encoder.layers.{i}.mlp.{rest}"),
    ("image_encoder.neck.0.{rest}", "vision_encoder.neck.conv1.{rest}"),
    ("image_encoder.neck.1.{rest}", "vision_encoder.neck.layer_norm1.{rest}"),
    ("image_encoder.neck.2.{rest}", "vision_encoder.neck.conv2.{rest}"),
    ("image_encoder.neck.3.{rest}", "vision_encoder.neck.layer_norm2.{rest}"),
    (
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        "shared_image_embedding.positional_embedding",
    ),
    ("prompt_encoder.point_embeddings.{i}.{rest}", "prompt_encoder.point_embed.{i}.{rest}"),
    ("prompt_encoder.mask_downscaling2.0.{rest}", "prompt_encoder.mask_embed.conv1.{rest}"),
    ("prompt_encoder.mask_downscaling2.1.{rest}", "prompt_encoder.mask_embed.layer_norm1.{rest}"),
    ("prompt_encoder.mask_downscaling2.3.{rest}", "prompt_encoder.mask_embed.conv2.{rest}"),
    ("prompt_encoder.mask_downscaling2.4.{rest}", "prompt_encoder.mask_embed.layer_norm2.{rest}"),
    ("prompt_encoder.mask_downscaling2.6.{rest}", "prompt_encoder.mask_embed.conv3.{rest}"),
    (
        "mask_decoder.transformer.layers.{i}.norm{n}.{rest}",
        "mask_decoder.transformer.layers.{i}.layer_norm{n}.{rest}",
    ),
    (
        "mask_decoder.transformer.norm_final_attn.{rest}",
        "mask_decoder.transformer.layer_norm_final_attn.{rest}",
    ),
    ("mask_decoder.transformer.layers.{i}.{rest}", "mask_decoder.transformer.layers.{i}.{rest}"),
    (
        "mask_decoder.transformer.final_attn_token_to_image.{rest}",
        "mask_decoder.transformer.final_attn_token_to_image.{rest}",
    ),
    ("mask_decoder.output_upscaling.0.{rest}", "mask_decoder.upscale_conv1.{rest}"),
    ("mask_decoder.output_upscaling.1.{rest}", "mask_decoder.upscale_layer_norm.{rest}"),
    ("mask_decoder.output_upscaling.3.{rest}", "mask_decoder.upscale_conv2.{rest}"),
    ("mask_decoder.iou_token.{rest}", "mask_decoder.iou_token.{rest}"),
    ("mask_decoder.mask_tokens.{rest}", "mask_decoder.mask_tokens.{rest}"),
    # SAM's MLP heads: official layers.0 .. layers.{depth-1}; transformers proj_in, layers.*, proj_out
    (
        "mask_decoder.output_hypernetworks_mlps.{i}.layers.{first}.{rest}",
        "mask_decoder.output_hypernetworks_mlps.{i}.proj_in.{rest}",
    ),
    (
        "mask_decoder.output_hypernetworks_mlps.{i}.layers.{last}.{rest}",
        "mask_decoder.output_hypernetworks_mlps.{i}.proj_out.{rest}",
    ),
    (
        "mask_decoder.output_hypernetworks_mlps.{i}.layers.{mid}.{rest}",
        "mask_decoder.output_hypernetworks_mlps.{i}.layers.{inner}.{rest}",
    ),
    (
        "mask_decoder.iou_prediction_head.layers.{first}.{rest}",
        "mask_decoder.iou_prediction_head.proj_in.{rest}",
    ),
    (
        "mask_decoder.iou_prediction_head.layers.{last}.{rest}",
        "mask_decoder.iou_prediction_head.proj_out.{rest}",
    ),
    (
        "mask_decoder.iou_prediction_head.layers.{mid}.{rest}",
        "mask_decoder.iou_prediction_head.layers.{inner}.{rest}",
    ),
]
# transformers ties the prompt encoder's positional table to this one; sam.pth stores it once
_TIED = (
    "prompt_encoder.shared_embedding.positional_embedding",
    "shared_image_embedding.positional_embedding",
)


def _regex(template: str, depth: int) -> re.Pattern[str]:
    """A template as a regex; {first}/{last} are the MLP's end layers, {mid}/{inner} its hidden ones."""
    fixed = {"first": "0", "last": str(depth - 1)}
    pattern = re.escape(template)
    for name, value in fixed.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), value)
    pattern = pattern.replace(re.escape("{rest}"), r"(?P<rest>.+)")
    for name in ("i", "n", "mid", "inner"):
        pattern = pattern.replace(re.escape("{" + name + "}"), rf"(?P<{name}>\d+)")
    return re.compile(pattern)


def _translate(key: str, iou_depth: int, to_ours: bool) -> str | None:
    depth = iou_depth if "iou_prediction_head" in key else HYPERNETWORK_DEPTH
    for official, ours in _RULES:
        source, target = (official, ours) if to_ours else (ours, official)
        match = _regex(source, depth).fullmatch(key)
        if match is None:
            continue
        values = dict(match.groupdict())
        if "mid" in values:
            if not 0 < int(values["mid"]) < depth - 1:
                continue
            values["inner"] = str(int(values["mid"]) - 1)
        elif "inner" in values:
            values["mid"] = str(int(values["inner"]) + 1)
        return target.format(first=0, last=depth - 1, **values)
    return None


def rename_official_key(key: str, iou_depth: int = 3) -> str | None:
    """Our name for an official key, or None when no rule covers it (an unexpected key)."""
    return _translate(key, iou_depth, to_ours=True)


def official_key(key: str, iou_depth: int = 3) -> str | None:
    """The official name of one of our keys (inverse of `rename_official_key`); None for the tied copy."""
    return None if key == _TIED[0] else _translate(key, iou_depth, to_ours=False)


def _mlp_depth(keys: list[str], name: str) -> int:
    pattern = re.compile(rf"mask_decoder\.{re.escape(name)}\.layers\.(\d+)\.weight")
    found = [int(m.group(1)) for k in keys if (m := pattern.fullmatch(k))]
    if not found:
        raise KeyError(f"mask_decoder.{name}.layers.*")
    return 1 + max(found)


def official_config(state_dict: Mapping[str, torch.Tensor]) -> SamConfig:
    """The `SamConfig` of an official state_dict, read from its shapes."""
    keys = list(state_dict)
    try:
        patch = state_dict["image_encoder.patch_embed.proj.weight"]
        grid = state_dict["image_encoder.pos_embed"].shape[1]
        rel_h = {
            int(m.group(1)): state_dict[k].shape
            for k in keys
            if (m := re.fullmatch(r"image_encoder\.blocks\.(\d+)\.attn\.rel_pos_h", k))
        }
        point_embeddings = [
            k for k in keys if re.fullmatch(r"prompt_encoder\.point_embeddings\.\d+\.weight", k)
        ]
        decoder_layers = {
            int(m.group(1))
            for k in keys
            if (m := re.fullmatch(r"mask_decoder\.transformer\.layers\.(\d+)\..*", k))
        }
        width, _, patch_size, _ = patch.shape
        head_dim = next(iter(rel_h.values()))[1]
        windows = {(shape[0] + 1) // 2 for shape in rel_h.values() if shape[0] != 2 * grid - 1}
        if len(windows) > 1:
            raise ValueError(f"windowed blocks with different window sizes {sorted(windows)}")
        vision = SamVisionConfig(
            hidden_size=width,
            output_channels=state_dict["image_encoder.neck.0.weight"].shape[0],
            num_hidden_layers=len(rel_h),
            num_attention_heads=width // head_dim,
            image_size=grid * patch_size,
            patch_size=patch_size,
            mlp_dim=state_dict["image_encoder.blocks.0.mlp.lin1.weight"].shape[0],
            window_size=next(iter(windows), 14),
            global_attn_indexes=sorted(i for i, shape in rel_h.items() if shape[0] == 2 * grid - 1),
            num_pos_feats=state_dict["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].shape[1],
        )
        hidden = state_dict["prompt_encoder.point_embeddings.0.weight"].shape[1]
        prompt = SamPromptEncoderConfig(
            hidden_size=hidden,
            image_size=grid * patch_size,
            patch_size=patch_size,
            mask_input_channels=state_dict["prompt_encoder.mask_downscaling2.3.weight"].shape[0],
            num_point_embeddings=len(point_embeddings),
            hidden_act="silu",
        )
        cross_dim = state_dict[
            "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"
        ].shape[0]
        decoder = SamMaskDecoderConfig(
            hidden_size=hidden,
            mlp_dim=state_dict["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
            num_hidden_layers=len(decoder_layers),
            num_attention_heads=DECODER_HEADS,
            attention_downsample_rate=hidden // cross_dim,
            num_multimask_outputs=state_dict["mask_decoder.mask_tokens.weight"].shape[0] - 1,
            iou_head_depth=_mlp_depth(keys, "iou_prediction_head"),
            iou_head_hidden_dim=state_dict["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
            layer_norm_eps=1e-5,
        )
    except (KeyError, StopIteration, ValueError) as error:
        raise ValueError(
            f"not an official HiMTok SAM state_dict (cannot read its shapes: {error!r})"
        ) from error
    config = SamConfig(
        vision_config=vision.to_dict(),
        prompt_encoder_config=prompt.to_dict(),
        mask_decoder_config=decoder.to_dict(),
    )
    config._attn_implementation = "eager"  # the official decoder attention is the plain softmax(qk^T)v
    return config


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], iou_depth: int
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(our state_dict, official keys no rule covers)."""
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        ours = rename_official_key(key, iou_depth)
        if ours is None:
            unknown.append(key)
        else:
            converted[ours] = value
    if _TIED[1] in converted:
        converted[_TIED[0]] = converted[_TIED[1]]
    return converted, unknown


def load_official_state_dict(model: OfficialSamModel, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Strict load: missing keys, unexpected keys and shape mismatches raise a ValueError naming them."""
    iou_depth = cast(SamMaskDecoderConfig, model.config.mask_decoder_config).iou_head_depth
    converted, unknown = convert_official_state_dict(state_dict, iou_depth)
    expected = model.state_dict()
    missing = [k for k in expected if k not in converted]
    unexpected = unknown + [k for k in converted if k not in expected]
    mismatched = [
        f"{k}: {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in converted.items()
        if k in expected and v.shape != expected[k].shape
    ]
    problems = []
    if missing:
        names = sorted({official_key(k, iou_depth) or k for k in missing})
        problems.append(f"missing keys: {', '.join(names)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(sorted(unexpected))}")
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched)}")
    if problems:
        raise ValueError("sam.pth does not match the official refiner: " + " | ".join(problems))
    model.load_state_dict(converted, strict=True)


def official_state_dict(model: OfficialSamModel) -> dict[str, torch.Tensor]:
    """The model's weights under the official names (the layout of the released `sam.pth`)."""
    iou_depth = cast(SamMaskDecoderConfig, model.config.mask_decoder_config).iou_head_depth
    out = {}
    for key, value in model.state_dict().items():
        name = official_key(key, iou_depth)
        if name is None and key != _TIED[0]:
            raise KeyError(f"no official name for {key}")
        if name is not None:
            out[name] = value.detach().clone()
    return out


def load_official_model(path: str | Path, device: str | torch.device = "cpu") -> OfficialSamModel:
    """Build and strictly load the official refiner from a released `sam.pth` (fp32, eval mode)."""
    state_dict = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{path}: expected a raw state_dict, got {type(state_dict).__name__}")
    model = OfficialSamModel(official_config(state_dict))
    load_official_state_dict(model, {k: v.float() for k, v in state_dict.items()})
    nn.Module.to(model, device)
    return model.eval()

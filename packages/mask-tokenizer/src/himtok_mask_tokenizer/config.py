"""``MaskTokenizerConfig``: every size and switch of the tokenizer as plain, JSON-serialisable data."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

LAYOUTS = ("official", "causal")
PIXEL_HEADS = ("conv", "linear", "light")
ENCODER_STEMS = ("patch", "conv")
RESIZE_MODES = ("stretch", "pad")
VQ_REPARAMS = ("linear", "none", "frozen_base")
GROUP_NORM_GROUPS = 32  # the official pixel decoder hard-codes GroupNorm(32, C)


@dataclass
class MaskTokenizerConfig:
    """Hyper-parameters of a HiMT mask tokenizer.

    The defaults are the sizes of the official HiMT-L (``config/himt.yaml``) with the causal layout;
    ``MaskTokenizerConfig.preset("large")`` is the official model exactly (official layout).

    Resolutions: masks come in and go out at ``image_size`` (256). The encoder sees, and the pixel head
    produces, ``internal_size`` x ``internal_size`` (area-downsampled input, bilinearly upsampled logits),
    which lets CPU-size presets run at 64x64 while keeping the 256x256 contract.
    """

    image_size: int = 256
    internal_size: int | None = None  # None: same as image_size
    in_channels: int = 3  # the official encoder sees the mask repeated on 3 channels
    patch_size: int = 16
    # Patch embedding of the encoder: "patch" = one linear map per patch (official), "conv" = a small stride-2
    # conv stem (log2(patch_size) steps) that sees across patch borders.
    encoder_stem: str = "patch"
    encoder_width: int = 1024
    encoder_depth: int = 24
    encoder_heads: int = 16
    decoder_width: int = 1024
    decoder_depth: int = 24
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    num_latent_tokens: int = 32
    codebook_size: int = 1024
    token_dim: int = 12
    l2_norm: bool = True
    layout: str = "causal"
    resize_mode: str = "stretch"
    # Decoder head: ffn = Conv1x1(decoder_width -> head_hidden), Tanh, Conv1x1(head_hidden -> z_channels).
    head_hidden: int | None = None  # None: 2 * decoder_width (official)
    z_channels: int = 1024
    # Pixel head: "conv" = official MaskGIT-VQGAN upsampler, "linear" = patch un-embedding, "light" = patch
    # un-embedding plus a small upsampling conv path (pixel_hidden_channels wide at the grid, halving per doubling).
    pixel_head: str = "conv"
    pixel_hidden_channels: int = 128
    pixel_channel_mult: tuple[int, ...] = field(default=(1, 1, 2, 2, 4))
    pixel_num_res_blocks: int = 2
    pixel_out_channels: int = 3
    # Quantizer (himtok_vq.VectorQuantizer); the official values are the defaults.
    vq_reparam: str = "linear"
    commitment: float = 0.01
    codebook_weight: float = 1.0
    dead_code_threshold: float | None = None
    usage_decay: float = 0.99

    def __post_init__(self) -> None:
        if self.internal_size is None:
            self.internal_size = self.image_size
        if self.head_hidden is None:
            self.head_hidden = 2 * self.decoder_width
        self.pixel_channel_mult = tuple(int(m) for m in self.pixel_channel_mult)
        self.validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def grid_size(self) -> int:
        """Patches per side at the internal resolution."""
        assert self.internal_size is not None
        return self.internal_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        assert self.internal_size is not None and self.head_hidden is not None
        positive = {
            "image_size": self.image_size,
            "internal_size": self.internal_size,
            "in_channels": self.in_channels,
            "patch_size": self.patch_size,
            "encoder_width": self.encoder_width,
            "encoder_depth": self.encoder_depth,
            "encoder_heads": self.encoder_heads,
            "decoder_width": self.decoder_width,
            "decoder_depth": self.decoder_depth,
            "decoder_heads": self.decoder_heads,
            "num_latent_tokens": self.num_latent_tokens,
            "codebook_size": self.codebook_size,
            "token_dim": self.token_dim,
            "head_hidden": self.head_hidden,
            "z_channels": self.z_channels,
            "pixel_out_channels": self.pixel_out_channels,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        for side in ("encoder", "decoder"):
            width, heads = getattr(self, f"{side}_width"), getattr(self, f"{side}_heads")
            if width % heads:
                raise ValueError(f"{side}_width ({width}) must be divisible by {side}_heads ({heads})")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.encoder_stem not in ENCODER_STEMS:
            raise ValueError(f"encoder_stem must be one of {ENCODER_STEMS}, got {self.encoder_stem!r}")
        if self.encoder_stem == "conv" and (self.patch_size < 2 or self.patch_size & (self.patch_size - 1)):
            raise ValueError(
                f"the conv encoder stem needs a power-of-two patch_size >= 2, got {self.patch_size}"
            )
        if self.pixel_head not in PIXEL_HEADS:
            raise ValueError(f"pixel_head must be one of {PIXEL_HEADS}, got {self.pixel_head!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.vq_reparam not in VQ_REPARAMS:
            raise ValueError(f"vq_reparam must be one of {VQ_REPARAMS}, got {self.vq_reparam!r}")
        if self.internal_size > self.image_size:
            raise ValueError(
                f"internal_size ({self.internal_size}) must not exceed image_size ({self.image_size})"
            )
        if self.internal_size % self.patch_size:
            raise ValueError(
                f"internal_size ({self.internal_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if self.pixel_head == "conv":
            self._validate_conv_head()
        if self.pixel_head == "light":
            upscale = self.internal_size // self.grid_size
            if upscale & (upscale - 1):
                raise ValueError(
                    f"the light pixel head needs internal_size / grid = {upscale} to be a power of two"
                )
            if self.pixel_hidden_channels < 1:
                raise ValueError(f"pixel_hidden_channels must be positive, got {self.pixel_hidden_channels}")

    def _validate_conv_head(self) -> None:
        mult = self.pixel_channel_mult
        if not mult or any(m < 1 for m in mult):
            raise ValueError(f"pixel_channel_mult must be non-empty positive integers, got {mult}")
        if self.pixel_num_res_blocks < 1:
            raise ValueError(f"pixel_num_res_blocks must be >= 1, got {self.pixel_num_res_blocks}")
        upscale = 2 ** (len(mult) - 1)
        if self.grid_size * upscale != self.internal_size:
            raise ValueError(
                f"the conv pixel head upsamples the {self.grid_size}x{self.grid_size} grid by {upscale} "
                f"(len(pixel_channel_mult) - 1 = {len(mult) - 1} doublings), which gives "
                f"{self.grid_size * upscale}, not internal_size {self.internal_size}"
            )
        for m in mult:
            channels = self.pixel_hidden_channels * m
            if channels % GROUP_NORM_GROUPS:
                raise ValueError(
                    f"pixel_hidden_channels * {m} = {channels} must be divisible by {GROUP_NORM_GROUPS} (GroupNorm)"
                )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pixel_channel_mult"] = list(self.pixel_channel_mult)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaskTokenizerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MaskTokenizerConfig fields: {unknown}")
        return cls(**data)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> MaskTokenizerConfig:
        """Read a config from a ``config.json`` path or from JSON text."""
        try:
            if isinstance(path_or_text, str) and path_or_text.lstrip().startswith("{"):
                data = json.loads(path_or_text)
            else:
                data = json.loads(Path(path_or_text).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read a config from {path_or_text!s:.80}: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self, **overrides: Any) -> MaskTokenizerConfig:
        return replace(self, **overrides)

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MaskTokenizerConfig:
        """``tiny`` (CPU training in minutes), ``small``, ``base``, ``large`` (= official HiMT-L)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        data = dict(PRESETS[name])
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown MaskTokenizerConfig fields: {unknown}")
        data.update(overrides)
        return cls(**data)

    @classmethod
    def from_official_json(cls, path: str | Path) -> MaskTokenizerConfig:
        """Read the golden sets' ``config.json`` schema (official hyper-parameters, nested encoder/decoder)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read an official config.json at {path}: {err}") from err
        try:
            enc, dec, pix = data["encoder"], data["decoder"], data["pixel_decoder"]
            if enc["patch_size"] != dec["patch_size"]:
                raise ValueError(
                    f"encoder and decoder patch sizes differ ({enc['patch_size']} vs {dec['patch_size']})"
                )
            if enc.get("is_legacy", True) != dec.get("is_legacy", True):
                raise ValueError("encoder and decoder disagree on is_legacy")
            if data.get("quantize_mode", "vq") != "vq":
                raise ValueError(f"only quantize_mode 'vq' is supported, got {data['quantize_mode']!r}")
            ffn = dec.get("ffn", [dec["width"], 2 * dec["width"], pix["z_channels"]])
            if ffn[0] != dec["width"] or ffn[2] != pix["z_channels"]:
                raise ValueError(f"decoder ffn {ffn} does not go from width to z_channels")
            if pix.get("num_resolutions", len(pix["channel_mult"])) != len(pix["channel_mult"]):
                raise ValueError("pixel_decoder num_resolutions does not match channel_mult")
            return cls(
                image_size=int(data.get("image_size", 256)),
                in_channels=3,
                patch_size=int(enc["patch_size"]),
                encoder_width=int(enc["width"]),
                encoder_depth=int(enc["depth"]),
                encoder_heads=int(enc["heads"]),
                decoder_width=int(dec["width"]),
                decoder_depth=int(dec["depth"]),
                decoder_heads=int(dec["heads"]),
                mlp_ratio=float(enc.get("mlp_ratio", 4.0)),
                num_latent_tokens=int(data["num_latent_tokens"]),
                codebook_size=int(data["codebook_size"]),
                token_dim=int(data["token_size"]),
                l2_norm=bool(data.get("use_l2_norm", True)),
                layout="official" if enc.get("is_legacy", True) else "causal",
                head_hidden=int(ffn[1]),
                z_channels=int(pix["z_channels"]),
                pixel_head="conv",
                pixel_hidden_channels=int(pix["hidden_channels"]),
                pixel_channel_mult=tuple(pix["channel_mult"]),
                pixel_num_res_blocks=int(pix["num_res_blocks"]),
                pixel_out_channels=int(pix["num_channels"]),
                commitment=float(data.get("commitment_cost", 0.01)),
            )
        except KeyError as err:
            raise ValueError(f"official config.json at {path} lacks the field {err}") from err


_OFFICIAL_PIXEL = {
    "pixel_head": "conv",
    "pixel_hidden_channels": 128,
    "pixel_channel_mult": (1, 1, 2, 2, 4),
    "pixel_num_res_blocks": 2,
    "pixel_out_channels": 3,
}

PRESETS: dict[str, dict[str, Any]] = {
    # CPU-size model: 128x128 internal resolution, 8x8 patches of 16 px, width 96, linear patch head,
    # 1 input channel, dead-code restart. About 21 GFLOP per training step (batch 32, full + 3 levels).
    "tiny": {
        "internal_size": 128,
        "in_channels": 1,
        "patch_size": 16,
        "encoder_width": 96,
        "encoder_depth": 2,
        "encoder_heads": 4,
        "decoder_width": 96,
        "decoder_depth": 2,
        "decoder_heads": 4,
        "mlp_ratio": 2.0,
        "layout": "causal",
        "head_hidden": 192,
        "z_channels": 96,
        "pixel_head": "linear",
        "pixel_out_channels": 1,
        "vq_reparam": "linear",
        "dead_code_threshold": 0.01,
    },
    # The default CPU tokenizer of the stage-1 trainer: the tiny transformer at 64x64 with 8-px patches, a
    # strided-conv stem and a light upsampling pixel head (measured against `tiny` in apps/README.md).
    "cpu": {
        "internal_size": 64,
        "in_channels": 1,
        "patch_size": 8,
        "encoder_width": 96,
        "encoder_depth": 2,
        "encoder_heads": 4,
        "decoder_width": 96,
        "decoder_depth": 2,
        "decoder_heads": 4,
        "mlp_ratio": 2.0,
        "layout": "causal",
        "head_hidden": 192,
        "z_channels": 96,
        "encoder_stem": "conv",
        "pixel_head": "light",
        "pixel_hidden_channels": 64,
        "pixel_out_channels": 1,
        "vq_reparam": "linear",
        "dead_code_threshold": 0.01,
    },
    "small": {
        "encoder_width": 512,
        "encoder_depth": 8,
        "encoder_heads": 8,
        "decoder_width": 512,
        "decoder_depth": 8,
        "decoder_heads": 8,
        "layout": "causal",
        "z_channels": 256,
        **_OFFICIAL_PIXEL,
        "pixel_hidden_channels": 64,
    },
    "base": {
        "encoder_width": 768,
        "encoder_depth": 12,
        "encoder_heads": 12,
        "decoder_width": 768,
        "decoder_depth": 12,
        "decoder_heads": 12,
        "layout": "causal",
        "z_channels": 512,
        **_OFFICIAL_PIXEL,
    },
    "large": {
        "encoder_width": 1024,
        "encoder_depth": 24,
        "encoder_heads": 16,
        "decoder_width": 1024,
        "decoder_depth": 24,
        "decoder_heads": 16,
        "layout": "official",
        "in_channels": 3,
        "head_hidden": 2048,
        "z_channels": 1024,
        **_OFFICIAL_PIXEL,
    },
}

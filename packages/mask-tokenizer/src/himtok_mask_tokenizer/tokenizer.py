"""``MaskTokenizer``: masks <-> up to 32 discrete, coarse-to-fine tokens (HiMT)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from himtok_vq import QuantizerAux, VectorQuantizer
from safetensors.torch import save_file
from torch import Tensor, nn

from himtok_mask_tokenizer.checkpoint import (
    CONFIG_NAME,
    SAFETENSORS_NAME,
    check_loadable,
    read_official_state_dict,
)
from himtok_mask_tokenizer.config import MaskTokenizerConfig
from himtok_mask_tokenizer.modeling.decoder import TokenDecoder
from himtok_mask_tokenizer.modeling.encoder import MaskEncoder
from himtok_mask_tokenizer.modeling.light_head import LightPixelHead
from himtok_mask_tokenizer.modeling.linear_head import LinearPixelHead
from himtok_mask_tokenizer.modeling.pixel_decoder import ConvPixelDecoder
from himtok_mask_tokenizer.modeling.transformer import normal_parameter
from himtok_mask_tokenizer.preprocess import (
    MaskTransform,
    check_size,
    check_token_probs,
    check_tokens,
    prepare_masks,
)

OUTPUT_SCALE = 5.0  # official output squash: sigmoid(5 * (mean_c(raw) - 0.5))


@dataclass
class TokenizerOutput:
    """What ``MaskTokenizer.forward`` returns for a training step.

    logits: [B, n+1, S, S]; column 0 decodes all tokens, column j > 0 the j-th requested prefix length.
    tokens: [B, T] codes of the batch. vq_aux: the quantizer's losses and usage statistics.
    targets: [B, S, S] the preprocessed masks (float in [0, 1]) that the logits should reproduce.
    lengths: [B, n+1] the number of tokens each logits column was decoded from.
    """

    logits: Tensor
    tokens: Tensor
    vq_aux: QuantizerAux
    targets: Tensor
    lengths: Tensor


class MaskTokenizer(nn.Module):
    """HiMT mask tokenizer and de-tokenizer. Parameter names follow the official state dict 1:1."""

    def __init__(self, config: MaskTokenizerConfig | None = None) -> None:
        super().__init__()
        config = config or MaskTokenizerConfig()
        config.validate()
        self.config = config
        c = config
        assert c.internal_size is not None and c.head_hidden is not None
        self.latent_tokens = normal_parameter(c.encoder_width**-0.5, c.num_latent_tokens, c.encoder_width)
        self.encoder = MaskEncoder(
            image_size=c.internal_size,
            in_channels=c.in_channels,
            patch_size=c.patch_size,
            width=c.encoder_width,
            depth=c.encoder_depth,
            heads=c.encoder_heads,
            mlp_ratio=c.mlp_ratio,
            num_latent_tokens=c.num_latent_tokens,
            token_dim=c.token_dim,
            layout=c.layout,
            stem=c.encoder_stem,
        )
        self.quantize = VectorQuantizer(
            c.codebook_size,
            c.token_dim,
            l2_norm=c.l2_norm,
            reparam=c.vq_reparam,  # type: ignore[arg-type]
            commitment=c.commitment,
            codebook_weight=c.codebook_weight,
            dead_code_threshold=c.dead_code_threshold,
            usage_decay=c.usage_decay,
        )
        self.decoder = TokenDecoder(
            grid_size=c.grid_size,
            width=c.decoder_width,
            depth=c.decoder_depth,
            heads=c.decoder_heads,
            mlp_ratio=c.mlp_ratio,
            num_latent_tokens=c.num_latent_tokens,
            token_dim=c.token_dim,
            head_hidden=c.head_hidden,
            z_channels=c.z_channels,
        )
        self.pixel_decoder: nn.Module
        if c.pixel_head == "conv":
            self.pixel_decoder = ConvPixelDecoder(
                z_channels=c.z_channels,
                hidden_channels=c.pixel_hidden_channels,
                channel_mult=c.pixel_channel_mult,
                num_res_blocks=c.pixel_num_res_blocks,
                out_channels=c.pixel_out_channels,
            )
        elif c.pixel_head == "light":
            self.pixel_decoder = LightPixelHead(
                z_channels=c.z_channels,
                upscale=c.internal_size // c.grid_size,
                hidden_channels=c.pixel_hidden_channels,
                out_channels=c.pixel_out_channels,
            )
        else:
            self.pixel_decoder = LinearPixelHead(
                z_channels=c.z_channels,
                patch_size=c.internal_size // c.grid_size,
                out_channels=c.pixel_out_channels,
            )

    # ------------------------------------------------------------------ small helpers
    @property
    def dtype(self) -> torch.dtype:
        return self.latent_tokens.dtype

    @property
    def device(self) -> torch.device:
        return self.latent_tokens.device

    def preprocess(self, masks: object) -> tuple[Tensor, MaskTransform]:
        """Validate masks and bring them to ``image_size``: ([B, S, S] float32 in [0, 1], transform)."""
        targets, transform = prepare_masks(masks, self.config.image_size, self.config.resize_mode)
        return targets.to(self.device), transform

    def _encoder_pixels(self, targets: Tensor) -> Tensor:
        x = targets.unsqueeze(1)
        internal = self.config.internal_size
        assert internal is not None
        if internal != self.config.image_size:
            x = F.interpolate(x, size=(internal, internal), mode="area")
        return x.expand(-1, self.config.in_channels, -1, -1).to(self.dtype)

    def encode_latents(self, targets: Tensor) -> Tensor:
        """Preprocessed masks [B, S, S] -> continuous latents before quantization [B, T, token_dim]."""
        return self.encoder(self._encoder_pixels(targets), self.latent_tokens)

    def _logits(self, embedded: Tensor, size: int | None = None) -> Tensor:
        """Embedded (zero-filled) tokens [N, T, width] -> logits [N, size, size] (default ``image_size``)."""
        raw = self.pixel_decoder(self.decoder(embedded))
        if self.config.pixel_head == "conv":
            logits = OUTPUT_SCALE * (raw.mean(dim=1) - 0.5)
        else:
            logits = raw.mean(dim=1)
        size = size or self.config.image_size
        if logits.shape[-1] < size:
            logits = F.interpolate(
                logits.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False
            )
            logits = logits.squeeze(1)
        elif logits.shape[-1] > size:
            logits = F.interpolate(logits.unsqueeze(1), size=(size, size), mode="area").squeeze(1)
        return logits

    def _restore_size(self, maps: Tensor, size: object) -> Tensor:
        if size is None:
            return maps
        transform = MaskTransform(check_size(size), self.config.image_size, self.config.resize_mode)
        return transform.invert(maps)

    # ------------------------------------------------------------------ tokenize
    @torch.no_grad()
    def encode(self, masks: object) -> Tensor:
        """Masks (bool/uint8/float, HxW, BxHxW or Bx1xHxW, any size) -> codes LongTensor [B, T]."""
        targets, _ = self.preprocess(masks)
        latents = self.encode_latents(targets)
        _, _, indices = self.quantize.nearest(latents)
        return indices.view(latents.shape[0], -1)

    # ------------------------------------------------------------------ de-tokenize
    def decode_logits(self, tokens: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Codes [B, L] (1 <= L <= T) -> logits [B, S, S] (or [B, H, W] with ``size``)."""
        tokens = check_tokens(tokens, self.config.num_latent_tokens, self.config.codebook_size)
        codes = self.quantize.indices_to_codes(tokens.to(self.device)).to(self.dtype)
        return self._restore_size(self._logits(self.decoder.embed(codes)), size)

    def decode(self, tokens: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Codes [B, L] -> mask probabilities [B, S, S] (or [B, H, W] with ``size``)."""
        return torch.sigmoid(self.decode_logits(tokens, size))

    def decode_soft_logits(self, probs: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Token distributions [B, L, K] -> logits, through ``probs @ C`` with the un-normalised codebook C.

        This is the differentiable path the LMM uses (expected code embedding, no straight-through).
        """
        probs = check_token_probs(probs, self.config.num_latent_tokens, self.config.codebook_size)
        codes = self.quantize.probs_to_codes(probs.to(self.device, self.dtype))
        return self._restore_size(self._logits(self.decoder.embed(codes)), size)

    def decode_soft(self, probs: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Token distributions [B, L, K] -> mask probabilities [B, S, S]."""
        return torch.sigmoid(self.decode_soft_logits(probs, size))

    # ------------------------------------------------------------------ training
    def forward(
        self,
        masks: object,
        prefix_lengths: Tensor | Sequence[int] | None = None,
        output_size: int | None = None,
        quantize: bool = True,
    ) -> TokenizerOutput:
        """Encode, quantize (straight-through) and decode all T tokens plus the given prefix lengths.

        ``quantize=False`` decodes the continuous latents instead (l2-normalised when the codebook is), for a
        warm-up before quantising; the codes, their statistics and the quantizer loss are computed all the same,
        so the codebook already follows the latents when quantization starts.

        ``prefix_lengths`` is [B, n] or [n] (broadcast to the batch) with values in 1..T. The B*(n+1)
        sequences run through the decoder in one batched pass; tokens beyond a sequence's length are zeroed
        after ``decoder_embed``. ``output_size`` (default ``image_size``) lets a CPU trainer compare logits
        and targets at a lower resolution (targets are area-downsampled to it).
        """
        targets, _ = self.preprocess(masks)
        batch, total = targets.shape[0], self.config.num_latent_tokens
        lengths = self._level_lengths(prefix_lengths, batch)
        if output_size is not None and not 1 <= output_size <= targets.shape[-1]:
            raise ValueError(f"output_size must be in 1..{targets.shape[-1]}, got {output_size}")
        latents = self.encode_latents(targets)
        quantized, indices, aux = self.quantize(latents)
        if not quantize:
            quantized = F.normalize(latents, dim=-1) if self.config.l2_norm else latents
        levels = lengths.shape[1]
        embedded = self.decoder.decoder_embed(quantized)
        embedded = embedded.unsqueeze(1).expand(-1, levels, -1, -1)
        keep = torch.arange(total, device=self.device) < lengths.unsqueeze(-1)
        embedded = (embedded * keep.unsqueeze(-1).to(embedded.dtype)).reshape(batch * levels, total, -1)
        if output_size is not None and output_size != targets.shape[-1]:
            targets = F.interpolate(targets.unsqueeze(1), size=(output_size, output_size), mode="area")
            targets = targets.squeeze(1)
        logits = self._logits(embedded, targets.shape[-1]).view(batch, levels, *targets.shape[1:])
        return TokenizerOutput(logits=logits, tokens=indices, vq_aux=aux, targets=targets, lengths=lengths)

    def _level_lengths(self, prefix_lengths: Tensor | Sequence[int] | None, batch: int) -> Tensor:
        total = self.config.num_latent_tokens
        if prefix_lengths is None:
            prefix = torch.zeros(batch, 0, dtype=torch.long)
        else:
            prefix = torch.as_tensor(prefix_lengths)
            if prefix.is_floating_point() or prefix.dtype == torch.bool:
                raise ValueError(f"prefix_lengths must be integers, got dtype {prefix.dtype}")
            if prefix.ndim == 1:
                prefix = prefix.unsqueeze(0).expand(batch, -1)
            if prefix.ndim != 2 or prefix.shape[0] != batch:
                raise ValueError(f"prefix_lengths must be [n] or [B={batch}, n], got {tuple(prefix.shape)}")
            if prefix.numel() and (int(prefix.min()) < 1 or int(prefix.max()) > total):
                raise ValueError(
                    f"prefix_lengths must lie in 1..{total}, got [{int(prefix.min())}, {int(prefix.max())}]"
                )
        full = torch.full((batch, 1), total, dtype=torch.long)
        return torch.cat([full, prefix.long().cpu()], dim=1).to(self.device)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.to_json(directory / CONFIG_NAME)
        state = {key: value.detach().cpu().contiguous() for key, value in self.state_dict().items()}
        save_file(state, str(directory / SAFETENSORS_NAME), metadata={"format": "pt"})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, dtype: torch.dtype | None = None) -> MaskTokenizer:
        """Load a directory written by ``save_pretrained`` (strict)."""
        directory = Path(directory)
        if not (directory / CONFIG_NAME).is_file() or not (directory / SAFETENSORS_NAME).is_file():
            raise ValueError(f"{directory} lacks {CONFIG_NAME} or {SAFETENSORS_NAME}")
        config = MaskTokenizerConfig.from_json(directory / CONFIG_NAME)
        state = read_official_state_dict(directory / SAFETENSORS_NAME)
        return cls._from_state_dict(config, state, str(directory), dtype)

    @classmethod
    def from_official(
        cls,
        source: str | Path | Mapping[str, Tensor],
        config: MaskTokenizerConfig | str | Path,
        dtype: torch.dtype | None = torch.float32,
    ) -> MaskTokenizer:
        """Load official weights: ``himtok.pth``, an LMM ``.safetensors`` (``mask_decoder.*``), a sharded
        index, a directory or a state dict. ``config`` is a config or a path to a golden-schema config.json.
        Loading is strict: missing, unexpected or mis-shaped keys raise ``ValueError`` listing them all.
        """
        if not isinstance(config, MaskTokenizerConfig):
            config = MaskTokenizerConfig.from_official_json(config)
        state = read_official_state_dict(source)
        name = source if not isinstance(source, Mapping) else "<state dict>"
        return cls._from_state_dict(config, state, str(name), dtype)

    @classmethod
    def _from_state_dict(
        cls, config: MaskTokenizerConfig, state: dict[str, Tensor], source: str, dtype: torch.dtype | None
    ) -> MaskTokenizer:
        model = cls(config)
        check_loadable(model.state_dict(), state, source)
        model.load_state_dict(state, strict=True)
        return model if dtype is None else model.to(dtype)

    def to_official_state_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """Detached CPU copies of every tensor under the official key names (``prefix="mask_decoder."`` for
        the LMM checkpoint layout)."""
        return {prefix + key: value.detach().cpu().clone() for key, value in self.state_dict().items()}

"""Nearest-neighbour vector quantizer with an l2-normalised, optionally reparameterised codebook.

The effective codebook is ``C = embedding_proj(embedding.weight)`` (SimVQ-style linear reparameterisation).
With ``l2_norm`` both the inputs and the codes are projected onto the unit sphere before the nearest-code
search, which makes the search a cosine-similarity search and keeps every code reachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from himtok_vq.restart import restart_dead_codes, update_usage
from himtok_vq.search import nearest_code_indices

Reparam = Literal["linear", "none", "frozen_base"]


@dataclass
class QuantizerAux:
    """Side outputs of a quantizer call. Losses are scalars; ``usage`` is the fraction of codes used."""

    loss: Tensor
    commitment_loss: Tensor
    codebook_loss: Tensor
    perplexity: Tensor
    usage: Tensor

    def __getitem__(self, key: str) -> Tensor:  # dict-style access, as in other VQ libraries
        return getattr(self, key)


def check_vectors(z: Tensor, dim: int, name: str = "z") -> None:
    """Raise ``ValueError`` naming the problem when ``z`` is not a non-empty finite float tensor [..., dim]."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z.ndim == 0 or z.shape[-1] != dim:
        raise ValueError(f"{name} must have shape [..., {dim}] (channel-last), got {tuple(z.shape)}")
    if z.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(z.shape)})")
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or inf values")


def check_indices(indices: Tensor, codebook_size: int, name: str = "indices") -> None:
    """Raise ``ValueError`` naming the problem when ``indices`` is not an int64/int32 tensor in [0, K)."""
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int64, torch.int32):
        kind = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
        raise ValueError(f"{name} must be an integer (int64 or int32) tensor, got {kind}")
    if indices.numel():
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= codebook_size:
            raise ValueError(f"{name} must lie in [0, {codebook_size}), got range [{low}, {high}]")


def check_probs(probs: Tensor, codebook_size: int, name: str = "probs") -> None:
    """Raise ``ValueError`` naming the problem when ``probs`` is not a float tensor ``[..., codebook_size]``."""
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        kind = probs.dtype if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ValueError(f"{name} must be a floating-point tensor [..., {codebook_size}], got {kind}")
    if probs.ndim == 0 or probs.shape[-1] != codebook_size:
        raise ValueError(f"{name} must have shape [..., {codebook_size}], got {tuple(probs.shape)}")


def code_histogram(indices: Tensor, codebook_size: int) -> Tensor:
    """Counts per code (float32) of a LongTensor of indices of any shape."""
    return torch.bincount(indices.reshape(-1), minlength=codebook_size).float()


def perplexity_from_counts(counts: Tensor) -> Tensor:
    """exp(entropy) of the empirical code distribution; 1 when one code is used, K when all are used evenly."""
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return entropy.exp()


class VectorQuantizer(nn.Module):
    """``quantized, indices, aux = vq(z)`` for ``z`` of shape ``[..., dim]``.

    Args:
        codebook_size: number of codes K.
        dim: code dimension d.
        l2_norm: l2-normalise inputs and codes (cosine search), as the official HiMTok quantizer does.
        reparam: ``"linear"``: table and a bias-free d x d projection, both trainable (official HiMTok);
            ``"frozen_base"``: frozen Gaussian table, trainable projection (SimVQ paper);
            ``"none"``: a plain trainable table.
        commitment: weight beta of the commitment loss ``||sg[q] - z||^2``.
        codebook_weight: weight of the codebook loss ``||q - sg[z]||^2``.
        dead_code_threshold: when set, codes whose running usage (EMA of their count per batch, summed over
            ranks under torch.distributed) falls below it are re-initialised from vectors of the current batch
            during training (see :func:`himtok_vq.restart_dead_codes`). Under torch.distributed the forward
            then runs collectives, so every rank must call it the same number of times.
        usage_decay: decay of the running usage counts used by the dead-code restart. The usage starts at 1,
            so with threshold t a code that is never picked is restarted after about
            ``log(t) / log(usage_decay)`` training steps.

    Distances and the argmin are computed in float32 whatever the autocast state; ``quantized`` comes back in
    the dtype of ``z``, and its values are exactly the (normalised) codes. Gradients reach ``z`` through the
    straight-through estimator and the codebook through the codebook loss. ``aux.perplexity`` and
    ``aux.usage`` describe this call's batch on this rank; use :class:`himtok_vq.CodebookStats` for running,
    all-reduced statistics.

    The state dict holds exactly ``embedding.weight`` [K, d] and (unless ``reparam="none"``)
    ``embedding_proj.weight`` [d, d], the official HiMTok names, so an official ``quantize.*`` slice loads
    with ``strict=True`` once the prefix is stripped.
    """

    usage_ema: Tensor

    def __init__(
        self,
        codebook_size: int = 1024,
        dim: int = 12,
        *,
        l2_norm: bool = True,
        reparam: Reparam = "linear",
        commitment: float = 0.01,
        codebook_weight: float = 1.0,
        dead_code_threshold: float | None = None,
        usage_decay: float = 0.99,
    ) -> None:
        super().__init__()
        if codebook_size < 1 or dim < 1:
            raise ValueError(f"codebook_size and dim must be positive, got {codebook_size} and {dim}")
        if reparam not in ("linear", "none", "frozen_base"):
            raise ValueError(f"reparam must be 'linear', 'none' or 'frozen_base', got {reparam!r}")
        if not 0.0 <= usage_decay < 1.0:
            raise ValueError(f"usage_decay must lie in [0, 1), got {usage_decay}")
        if dead_code_threshold is not None and dead_code_threshold <= 0:
            raise ValueError(f"dead_code_threshold must be positive (or None), got {dead_code_threshold}")
        self.codebook_size = codebook_size
        self.dim = dim
        self.l2_norm = l2_norm
        self.reparam = reparam
        self.commitment = commitment
        self.codebook_weight = codebook_weight
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay

        self.embedding = nn.Embedding(codebook_size, dim)
        if reparam == "frozen_base":
            nn.init.normal_(self.embedding.weight, std=dim**-0.5)
            self.embedding.weight.requires_grad_(False)
        else:
            nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.embedding_proj: nn.Linear | None = nn.Linear(dim, dim, bias=False) if reparam != "none" else None
        # Running usage for dead-code restart. Not persistent: the state dict stays exactly the official keys.
        self.register_buffer("usage_ema", torch.ones(codebook_size), persistent=False)
        # Rows per chunk of the nearest-code search; None sizes it to the cache (see himtok_vq.search).
        self.search_chunk_rows: int | None = None

    # ------------------------------------------------------------------ codebook views
    @property
    def codebook(self) -> Tensor:
        """The effective, un-normalised codebook C [K, d] (with gradients)."""
        weight = self.embedding.weight
        return self.embedding_proj(weight) if self.embedding_proj is not None else weight

    def normalized_codebook(self) -> Tensor:
        """The codebook the nearest-code search uses: C in float32, l2-normalised when ``l2_norm``.

        Computed from float32 copies of the weights with autocast off, whatever the module's dtype.
        """
        weight = self.embedding.weight
        with torch.autocast(device_type=weight.device.type, enabled=False):
            codebook = weight.float()
            if self.embedding_proj is not None:
                codebook = F.linear(codebook, self.embedding_proj.weight.float())
            return F.normalize(codebook, dim=-1) if self.l2_norm else codebook

    # ------------------------------------------------------------------ lookups
    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Hard codes for integer indices of any shape: ``[...] -> [..., d]``, normalised exactly as in forward."""
        check_indices(indices, self.codebook_size)
        return self.normalized_codebook()[indices]

    def probs_to_codes(self, probs: Tensor, normalize: bool = False) -> Tensor:
        """Soft codes ``probs @ C`` for probabilities ``[..., K]``.

        By default C is the un-normalised codebook, as the official HiMTok LMM path does; with
        ``normalize=True`` the l2-normalised codebook is used, which makes a one-hot row equal the hard code.
        """
        check_probs(probs, self.codebook_size)
        codebook = self.normalized_codebook() if normalize else self.codebook
        return probs @ codebook.to(probs.dtype)

    # ------------------------------------------------------------------ search
    def _prepare(self, z: Tensor) -> Tensor:
        """``z`` [..., d] -> float32 rows [N, d], l2-normalised when ``l2_norm`` (with gradients)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.reshape(-1, self.dim).float()
            return F.normalize(flat, dim=-1) if self.l2_norm else flat

    def nearest(self, z: Tensor, chunk_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Float32 nearest-code search. Returns (normalised z [N, d], codebook used [K, d], indices [N]).

        The first two carry gradients; the search itself runs without autograd, ``chunk_size`` rows at a time
        (default: ``search_chunk_rows``, else sized to the cache), so the N x K distance matrix is never held
        whole. Same search, hence the same indices, as ``forward``.
        """
        flat = self._prepare(z)
        codebook = self.normalized_codebook()
        rows = chunk_size if chunk_size is not None else self.search_chunk_rows
        indices = nearest_code_indices(flat.detach(), codebook.detach(), rows)
        return flat, codebook, indices

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, QuantizerAux]:
        check_vectors(z, self.dim)
        restart = self.training and self.dead_code_threshold is not None
        flat = self._prepare(z)
        if restart:
            # Before the search: revived codes can be picked at once, and the graph built below never sees
            # a codebook row change under it.
            restart_dead_codes(self, flat.detach())
        codebook = self.normalized_codebook()
        indices = nearest_code_indices(flat.detach(), codebook.detach(), self.search_chunk_rows)
        with torch.autocast(device_type=flat.device.type, enabled=False):
            codes = F.embedding(indices, codebook)
            commitment_loss = self.commitment * F.mse_loss(codes.detach(), flat)
            codebook_loss = F.mse_loss(codes, flat.detach())
            loss = commitment_loss + self.codebook_weight * codebook_loss
            # Straight-through estimator: the value is exactly the code (so indices_to_codes(indices) equals
            # it bit for bit), the gradient reaches z unchanged, and none reaches the codebook this way.
            quantized = codes.detach() + (flat - flat.detach()) if flat.requires_grad else codes.detach()

        counts = code_histogram(indices, self.codebook_size)
        if restart:
            update_usage(self, counts)

        aux = QuantizerAux(
            loss=loss,
            commitment_loss=commitment_loss,
            codebook_loss=codebook_loss,
            perplexity=perplexity_from_counts(counts),
            usage=(counts > 0).float().mean(),
        )
        quantized = quantized.view(z.shape).to(z.dtype)
        return quantized, indices.view(z.shape[:-1]), aux

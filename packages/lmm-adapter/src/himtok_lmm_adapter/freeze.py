"""Which parts of the mask tokenizer train in stage 2: the de-tokenizer yes, the encoder and quantizer no."""

from __future__ import annotations

from typing import Any

FROZEN_IN_STAGE2 = ("latent_tokens", "encoder", "quantize")
TRAINED_IN_STAGE2 = ("decoder", "pixel_decoder")


def freeze_for_stage2(tokenizer_model: Any) -> Any:
    """Freeze the encoder, latent tokens and quantizer (codebook); keep the decoder and pixel head trainable.

    As in the official stage 2: the codes the LMM learns must stay fixed, while the mask loss may still
    adapt the de-tokenizer. Returns the model for chaining.
    """
    for name, param in tokenizer_model.named_parameters():
        group = name.split(".", 1)[0]
        if group in FROZEN_IN_STAGE2:
            param.requires_grad_(False)
        elif group in TRAINED_IN_STAGE2:
            param.requires_grad_(True)
    return tokenizer_model

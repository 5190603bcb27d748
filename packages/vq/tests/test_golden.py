"""Official HiMTok golden vectors (../shared): the quantizer slice of himtok.pth loads strictly and reproduces
the official tokens from the official encoder latents, in float32 and under bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from himtok_vq import VectorQuantizer, from_official_layout

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def golden(golden_tiny: Path):
    np = pytest.importorskip("numpy", reason="numpy reads the golden .npz files")
    expected = dict(np.load(golden_tiny / "expected.npz"))
    state = torch.load(golden_tiny / "himtok.pth", map_location="cpu", weights_only=True)
    quantize = {k.removeprefix("quantize."): v for k, v in state.items() if k.startswith("quantize.")}
    return {name: torch.from_numpy(value) for name, value in expected.items()}, quantize


def load_official_quantizer(quantize_state) -> VectorQuantizer:
    vq = VectorQuantizer(codebook_size=1024, dim=12, l2_norm=True, commitment=0.01)
    result = vq.load_state_dict(quantize_state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return vq.eval()


def test_official_quantizer_slice_loads_strictly_and_gives_the_official_codebook(golden):
    expected, quantize_state = golden
    assert set(quantize_state) == {"embedding.weight", "embedding_proj.weight"}
    vq = load_official_quantizer(quantize_state)
    torch.testing.assert_close(vq.codebook.detach(), expected["codebook_unnormalized"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16, torch.float16])
def test_official_tokens_from_official_latents(golden, autocast_dtype):
    expected, quantize_state = golden
    vq = load_official_quantizer(quantize_state)
    latents = from_official_layout(expected["encoder_latents_pre_quant"])  # [12, 32, 12]
    with (
        torch.no_grad(),
        torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=bool(autocast_dtype)),
    ):
        quantized, tokens, _ = vq(latents)
    assert torch.equal(tokens, expected["tokens"])
    assert torch.equal(quantized, vq.indices_to_codes(tokens))
    # The soft path uses the un-normalised codebook, as the official decode_prob does.
    probs = expected["soft_token_probs"]
    torch.testing.assert_close(
        vq.probs_to_codes(probs), probs @ expected["codebook_unnormalized"], rtol=1e-5, atol=1e-5
    )

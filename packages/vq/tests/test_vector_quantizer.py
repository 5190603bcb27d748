"""Behaviour of VectorQuantizer: nearest-code property, straight-through gradients, dtypes, layouts, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from himtok_vq import VectorQuantizer, from_official_layout, nearest_code_indices, to_official_layout
from hypothesis import given, settings
from hypothesis import strategies as st

REPARAMS = ["linear", "none", "frozen_base"]


def make_vq(seed: int = 0, **kwargs) -> VectorQuantizer:
    vq = VectorQuantizer(**kwargs)
    # Seeded weights, with the codebook spread out so that codes are distinct (the official init is tiny).
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.randn(vq.embedding.weight.shape, generator=g))
        if vq.embedding_proj is not None:
            vq.embedding_proj.weight.copy_(torch.randn(vq.dim, vq.dim, generator=g) / vq.dim**0.5)
    return vq


@settings(max_examples=20)
@given(
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 6),
    length=st.integers(1, 40),
    reparam=st.sampled_from(REPARAMS),
    l2=st.booleans(),
)
def test_eval_indices_to_codes_equals_quantized(seed, batch, length, reparam, l2):
    vq = make_vq(seed, codebook_size=64, dim=12, reparam=reparam, l2_norm=l2).eval()
    z = torch.randn(batch, length, 12, generator=torch.Generator().manual_seed(seed))
    quantized, indices, _ = vq(z)
    assert indices.shape == (batch, length)
    assert indices.dtype == torch.int64
    assert torch.equal(vq.indices_to_codes(indices), quantized)
    # nearest() is the same search as forward, whatever the chunking.
    assert torch.equal(vq.nearest(z)[2].view(batch, length), indices)
    assert torch.equal(vq.nearest(z, chunk_size=7)[2].view(batch, length), indices)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), reparam=st.sampled_from(REPARAMS), l2=st.booleans())
def test_no_code_is_nearer_than_the_chosen_one(seed, reparam, l2):
    vq = make_vq(seed, codebook_size=128, dim=12, reparam=reparam, l2_norm=l2).eval()
    z = torch.randn(50, 12, generator=torch.Generator().manual_seed(seed + 1)) * 3
    _, indices, _ = vq(z)
    zz = F.normalize(z.float(), dim=-1) if l2 else z.float()
    codebook = vq.normalized_codebook().detach()
    distances = torch.cdist(zz.double(), codebook.double())
    chosen = distances.gather(1, indices[:, None]).squeeze(1)
    assert torch.all(chosen <= distances.min(dim=1).values + 1e-5)


def official_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The official HiMTok/TiTok expression, whole matrix at once, float32."""
    return (
        torch.sum(z**2, dim=1, keepdim=True)
        + torch.sum(codebook**2, dim=1)
        - 2 * torch.einsum("bd,dn->bn", z, codebook.T)
    )


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 300), k=st.integers(1, 300), chunk=st.integers(1, 400))
def test_chunked_search_matches_the_official_formula(seed, n, k, chunk):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n, 12, generator=g), dim=-1)
    codebook = F.normalize(torch.randn(k, 12, generator=g), dim=-1)
    distances = official_distances(z, codebook)
    expected = distances.argmin(dim=1)
    got = nearest_code_indices(z, codebook, chunk_rows=chunk)
    # Rows whose two best codes are closer than float32 noise may legitimately break the tie either way.
    if k > 1:
        top2 = distances.topk(2, dim=1, largest=False).values
        clear = (top2[:, 1] - top2[:, 0]) > 1e-5
    else:
        clear = torch.ones(n, dtype=torch.bool)
    assert torch.equal(got[clear], expected[clear])
    assert torch.equal(got, nearest_code_indices(z, codebook))  # the chunk size never changes the answer


@pytest.mark.parametrize("repeats", [1, 20])  # 4 codes (plain argmin) and 80 codes (two-level argmin)
def test_search_breaks_exact_ties_towards_the_first_code_like_the_official_argmin(repeats):
    codebook = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]).repeat(repeats, 1)
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]), dim=-1)
    expected = official_distances(z, codebook).argmin(dim=1)
    assert expected.tolist() == [0, 1, 0, 1]
    assert torch.equal(nearest_code_indices(z, codebook, chunk_rows=3), expected)
    broken = codebook.clone()
    broken[-3, 0] = float("nan")  # NaN distances win, as in torch.argmin
    expected = official_distances(z, broken).argmin(dim=1)
    assert torch.equal(nearest_code_indices(z, broken), expected)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), reparam=st.sampled_from(REPARAMS))
def test_quantized_rows_have_unit_norm_with_l2(seed, reparam):
    vq = make_vq(seed, codebook_size=32, dim=12, reparam=reparam, l2_norm=True)
    quantized, _, _ = vq(torch.randn(7, 12, generator=torch.Generator().manual_seed(seed)))
    torch.testing.assert_close(quantized.norm(dim=-1), torch.ones(7), rtol=0, atol=1e-5)


def test_gradients_reach_input_through_straight_through_and_codebook_through_loss():
    vq = make_vq(0, codebook_size=32, dim=12, l2_norm=False)
    z = torch.randn(4, 8, 12, requires_grad=True)
    quantized, _, aux = vq(z)
    # Straight-through: d(sum quantized)/dz is the identity.
    quantized.sum().backward(retain_graph=True)
    torch.testing.assert_close(z.grad, torch.ones_like(z))
    assert vq.embedding.weight.grad is None or vq.embedding.weight.grad.abs().sum() == 0
    aux.codebook_loss.backward()
    assert vq.embedding.weight.grad.abs().sum() > 0
    assert vq.embedding_proj.weight.grad.abs().sum() > 0


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16))
def test_with_l2_the_straight_through_gradient_is_that_of_the_normalised_input(seed):
    vq = make_vq(seed, codebook_size=32, dim=12, l2_norm=True)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(5, 12, generator=g, requires_grad=True)
    weights = torch.randn(5, 12, generator=g)
    quantized, _, aux = vq(z)
    (quantized * weights).sum().backward(retain_graph=True)
    reference = z.detach().clone().requires_grad_(True)
    (F.normalize(reference, dim=-1) * weights).sum().backward()
    torch.testing.assert_close(z.grad, reference.grad)
    # The commitment loss pulls z towards its code and leaves the codebook alone.
    vq.zero_grad()
    z.grad = None
    aux.commitment_loss.backward()
    assert z.grad.abs().sum() > 0
    assert vq.embedding.weight.grad is None or vq.embedding.weight.grad.abs().sum() == 0


def test_frozen_base_trains_only_the_projection():
    vq = make_vq(0, codebook_size=32, dim=12, reparam="frozen_base")
    _, _, aux = vq(torch.randn(16, 12))
    aux.loss.backward()
    assert not vq.embedding.weight.requires_grad and vq.embedding.weight.grad is None
    assert vq.embedding_proj.weight.grad.abs().sum() > 0


def test_losses_are_the_documented_mse_terms():
    vq = make_vq(3, codebook_size=16, dim=12, l2_norm=True, commitment=0.25, codebook_weight=2.0)
    z = torch.randn(10, 12)
    _, indices, aux = vq(z)
    zn = F.normalize(z, dim=-1)
    codes = vq.indices_to_codes(indices)
    mse = F.mse_loss(codes, zn)
    torch.testing.assert_close(aux.commitment_loss, 0.25 * mse)
    torch.testing.assert_close(aux.codebook_loss, mse)
    torch.testing.assert_close(aux.loss, 0.25 * mse + 2.0 * mse)


def test_usage_and_perplexity_describe_the_batch():
    vq = make_vq(0, codebook_size=8, dim=12, reparam="none", l2_norm=False).eval()
    codebook = vq.codebook.detach()
    z = torch.cat([codebook[:2]] * 5)  # exactly codes 0 and 1, equally often
    _, indices, aux = vq(z)
    assert set(indices.tolist()) == {0, 1}
    assert aux.usage.item() == pytest.approx(2 / 8)
    assert aux.perplexity.item() == pytest.approx(2.0, rel=1e-5)
    assert aux["usage"] is aux.usage


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_gives_fp32_indices_and_input_dtype(dtype):
    vq = make_vq(0, codebook_size=64, dim=12, reparam="none").eval()
    # Well-separated inputs: small perturbations of distinct codes.
    g = torch.Generator().manual_seed(1)
    targets = torch.randperm(64, generator=g)[:32]
    z = vq.normalized_codebook().detach()[targets] + 1e-3 * torch.randn(32, 12, generator=g)
    _, ref_indices, _ = vq(z)
    with torch.autocast(device_type="cpu", dtype=dtype):
        quantized, indices, _ = vq(z.to(dtype))
    assert torch.equal(indices, ref_indices)
    assert torch.equal(indices, targets)
    assert quantized.dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@settings(max_examples=20)
@given(seed=st.integers(0, 2**16))
def test_autocast_never_changes_the_search_on_float32_input(dtype, seed):
    # Random (not separated) inputs: the search must run in float32 under autocast, unlike the official code.
    vq = make_vq(seed, codebook_size=256, dim=12).eval()
    z = torch.randn(64, 12, generator=torch.Generator().manual_seed(seed))
    quantized, ref_indices, _ = vq(z)
    with torch.autocast(device_type="cpu", dtype=dtype):
        quantized_autocast, indices, _ = vq(z)
        hard = vq.indices_to_codes(indices)
    assert torch.equal(indices, ref_indices)
    assert torch.equal(quantized_autocast, quantized) and hard.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_gives_the_cpu_indices(dtype):
    vq = make_vq(0, codebook_size=1024, dim=12).eval()
    z = torch.randn(4096, 12)
    _, ref_indices, _ = vq(z)
    vq_cuda = vq.cuda()
    with torch.autocast(device_type="cuda", dtype=dtype):
        _, indices, _ = vq_cuda(z.cuda())
    # Different BLAS kernels: allow only float32 near-ties to differ.
    assert (indices.cpu() == ref_indices).float().mean() > 0.999


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), code=st.integers(0, 63))
def test_probs_to_codes_of_one_hot_is_the_unnormalised_row(seed, code):
    vq = make_vq(seed, codebook_size=64, dim=12)
    one_hot = F.one_hot(torch.tensor([code]), 64).float()
    torch.testing.assert_close(vq.probs_to_codes(one_hot)[0], vq.codebook[code].detach(), rtol=0, atol=1e-6)
    normalised = vq.probs_to_codes(one_hot, normalize=True)[0]
    torch.testing.assert_close(normalised, vq.indices_to_codes(torch.tensor(code)), rtol=0, atol=1e-6)


def test_soft_and_hard_codes_differ_for_unnormalised_codebooks():
    vq = make_vq(0, codebook_size=64, dim=12)
    one_hot = F.one_hot(torch.arange(64), 64).float()
    gap = (vq.probs_to_codes(one_hot) - vq.indices_to_codes(torch.arange(64))).abs().max()
    assert gap > 1e-2  # the official soft/hard mismatch is real unless the rows have unit norm


def test_state_dict_keys_and_official_layout_load_strictly():
    vq = VectorQuantizer()
    assert sorted(vq.state_dict()) == ["embedding.weight", "embedding_proj.weight"]
    official = {"embedding.weight": torch.randn(1024, 12), "embedding_proj.weight": torch.randn(12, 12)}
    result = vq.load_state_dict(official, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sorted(VectorQuantizer(reparam="none").state_dict()) == ["embedding.weight"]


def test_official_layout_round_trip():
    z = torch.randn(3, 12, 1, 32)
    channel_last = from_official_layout(z)
    assert channel_last.shape == (3, 32, 12)
    assert torch.equal(channel_last[1, 5], z[1, :, 0, 5])
    assert torch.equal(to_official_layout(channel_last), z)
    with pytest.raises(ValueError, match="official layout"):
        from_official_layout(torch.randn(3, 12, 32))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.randn(4, 11), "shape"),
        (torch.tensor([[float("nan")] * 12]), "NaN"),
        (torch.ones(4, 12, dtype=torch.long), "floating-point"),
        (torch.zeros(0, 12), "empty"),
        (torch.zeros(3, 0, 12), "empty"),
        (torch.tensor([[float("inf")] * 12]), "inf"),
        (torch.tensor(1.0), "shape"),
        ([0.0] * 12, "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        VectorQuantizer()(bad)


def test_bad_indices_and_probs_raise():
    vq = VectorQuantizer(codebook_size=16)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        vq.indices_to_codes(torch.tensor([16]))
    with pytest.raises(ValueError, match="integer"):
        vq.indices_to_codes(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="shape"):
        vq.probs_to_codes(torch.rand(2, 15))
    with pytest.raises(ValueError, match="floating-point"):
        vq.probs_to_codes(torch.ones(2, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="reparam"):
        VectorQuantizer(reparam="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="usage_decay"):
        VectorQuantizer(usage_decay=1.0)
    with pytest.raises(ValueError, match="chunk_rows"):
        nearest_code_indices(torch.randn(3, 12), torch.randn(5, 12), chunk_rows=0)


def test_quantizer_works_on_a_large_batch_with_bounded_search_memory():
    vq = make_vq(0, codebook_size=1024, dim=12).eval()
    vq.search_chunk_rows = 1000  # several chunks, the last one partial
    z = torch.randn(4321, 12)
    _, indices, _ = vq(z)
    expected = official_distances(F.normalize(z, dim=-1), vq.normalized_codebook().detach()).argmin(dim=1)
    assert (indices == expected).float().mean() > 0.999

"""himtok-vq: vector quantization for PyTorch.

``quantized, indices, aux = VectorQuantizer(codebook_size=1024, dim=12)(z)`` for ``z`` of shape ``[..., dim]``.
"""

from himtok_vq.distributed import all_reduce_sum, broadcast_, is_distributed
from himtok_vq.fsq import FSQ
from himtok_vq.layout import from_official_layout, to_official_layout
from himtok_vq.quantizer import (
    QuantizerAux,
    VectorQuantizer,
    check_indices,
    check_probs,
    check_vectors,
    code_histogram,
    perplexity_from_counts,
)
from himtok_vq.restart import restart_dead_codes, update_usage
from himtok_vq.search import nearest_code_indices
from himtok_vq.stats import CodebookStats

__version__ = "0.1.0"

__all__ = [
    "FSQ",
    "CodebookStats",
    "QuantizerAux",
    "VectorQuantizer",
    "__version__",
    "all_reduce_sum",
    "broadcast_",
    "check_indices",
    "check_probs",
    "check_vectors",
    "code_histogram",
    "from_official_layout",
    "is_distributed",
    "nearest_code_indices",
    "perplexity_from_counts",
    "restart_dead_codes",
    "to_official_layout",
    "update_usage",
]

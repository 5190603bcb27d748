"""himtok-vq: vector quantization for PyTorch.

``quantized, indices, aux = VectorQuantizer(codebook_size=1024, dim=12)(z)`` for ``z`` of shape ``[..., dim]``.
"""

from himtok_vq.layout import from_official_layout, to_official_layout
from himtok_vq.quantizer import (
    QuantizerAux,
    VectorQuantizer,
    check_vectors,
    code_histogram,
    perplexity_from_counts,
)
from himtok_vq.restart import restart_dead_codes

__version__ = "0.1.0"

__all__ = [
    "QuantizerAux",
    "VectorQuantizer",
    "__version__",
    "check_vectors",
    "code_histogram",
    "from_official_layout",
    "perplexity_from_counts",
    "restart_dead_codes",
    "to_official_layout",
]

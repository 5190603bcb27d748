"""Model adapters: the generic Hugging Face one, InternVL, and the tiny offline InternVL."""

from himtok_lmm_adapter.models.base import HFVLMAdapter, VLMAdapter, adapter_for, register_adapter
from himtok_lmm_adapter.models.internvl import InternVLAdapter, tiny_internvl, tiny_internvl_processor
from himtok_lmm_adapter.models.tiny_processor import TinyInternVLProcessor
from himtok_lmm_adapter.models.tiny_tokenizer import build_tiny_tokenizer

__all__ = [
    "HFVLMAdapter",
    "InternVLAdapter",
    "TinyInternVLProcessor",
    "VLMAdapter",
    "adapter_for",
    "build_tiny_tokenizer",
    "register_adapter",
    "tiny_internvl",
    "tiny_internvl_processor",
]

"""Mask tokens as a new language for Hugging Face multimodal models (vocabulary, constrained generation, soft mask loss)."""

__version__ = "0.1.0"

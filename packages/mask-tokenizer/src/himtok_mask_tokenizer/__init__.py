"""HiMT: hierarchical mask tokenizer (mask <-> up to 32 discrete tokens), bit-compatible with official HiMTok checkpoints."""

__version__ = "0.1.0"

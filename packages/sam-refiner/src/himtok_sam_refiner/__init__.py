"""Optional SAM refinement of HiMTok masks (transformers' SAM)."""

__version__ = "0.0.0"

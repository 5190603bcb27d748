"""Hierarchical mask loss (HML): multi-level blurred BCE + Dice for coarse-to-fine mask tokens."""

__version__ = "0.1.0"

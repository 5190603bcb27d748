"""Prompt templates and a never-crashing response parser for HiMTok mask-token conversations (pure Python)."""

__version__ = "0.1.0"

"""Stage 2 and 3 of HiMTok: a multimodal model learns to write mask tokens (`uv run apps/train_stage2`)."""

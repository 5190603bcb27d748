"""``uv run apps/train_stage2 --help``: stage 2 of HiMTok (a multimodal model learns to write mask tokens)."""

import sys

from himtok_apps.stage2.cli import main_stage2

if __name__ == "__main__":
    sys.exit(main_stage2())

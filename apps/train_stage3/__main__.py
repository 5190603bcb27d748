"""``uv run apps/train_stage3 --help``: stage 3 of HiMTok (fine-tune the multimodal model, decoder frozen)."""

import sys

from himtok_apps.stage2.cli import main_stage3

if __name__ == "__main__":
    sys.exit(main_stage3())

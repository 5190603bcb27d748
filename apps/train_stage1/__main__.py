"""``uv run apps/train_stage1 --help``: train the HiMTok stage-1 mask tokenizer."""

import sys

from himtok_apps.stage1.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``uv run apps/convert_official --src DIR --out DIR``: official HiMTok release -> transformers-native HiMTokModel."""

import sys

from himtok_apps.convert_official.cli import main

if __name__ == "__main__":
    sys.exit(main())

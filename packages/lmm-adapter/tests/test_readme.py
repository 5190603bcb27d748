"""The README's offline examples run and print what they say."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    """The ```python blocks (```py blocks need the released model and are not run)."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_himtok_model_example_runs(tmp_path: Path) -> None:
    block = next(b for b in python_blocks() if "HiMTokModel.from_parts" in b)
    out = io.StringIO()
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {})
    finally:
        os.chdir(cwd)
    assert out.getvalue().splitlines()[-1] == "[(120, 160), (90, 90)] [32, 32]"
    from himtok_lmm_adapter import HiMTokModel

    again = HiMTokModel.from_pretrained(tmp_path / "tiny-himtok")
    assert again.settings.tiling.image_size == 56 and again.vocab.codebook_size == 1024


def test_building_blocks_example_runs() -> None:
    block = next(b for b in python_blocks() if "MaskTokenTargets(vocab" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(README), "exec"), {})
    assert out.getvalue().startswith("torch.Size([")

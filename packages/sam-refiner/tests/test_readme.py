"""The README's example runs and prints what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_example_runs() -> None:
    [block] = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(README), "exec"), {})
    assert out.getvalue().strip() == "[(120, 160), (120, 160)] box+points"


def test_documented_fallback_threshold_is_the_default() -> None:
    from himtok_sam_refiner import BoxPointsSettings

    text = README.read_text()
    assert f"below **{BoxPointsSettings().fallback_iou}**" in text

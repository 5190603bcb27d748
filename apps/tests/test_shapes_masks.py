"""The stage-1 `shapes:` mask source: the masks of the stage-2 scenes, deterministic, parsed like other specs."""

from __future__ import annotations

import numpy as np
import pytest
from himtok_apps.data.build import build_source
from himtok_apps.data.shapes import SceneConfig, make_scene
from himtok_apps.data.spec import parse_data_spec
from hypothesis import given
from hypothesis import strategies as st


def test_spec_takes_options_and_weight_but_no_path() -> None:
    spec = parse_data_spec("shapes:?seed=3&size=96:0.5")
    assert spec.kind == "shapes" and spec.weight == 0.5 and spec.options == {"seed": 3, "size": 96}
    assert parse_data_spec("shapes:").options == {}
    with pytest.raises(ValueError, match="no path"):
        parse_data_spec("shapes:/some/dir")
    with pytest.raises(ValueError):
        parse_data_spec("shapes:?colour=red")


@given(index=st.integers(0, 10_000), seed=st.integers(0, 5))
def test_items_are_the_shapes_of_the_scenes(index: int, seed: int) -> None:
    source = build_source(parse_data_spec(f"shapes:?seed={seed}&size=64"))
    mask = source.load(index)
    scene = make_scene(seed, index // 3, SceneConfig(size=64))
    assert mask.shape == (64, 64) and mask.dtype == np.float32
    assert any(np.array_equal(mask > 0.5, shape.mask) for shape in scene.shapes)
    np.testing.assert_array_equal(mask, source.load(index))
    assert 0.01 < mask.mean() < 0.5

"""apps/eval metrics against hand-computed cases (every edge case of eval-protocols.md) and properties."""

from __future__ import annotations

import numpy as np
import pytest
from himtok_apps.eval import (
    CountArrays,
    box_iou,
    counts,
    dense_counts,
    intersection_union,
    parse_box_official,
    parse_box_standard,
    sample_iou,
    segmentation_summary,
)
from himtok_apps.eval.masks import GroundTruth, encode
from himtok_prompt_templates import format_box
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


def arr(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


def summary_of(pairs: list[tuple[list[list[int]], list[list[int]]]], **kwargs: object) -> tuple[dict, dict]:
    """(prediction, ground truth) pairs of small hand-written masks -> the split's summary."""
    c = CountArrays.stack([dense_counts(arr(p).astype(bool), arr(g)) for p, g in pairs])
    return segmentation_summary(c, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ edge cases, by hand
def test_empty_gt_and_empty_prediction_is_a_hit_that_adds_nothing() -> None:
    summary, per = summary_of([([[0, 0]], [[0, 0]])], no_target=True)
    assert per["iou"].tolist() == [1.0] and per["I"].tolist() == [0] and per["U"].tolist() == [0]
    assert summary["nt_counts"] == {"TP": 1, "FN": 0, "FP": 0, "TN": 0} and summary["N_acc"] == 1.0


def test_empty_gt_with_a_prediction_scores_zero_and_adds_its_area() -> None:
    summary, per = summary_of([([[1, 1, 1, 0]], [[0, 0, 0, 0]])], no_target=True)
    assert per["iou"].tolist() == [0.0] and per["U"].tolist() == [3]
    assert summary["nt_counts"]["FN"] == 1 and summary["N_acc"] == 0.0 and summary["cIoU"] == 0.0


def test_empty_prediction_on_a_target_scores_zero_and_adds_the_target() -> None:
    for no_target in (False, True):
        summary, per = summary_of([([[0, 0, 0, 0]], [[1, 1, 1, 1]])], no_target=no_target)
        assert per["iou"].tolist() == [0.0] and per["U"].tolist() == [4] and summary["n_empty_pred"] == 1
    assert summary["nt_counts"]["FP"] == 1 and summary["T_acc"] == 0.0


def test_ignore_pixels_excluded_standard_and_hits_official() -> None:
    pred, gt = [[1, 0, 1, 0]], [[1, 1, 255, 255]]
    _, std = summary_of([(pred, gt)])
    # standard: P - N = {0}, G = {0, 1}: I = 1, U = 2
    assert (std["I"][0], std["U"][0], std["iou"][0]) == (1, 2, 0.5)
    _, off = summary_of([(pred, gt)], ignore_as_hit=True, epsilon=1e-10)
    # official: P := P | N = {0, 2, 3}, G := G | N = {0, 1, 2, 3}: I = 3, U = 4
    assert (off["I"][0], off["U"][0]) == (3, 4) and off["iou"][0] == pytest.approx(0.75)
    # predictions inside the ignore region change nothing in the standard protocol
    for inside in ([[1, 1, 0, 0]], [[1, 1, 1, 0]], [[1, 1, 1, 1]]):
        _, per = summary_of([(inside, gt)])
        assert per["iou"][0] == 1.0


def test_prediction_wholly_in_an_all_ignore_gt_is_flagged() -> None:
    summary, per = summary_of([([[1, 0]], [[255, 255]])])
    assert (per["I"][0], per["U"][0], per["iou"][0]) == (0, 0, 1.0)
    assert summary["n_pred_only_in_ignore"] == 1 and summary["n_empty_gt"] == 1


def test_giou_is_a_mean_ciou_a_ratio_of_sums() -> None:
    a = ([[1, 0] + [0] * 8], [[1, 1] + [0] * 8])  # I 1, U 2
    b = ([[1] * 9 + [0]], [[1] * 10])  # I 9, U 10
    summary, _ = summary_of([a, b])
    assert summary["gIoU"] == pytest.approx((0.5 + 0.9) / 2)
    assert summary["cIoU"] == pytest.approx(10 / 12)
    assert summary["Pr@0.5"] == 1.0 and summary["Pr@0.6"] == 0.5 and summary["Pr@0.9"] == 0.5  # IoU >= t


def test_official_formulas_differ_where_unions_vanish() -> None:
    _, std = summary_of([([[1, 1]], [[1, 1]])])
    _, off = summary_of([([[1, 1]], [[1, 1]])], ignore_as_hit=True, epsilon=1e-10)
    assert (
        std["iou"][0] == 1.0 and off["iou"][0] == pytest.approx(1.0) and off["iou"][0] < 1.0
    )  # 2 / (2 + 1e-10)
    std_sum, _ = summary_of([([[0]], [[0]])])
    off_sum, _ = summary_of([([[0]], [[0]])], ignore_as_hit=True, epsilon=1e-10)
    assert std_sum["cIoU"] == 1.0 and off_sum["cIoU"] == 0.0  # sum I / (sum U + 1e-10) with sum U = 0
    assert std_sum["gIoU"] == off_sum["gIoU"] == 1.0


def test_grefcoco_oracles() -> None:
    gts = [[[1, 1, 0]], [[0, 0, 0]], [[0, 1, 1]], [[0, 0, 0]]]
    perfect, _ = summary_of([(g, g) for g in gts], no_target=True, thresholds=(0.7,))
    assert (
        perfect["gIoU"] == perfect["cIoU"] == perfect["N_acc"] == perfect["T_acc"] == perfect["Pr@0.7"] == 1.0
    )
    empty, _ = summary_of([([[0, 0, 0]], g) for g in gts], no_target=True)
    assert empty["N_acc"] == 1.0 and empty["T_acc"] == 0.0 and empty["gIoU"] == 0.5 and empty["cIoU"] == 0.0


def test_reject_flag_overrides_the_mask() -> None:
    pairs = [([[1, 0]], [[0, 0]]), ([[1, 1]], [[1, 1]])]
    c = CountArrays.stack([dense_counts(arr(p).astype(bool), arr(g)) for p, g in pairs])
    summary, per = segmentation_summary(c, no_target=True, pred_nt=np.array([True, True]))
    # a rejected no-target sample is a TP whatever the mask; a rejected target an FP, its union still counted
    assert per["iou"].tolist() == [1.0, 0.0] and per["U"].tolist() == [0, 2] and per["I"].tolist() == [0, 0]
    assert summary["nt_counts"] == {"TP": 1, "FN": 0, "FP": 1, "TN": 0}


# ------------------------------------------------------------------ boxes
def test_box_iou_by_hand() -> None:
    ious = box_iou(
        np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0]]),
        np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 4, 4]]),
    )
    assert ious.tolist() == pytest.approx([50 / 150, 0.0, 0.0])


def test_box_parsers_by_hand_and_where_they_differ() -> None:
    w, h = 1000, 500
    tagged = "<|mt_start|><|mt_3|><|mt_end|> The box is <box>[100, 200, 300, 400]</box>."
    assert parse_box_standard(tagged, w, h) == pytest.approx(
        (100 / 999 * w, 200 / 999 * h, 300 / 999 * w, 400 / 999 * h)
    )
    assert parse_box_standard(tagged, w, h, grid=1000) == pytest.approx((100, 100, 300, 200))
    assert parse_box_official(tagged, w, h) == pytest.approx(parse_box_standard(tagged, w, h))
    normalised = "[[0.1, 0.2, 0.5, 0.6]]"  # sums below 4: the official reader takes it as fractions
    assert parse_box_official(normalised, w, h) == pytest.approx((100, 100, 500, 300))
    assert parse_box_standard(normalised, w, h) == pytest.approx(
        (0.1 / 999 * w, 0.2 / 999 * h, 0.5 / 999 * w, 0.6 / 999 * h)
    )
    for text in ("no box here", ""):
        assert parse_box_standard(text, w, h) is None and parse_box_official(text, w, h) is None
    assert parse_box_official("[[a, b, c, d]]", w, h) is None


@given(
    st.tuples(st.integers(1, 500), st.integers(1, 500)),
    st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
)
def test_box_round_trip_through_the_prompt_grid(size: tuple[int, int], corners: tuple[float, ...]) -> None:
    w, h = size
    xs, ys = sorted((corners[0] * w, corners[2] * w)), sorted((corners[1] * h, corners[3] * h))
    box = (xs[0], ys[0], xs[1], ys[1])
    parsed = parse_box_standard(f"It is at {format_box(box, w, h)}.", w, h)
    assert parsed is not None
    cell = (w / 999, h / 999, w / 999, h / 999)
    assert all(abs(a - b) <= c / 2 + 1e-9 for a, b, c in zip(parsed, box, cell, strict=True))


# ------------------------------------------------------------------ properties
def masks_strategy(max_side: int = 10) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    def pair(shape: tuple[int, int]) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
        gt = arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 1, 255]))
        pred = arrays(np.bool_, shape)
        return st.tuples(pred, gt)

    return st.tuples(st.integers(1, max_side), st.integers(1, max_side)).flatmap(pair)


@given(masks_strategy())
def test_rle_counts_equal_dense_counts(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, gt = pair
    ignore = gt == 255
    truth = GroundTruth(encode(gt == 1), encode(ignore) if ignore.any() else None, *gt.shape)
    assert counts(encode(pred), truth) == dense_counts(pred, gt)


@given(st.lists(masks_strategy(), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_summary_is_permutation_invariant_and_ciou_is_pixel_weighted(pairs: list, rng: object) -> None:
    c = CountArrays.stack([dense_counts(p, g) for p, g in pairs])
    summary, per = segmentation_summary(c)
    order = list(range(len(pairs)))
    rng.shuffle(order)  # type: ignore[attr-defined]
    shuffled, _ = segmentation_summary(CountArrays.stack([dense_counts(*pairs[i]) for i in order]))
    assert shuffled == pytest.approx(summary)
    union = per["U"].astype(float)
    if union.sum() > 0:
        assert summary["cIoU"] == pytest.approx(float((per["iou"] * union).sum() / union.sum()))
    assert summary["gIoU"] == pytest.approx(float(per["iou"].mean()))
    assert ((per["iou"] >= 0) & (per["iou"] <= 1)).all()


@given(masks_strategy())
def test_perfect_prediction_scores_one_in_both_protocols(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, gt = pair
    c = CountArrays.stack([dense_counts(gt == 1, gt)])
    for kwargs in ({}, {"ignore_as_hit": True, "epsilon": 1e-10}):
        summary, per = segmentation_summary(c, **kwargs)  # type: ignore[arg-type]
        assert per["iou"][0] == pytest.approx(1.0, abs=1e-8)
        # every union empty: 1 by the standard convention, 0 / (0 + 1e-10) officially
        expected = 1.0 if per["U"][0] > 0 or not kwargs else 0.0
        assert summary["cIoU"] == pytest.approx(expected)


@given(masks_strategy())
def test_disjoint_prediction_scores_zero(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, gt = pair
    if not (gt == 1).any():
        return
    c = CountArrays.stack([dense_counts(gt == 0, gt)])
    summary, per = segmentation_summary(c)
    assert per["iou"][0] == 0.0 and summary["cIoU"] == 0.0


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=20))
def test_sample_iou_matches_the_definition(pairs: list[tuple[int, int]]) -> None:
    inter = np.array([min(a, b) for a, b in pairs])
    union = np.array([max(a, b) for a, b in pairs])
    expected = [1.0 if u == 0 else i / u for i, u in zip(inter, union, strict=True)]
    assert sample_iou(inter, union).tolist() == pytest.approx(expected)


def test_intersection_union_formulas_on_a_table() -> None:
    c = CountArrays(*(np.array([v]) for v in (5, 4, 3, 2, 1)))  # |P| 5, |G| 4, |N| 3, |P&G| 2, |P&N| 1
    assert [int(x[0]) for x in intersection_union(c)] == [2, 4 + 4 - 2]
    assert [int(x[0]) for x in intersection_union(c, ignore_as_hit=True)] == [2 + 3, 5 + 4 - 2 + 3 - 1]

"""apps/eval loaders: REFER layout (pickle, JSON, TFDS bundle), gRefCOCO, ReasonSeg, and the safe unpickler."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from himtok_apps.eval import (
    OFFICIAL,
    STANDARD,
    UnsafePickleError,
    build_samples,
    ground_truth,
    load_benchmark,
    load_plain_pickle,
    loads_plain,
    question,
)
from himtok_apps.eval.synthetic import write_grefcoco, write_reasonseg, write_refer


class _Payload:
    """Unpickling this runs ``exec`` of code that creates ``marker``: a stand-in for a hostile REFER file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    hostile = pickle.dumps([{"ref_id": 1, "payload": _Payload(marker)}])
    # The file really is hostile: a plain pickle.loads runs its code.
    pickle.loads(hostile)
    assert marker.read_text() == "pwned"
    marker.unlink()

    path = tmp_path / "refcoco" / "refs(unc).p"
    path.parent.mkdir()
    path.write_bytes(hostile)
    with pytest.raises(UnsafePickleError, match=r"refused to load builtins\.exec"):
        loads_plain(hostile)
    with pytest.raises(ValueError, match="refused"):
        load_plain_pickle(path)
    (tmp_path / "refcoco" / "instances.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="refused"):
        load_benchmark("refcoco", "val", tmp_path)
    assert not marker.exists(), "the refused pickle must not have run any code"


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_plain_pickles_of_every_protocol_load(protocol: int) -> None:
    data = [{"ref_id": 3, "sentences": [{"sent": "café", "sent_id": 7}], "box": (1.5, 2.0), "flag": None}]
    assert loads_plain(pickle.dumps(data, protocol=protocol)) == data


def test_python2_byte_strings_are_read_as_text() -> None:
    # Python 2 pickles store str as SHORT_BINSTRING: b'U' + length + bytes.
    py2 = b"\x80\x02]q\x00U\x05hello" + b"q\x01a."
    assert loads_plain(py2) == ["hello"]


@pytest.mark.parametrize("fmt", ["pickle", "json", "tfds"])
def test_refer_layout_in_every_format(tmp_path: Path, fmt: str) -> None:
    write_refer(tmp_path, "refcoco", fmt)
    bench = load_benchmark("refcoco", "val", tmp_path)
    assert [r.ref_id for r in bench.refs] == [100, 101]
    assert bench.files and all(len(v) == 64 for v in bench.files.values())
    first = bench.refs[0]
    # The image name comes from instances.json, never from the ref's file_name.
    assert first.image_path == tmp_path / "images/mscoco/images/train2014/COCO_train2014_000000000001.jpg"
    assert (first.height, first.width) == (30, 40)
    assert first.sentences[0].sent == "left square" and first.sentences[0].raw == "Left square"
    assert first.box_xywh == (5.0, 5.0, 10.0, 10.0)
    assert [r.ref_id for r in load_benchmark("refcoco", "testA", tmp_path).refs] == [102]
    assert [r.ref_id for r in load_benchmark("refcoco", "testB", tmp_path).refs] == [103]


def test_refcocog_uses_umd_and_test_selects_every_test_split(tmp_path: Path) -> None:
    write_refer(tmp_path, "refcocog", "pickle")
    assert (tmp_path / "refcocog" / "refs(umd).p").is_file()
    assert [r.ref_id for r in load_benchmark("refcocog", "test", tmp_path).refs] == [102, 103]


def test_ground_truth_areas_by_hand(tmp_path: Path) -> None:
    write_refer(tmp_path, "refcoco", "pickle")
    areas = {
        r.ref_id: int(ground_truth(r).dense().sum())
        for s in ("val", "testA", "testB")
        for r in load_benchmark("refcoco", s, tmp_path).refs
    }
    # 100: a 10x10 square. 101: two 10x10 squares overlapping on 5x5 -> 175 (a sum would give 200, LAVT's
    # ``== 1`` 150); its 2-point polygon is dropped. 102: an 8x6 RLE. 103: a 14x16 polygon.
    assert areas == {100: 100, 101: 175, 102: 48, 103: 224}


def test_samples_per_protocol_and_duplicate_sentences(tmp_path: Path) -> None:
    write_refer(tmp_path, "refcoco", "pickle")
    bench = load_benchmark("refcoco", "val", tmp_path)
    standard = build_samples(bench, STANDARD)
    assert [s.sample_id for s in standard] == ["100:1000", "100:1001", "101:1002", "101:1003"]
    assert standard[2].texts == standard[3].texts == ("right shape",), "duplicates are kept, each counted"
    assert question(standard[0], STANDARD) == "Segment <ref>left square</ref>."
    official = build_samples(bench, OFFICIAL)
    assert [s.sample_id for s in official] == ["100", "101"]
    assert question(official[0], OFFICIAL) == (
        "Segment <ref>Meet all the descriptions: 1. left square. 2. the small square. </ref>."
    )
    rec_std, rec_off = build_samples(bench, STANDARD, "rec"), build_samples(bench, OFFICIAL, "rec")
    assert [s.sample_id for s in rec_off] == [s.sample_id for s in rec_std]
    assert question(rec_off[0], OFFICIAL, "rec") == (
        "First create the segmentation mask for <ref>Meet all the descriptions: 1. left square. "
        "2. left square. </ref>, then identify its bounding box."
    )


def test_grefcoco_no_target_multi_target_and_crowd(tmp_path: Path) -> None:
    write_grefcoco(tmp_path)
    bench = load_benchmark("grefcoco", "val", tmp_path)
    by_id = {r.ref_id: r for r in bench.refs}
    assert by_id[201].no_target and not by_id[200].no_target
    assert ground_truth(by_id[201]).dense().sum() == 0
    assert ground_truth(by_id[200]).dense().sum() == 100 + 175  # union of the two targets
    assert ground_truth(by_id[202]).dense().sum() == 48  # the crowd annotation is left out
    assert [s.sample_id for s in build_samples(bench, STANDARD)] == [
        "200:2000",
        "201:2001",
        "201:2002",
        "202:2003",
    ]


def test_reasonseg_folder_ignore_flag_and_exif(tmp_path: Path) -> None:
    write_reasonseg(tmp_path)
    bench = load_benchmark("reasonseg", "val", tmp_path)
    refs = {r.ref_id: r for r in bench.refs}
    a = ground_truth(refs["a"]).dense()
    assert a.shape == (20, 30)
    assert (a == 1).sum() == 8 * 8  # points 2..9 inclusive, outline and interior
    assert (a == 255).sum() == 5 * 20  # x 15.7 -> 15 .. 19.2 -> 19 (truncated), every row
    b = ground_truth(refs["b"]).dense()
    # The smaller 'Ignore-part' square is drawn over the larger target; the 'flag' shape is skipped.
    assert (b == 255).sum() == 25 and (b == 1).sum() == 19 * 19 - 25 and b[0, 0] == 0
    c = refs["c"]
    assert (c.height, c.width) == (12, 20), "stored sideways with EXIF orientation 6: upright size"
    assert ground_truth(c).dense().sum() == 15 * 5
    samples = build_samples(bench, STANDARD)
    assert [(s.sample_id, s.subset, s.texts) for s in samples] == [
        ("a", "short", ("the red thing",)),
        ("b", "long", ("Something you sit on while reading.",)),
        ("c", "short", ("pole",)),
    ]
    assert (
        question(samples[0], STANDARD) == "What is the red thing?\nWhat is the object and mask in the image?"
    )
    assert (
        question(samples[1], OFFICIAL)
        == "Something you sit on while reading.\nWhat is the object and mask in the image?"
    )


def test_missing_files_name_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"refcoco/refs\(unc\)\.p.*instances\.json.*refcoco\.json"):
        load_benchmark("refcoco", "val", tmp_path)
    with pytest.raises(ValueError, match=r"grefcoco/grefs\(unc\)\.json"):
        load_benchmark("grefcoco", "val", tmp_path)
    with pytest.raises(ValueError, match=r"reason_seg/ReasonSeg/val"):
        load_benchmark("reasonseg", "val", tmp_path)
    write_refer(tmp_path, "refcoco", "pickle")
    os.remove(tmp_path / "refcoco" / "instances.json")
    with pytest.raises(ValueError, match=r"missing .*refcoco/instances\.json"):
        load_benchmark("refcoco", "val", tmp_path)


def test_unknown_split_lists_the_splits(tmp_path: Path) -> None:
    write_refer(tmp_path, "refcoco", "json")
    with pytest.raises(ValueError, match="no refs in split 'dev'; splits: val, testA, testB"):
        load_benchmark("refcoco", "dev", tmp_path)


def test_corrupt_rle_prediction_is_one_clear_error() -> None:
    from himtok_apps.eval.masks import from_json

    with pytest.raises(ValueError, match="5x5"):
        from_json({"size": [5, 5], "counts": "0"}, 4, 4)
    with pytest.raises(ValueError, match="add up"):
        from_json({"size": [2, 2], "counts": [1, 1]}, 2, 2)
    rle = from_json({"size": [2, 2], "counts": [1, 2, 1]}, 2, 2)  # column-major: pixels 1 and 2 are on
    from himtok_apps.eval.masks import decode

    assert np.array_equal(decode(rle), np.array([[False, True], [True, False]]))

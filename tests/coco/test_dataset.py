"""Loading rules: integer ids (a string id is never merged with an integer one), JSON readers, subsets."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from segfuse.coco import _dataset, evaluate
from tests.coco.helpers import make_dataset, reference_eval
from tests.coco.test_evaluate import assert_same


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(0, n_images=5)


def test_convention_ids_are_integers_and_string_ids_are_refused(dataset):
    gt, dt = copy.deepcopy(dataset)
    dt[2]["image_id"] = str(dt[2]["image_id"])  # "3" next to integer 3 in the ground truth
    with pytest.raises(ValueError, match=r"result #2 .*image_id must be an integer, got '\d+' \(str\).*never the same id"):
        evaluate(gt, dt)
    gt, dt = copy.deepcopy(dataset)
    for img in gt["images"]:
        img["id"] = str(img["id"])
    with pytest.raises(ValueError, match=r"image #0: id must be an integer, got '1' \(str\)"):
        evaluate(gt, dt)
    gt, dt = copy.deepcopy(dataset)
    gt["annotations"][1]["category_id"] = True
    with pytest.raises(ValueError, match=r"category_id must be an integer, got True \(bool\)"):
        evaluate(gt, dt)
    gt, dt = copy.deepcopy(dataset)
    dt[0]["category_id"] = 1.5
    with pytest.raises(ValueError, match=r"result #0 .*category_id must be an integer, got 1.5"):
        evaluate(gt, dt)


def test_convention_integral_float_ids_are_those_integers(dataset):
    """2299.0 is the id 2299, as Python and pycocotools compare them."""
    gt, dt = copy.deepcopy(dataset)
    floated = copy.deepcopy(dt)
    for d in floated:
        d["image_id"], d["category_id"] = float(d["image_id"]), float(d["category_id"])
    np.testing.assert_array_equal(evaluate(gt, floated).precision, evaluate(gt, dt).precision)
    assert_same(evaluate(gt, floated), reference_eval(gt, dt, "segm"))


def test_duplicate_and_unknown_ids(dataset):
    gt, dt = copy.deepcopy(dataset)
    gt["categories"].append(dict(gt["categories"][0]))
    with pytest.raises(ValueError, match=r"duplicate category ids: \[1\]"):
        evaluate(gt, dt)
    gt, dt = copy.deepcopy(dataset)
    with pytest.raises(ValueError, match=r"image_ids holds ids that are not ground-truth images: \[999\]"):
        evaluate(gt, dt, image_ids=[1, 999])
    with pytest.raises(TypeError, match=r"category_ids must be integer ids, got '1' \(str\)"):
        evaluate(gt, dt, category_ids=["1"])
    with pytest.raises(ValueError, match="must hold at least one id"):
        evaluate(gt, dt, image_ids=[])


def test_nan_scores_and_bad_sizes_are_refused(dataset):
    gt, dt = copy.deepcopy(dataset)
    dt[1]["score"] = float("nan")
    with pytest.raises(ValueError, match=r"result #1 .*score must be a number, got nan"):
        evaluate(gt, dt)
    gt, dt = copy.deepcopy(dataset)
    gt["images"][0]["height"] = "tall"
    with pytest.raises(ValueError, match=r"image id=1: height must be an integer >= 0, got 'tall'"):
        evaluate(gt, dt)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("boxes", [True, False])
def test_json_paths_read_by_msgspec_orjson_or_json_give_the_same_numbers(dataset, tmp_path, monkeypatch, iou_type,
                                                                          boxes):
    gt, dt = copy.deepcopy(dataset)
    if not boxes:
        for d in dt:
            d.pop("bbox")
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    expected = evaluate(gt, dt, iou_type)  # in-memory dicts
    paths = str(tmp_path / "gt.json"), tmp_path / "dt.json"
    if _dataset._msgspec is not None:
        records = _dataset.read_results(paths[1], iou_type)
        assert not isinstance(records[0], dict)  # the msgspec records, not dicts
        assert ("segmentation" in records[0]) == (iou_type != "bbox" or not boxes)
    readers = [evaluate(*paths, iou_type)]
    monkeypatch.setattr(_dataset, "_msgspec", None)
    readers.append(evaluate(*paths, iou_type))
    monkeypatch.setattr(_dataset, "_orjson", None)
    readers.append(evaluate(*paths, iou_type))
    for result in readers:
        np.testing.assert_array_equal(result.precision, expected.precision)
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        evaluate(*paths[:1], str(tmp_path / "bad.json"))


def test_msgspec_surprises_fall_back_to_the_plain_reader_and_its_messages(dataset, tmp_path):
    gt, dt = copy.deepcopy(dataset)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    del dt[3]["score"]
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    with pytest.raises(ValueError, match=r"result #3 lacks required field\(s\) \['score'\]"):
        evaluate(str(tmp_path / "gt.json"), str(tmp_path / "dt.json"), "bbox")
    (tmp_path / "dt.json").write_text(json.dumps({"annotations": dataset[1]}))
    np.testing.assert_array_equal(evaluate(str(tmp_path / "gt.json"), str(tmp_path / "dt.json"), "bbox").precision,
                                  evaluate(gt, dataset[1], "bbox").precision)


def test_caller_dicts_are_not_modified(dataset):
    gt, dt = copy.deepcopy(dataset)
    before = json.dumps([gt, dt], sort_keys=True)
    for iou_type in ("segm", "bbox", "boundary"):
        evaluate(gt, dt, iou_type).analysis()
    evaluate(gt, dt, mode="lvis")
    assert json.dumps([gt, dt], sort_keys=True) == before

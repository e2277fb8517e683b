"""Bad input to segfuse.coco.evaluate: ValueError / TypeError naming what is wrong."""

from __future__ import annotations

import copy

import pytest

from segfuse.coco import _pipeline, evaluate, evaluate_masks
from tests.coco.helpers import make_dataset


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(0, n_images=4)


def results_with(dataset, change):
    gt, dt = copy.deepcopy(dataset)
    change(dt)
    return gt, dt


def test_results_on_unknown_images_are_the_wrong_dataset(dataset):
    gt, dt = results_with(dataset, lambda dt: dt[0].update(image_id=999))
    with pytest.raises(ValueError, match=r"image ids not in the ground truth \(wrong dataset\?\): \[999\]"):
        evaluate(gt, dt)


def test_unknown_category_ids(dataset):
    gt, dt = results_with(dataset, lambda dt: dt[1].update(category_id=77))
    with pytest.raises(ValueError, match=r"category ids not in the ground truth's categories: \[77\]"):
        evaluate(gt, dt)


def test_missing_image_id_and_score(dataset):
    gt, dt = results_with(dataset, lambda dt: dt[2].pop("image_id"))
    with pytest.raises(ValueError, match=r"result #2 lacks required field\(s\) \['image_id'\]"):
        evaluate(gt, dt)
    gt, dt = results_with(dataset, lambda dt: dt[0].pop("score"))
    with pytest.raises(ValueError, match=r"result #0 lacks required field\(s\) \['score'\]"):
        evaluate(gt, dt)


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ({"size": [5, 5], "counts": "abc"}, "does not match its image"),
        ("not a mask", "segmentation must be polygons or an RLE dict"),
        ([], "empty polygon list"),
        ([[1.0, 2.0, "x", 4.0, 5.0, 6.0]], "polygon coordinates must be numbers"),
    ],
)
def test_malformed_segmentation(dataset, segmentation, message):
    gt, dt = results_with(dataset, lambda dt: [d.pop("bbox") for d in dt])
    dt[0]["segmentation"] = segmentation
    with pytest.raises(ValueError, match=message):
        evaluate(gt, dt)


def test_malformed_rle_counts_name_the_result(dataset, monkeypatch):
    """The numpy path checks run totals; the pycocotools path trusts them, as pycocotools does."""
    monkeypatch.setattr(_pipeline, "backend_for", lambda iou_type: "numpy")
    gt, dt = results_with(dataset, lambda dt: [d.pop("bbox") for d in dt])
    dt[3]["segmentation"] = dict(dt[3]["segmentation"], counts="0")
    with pytest.raises(ValueError, match=r"result #3 .*malformed RLE"):
        evaluate(gt, dt)


def test_bad_ground_truth_and_files(dataset, tmp_path):
    gt, dt = copy.deepcopy(dataset)
    del gt["annotations"][0]["area"]
    with pytest.raises(ValueError, match=r"ground-truth annotation #0 lacks required field\(s\) \['area'\]"):
        evaluate(gt, dt)
    with pytest.raises(ValueError, match="must be a COCO dict"):
        evaluate({"images": []}, dt)
    with pytest.raises(ValueError, match="cannot read ground truth file"):
        evaluate(str(tmp_path / "missing.json"), dt)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        evaluate(str(tmp_path / "broken.json"), dt)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(iou_type="keypoints"), ValueError, "iou_type must be one of"),
        (dict(iou_thresholds=[0.5, 1.5]), ValueError, r"iou_thresholds must be in \[0, 1\]"),
        (dict(iou_thresholds=[0.5, 0.501]), ValueError, "distinct keys"),
        (dict(max_dets=(0, 10)), ValueError, "max_dets must be"),
        (dict(area_ranges=[(0, 1)]), TypeError, "area_ranges must be a non-empty mapping"),
    ],
)
def test_bad_parameters(dataset, kwargs, error, message):
    gt, dt = dataset
    with pytest.raises(error, match=message):
        evaluate(gt, dt, **kwargs)


def test_dense_api_shape_checks():
    import numpy as np

    masks = np.zeros((1, 4, 4), bool)
    with pytest.raises(ValueError, match="one entry per image"):
        evaluate_masks([], [{"masks": masks, "labels": [1]}])
    with pytest.raises(ValueError, match=r"prediction masks are \(5, 4\)"):
        evaluate_masks([{"masks": np.zeros((1, 5, 4), bool), "labels": [1], "scores": [1.0]}],
                       [{"masks": masks, "labels": [1]}])
    with pytest.raises(ValueError, match=r"\['scores'\] must have one entry per mask"):
        evaluate_masks([{"masks": masks, "labels": [1], "scores": [1.0, 2.0]}], [{"masks": masks, "labels": [1]}])


def test_results_entries_must_be_dicts():
    gt, dt = make_dataset(0)
    with pytest.raises(ValueError, match=r"result #1 must be a dict, got int"):
        evaluate(gt, [dt[0], 7] + dt[1:], "segm")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(use_cats=1), TypeError, "use_cats must be a bool"),
        (dict(min_score="0.5"), TypeError, "min_score must be a number or None"),
        (dict(dilation_ratio=2.0), ValueError, r"dilation_ratio must be a number in \[0, 1\]"),
        (dict(workers=-1), ValueError, "workers must be an int >= 0 or None"),
        (dict(iou_thresholds=["a"]), TypeError, "iou_thresholds must be numbers"),
        (dict(mode="lvis", use_cats=False), ValueError, "use_cats=False is not defined"),
    ],
)
def test_bad_new_parameters(dataset, kwargs, error, message):
    gt, dt = dataset
    with pytest.raises(error, match=message):
        evaluate(gt, dt, **kwargs)

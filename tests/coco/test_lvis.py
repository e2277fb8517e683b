"""mode="lvis" against the lvis package 0.5.3 (LVISEval) and faster-coco-eval 1.8.0's lvis_style=True."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from segfuse.coco import evaluate
from tests.coco.helpers import coco100, coco_mask, fce_eval, lvis_eval, make_lvis_dataset, without_crowd

pytestmark = pytest.mark.usefixtures("coco_path")  # every case on the compiled and the numpy path

LVIS_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


def assert_same_as_lvis(result, reference, cap=300):
    expected = reference.get_results()
    keys = LVIS_KEYS + (f"AR@{cap}", f"ARs@{cap}", f"ARm@{cap}", f"ARl@{cap}")
    assert set(keys) == set(expected)
    for key in keys:
        assert result.stats[key] == pytest.approx(expected[key], abs=1e-12), key
    np.testing.assert_array_equal(result.precision[..., 0], reference.eval["precision"])
    np.testing.assert_array_equal(result.recall[..., 0], reference.eval["recall"])


def lvis_subset_of_coco100(seed: int = 0):
    """The real COCO 100 set in LVIS format: no crowd, per-image neg / not-exhaustive lists, r / c / f."""
    gt, dt = coco100()
    gt = without_crowd(gt)
    rng = np.random.default_rng(seed)
    present: dict = {}
    for ann in gt["annotations"]:
        ann.pop("iscrowd", None)
        present.setdefault(ann["image_id"], set()).add(ann["category_id"])
    cat_ids = [c["id"] for c in gt["categories"]]
    for img in gt["images"]:
        pos = sorted(present.get(img["id"], set()))
        absent = [c for c in cat_ids if c not in pos]
        img["neg_category_ids"] = sorted(int(c) for c in rng.choice(absent, size=int(rng.integers(0, 20)), replace=False))
        img["not_exhaustive_category_ids"] = [c for c in pos if rng.random() < 0.3]
    for cat in gt["categories"]:
        cat["frequency"] = "rcf"[int(rng.integers(0, 3))]
    return gt, dt


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_lvis_format_subset_of_real_coco100_matches_lvis(iou_type, tmp_path):
    gt, dt = lvis_subset_of_coco100()
    assert_same_as_lvis(evaluate(gt, dt, iou_type, mode="lvis"), lvis_eval(gt, dt, iou_type, tmp_path))


@pytest.mark.parametrize("seed, iou_type, cap", [(0, "segm", 300), (1, "bbox", 300), (2, "segm", 12), (3, "bbox", 7)])
def test_generated_lvis_sets_match_lvis(seed, iou_type, cap, tmp_path):
    gt, dt = make_lvis_dataset(seed, n_images=14, max_dt=40)
    result = evaluate(gt, dt, iou_type, mode="lvis", max_dets=cap)
    assert_same_as_lvis(result, lvis_eval(gt, dt, iou_type, tmp_path, max_dets=cap), cap)


def test_generated_lvis_set_has_the_hard_cases():
    gt, dt = make_lvis_dataset(2, n_images=14, max_dt=40)
    neg = {(img["id"], c) for img in gt["images"] for c in img["neg_category_ids"]}
    nel = {(img["id"], c) for img in gt["images"] for c in img["not_exhaustive_category_ids"]}
    pos = {(a["image_id"], a["category_id"]) for a in gt["annotations"]}
    keys = [(d["image_id"], d["category_id"]) for d in dt]
    assert any(k in neg for k in keys) and any(k in nel for k in keys) and any(k in pos for k in keys)
    assert any(k not in neg and k not in pos for k in keys)  # unlabelled: dropped
    assert max(np.bincount([d["image_id"] for d in dt])) > 12  # the cap of 12 bites
    assert any(b["bbox"][2] * b["bbox"][3] == 0 for b in dt)  # area 0: dropped
    assert {c["frequency"] for c in gt["categories"]} == {"r", "c", "f"}


def test_lvis_ignore_flag_and_unused_iscrowd(tmp_path):
    gt, dt = make_lvis_dataset(4, n_images=8)
    gt = copy.deepcopy(gt)
    for i, ann in enumerate(gt["annotations"]):
        ann["iscrowd"] = int(i % 5 == 0)  # lvis ignores iscrowd
        ann["ignore"] = int(i % 7 == 0)   # and honours "ignore"
    assert_same_as_lvis(evaluate(gt, dt, "segm", mode="lvis"), lvis_eval(gt, dt, "segm", tmp_path))


def test_faster_coco_eval_lvis_style_is_a_second_oracle():
    """faster-coco-eval caps per (image, category) and keeps area-0 results: equal where neither matters."""
    gt, dt = lvis_subset_of_coco100(1)
    dt = [d for d in dt if coco_mask.area(d["segmentation"]) > 0]
    expected = fce_eval(gt, dt, "segm", lvis_style=True, maxDets=[300])
    result = evaluate(gt, dt, "segm", mode="lvis")
    named = expected.stats_as_dict
    for ours, theirs in (("AP", "AP_all"), ("AP50", "AP_50"), ("AP75", "AP_75"), ("APs", "AP_small"),
                         ("APm", "AP_medium"), ("APl", "AP_large"), ("APr", "APr"), ("APc", "APc"), ("APf", "APf"),
                         ("AR@300", "AR_all"), ("ARs@300", "AR_small"), ("ARm@300", "AR_medium"),
                         ("ARl@300", "AR_large")):
        assert result.stats[ours] == pytest.approx(named[theirs], abs=1e-12), ours
    np.testing.assert_allclose(result.precision, expected.eval["precision"], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(result.recall, expected.eval["recall"])


def test_convention_lvis_caps_results_per_image_not_per_cell(tmp_path):
    gt, dt = make_lvis_dataset(5, n_images=6, max_dt=40)
    capped = evaluate(gt, dt, "bbox", mode="lvis", max_dets=5)
    assert capped.params.cell_cap > 10**9  # no cap per (image, category)
    kept = capped._matched.dt
    assert np.bincount(kept.image).max() <= 5
    assert_same_as_lvis(capped, lvis_eval(gt, dt, "bbox", tmp_path, max_dets=5), 5)


def test_lvis_parameters_are_checked():
    gt, dt = make_lvis_dataset(0, n_images=3)
    with pytest.raises(ValueError, match="one cap of detections per image"):
        evaluate(gt, dt, mode="lvis", max_dets=(1, 10))
    bad = copy.deepcopy(gt)
    bad["categories"][0]["frequency"] = "x"
    with pytest.raises(ValueError, match=r"frequency must be one of \('r', 'c', 'f'\)"):
        evaluate(bad, dt, mode="lvis")
    with pytest.raises(ValueError, match="mode must be one of"):
        evaluate(gt, dt, mode="LVIS")

"""The extended analysis against faster-coco-eval 1.8.0's extra_calc=True (matched pairs, TP / FP / FN flags,
mIoU, extended_metrics) where both define the same thing, and its conventions on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from segfuse.coco import evaluate
from tests.coco.helpers import coco100, fce_eval, make_dataset, without_crowd

pytestmark = pytest.mark.usefixtures("coco_path")  # every case on the compiled and the numpy path

ALL_ONLY = {"all": (0, 1e10)}


def fce_extra(gt, dt, iou_type):
    """faster-coco-eval with the same operating definition: one IoU threshold 0.5, one area range "all"."""
    return fce_eval(gt, dt, iou_type, extra_calc=True, ranges={}, iouThrs=[0.5])


def assert_analysis_equals_fce(result, fce):
    analysis = result.analysis(0.5)
    det, gts = analysis.detections, analysis.ground_truths
    theirs = {tuple(int(v) for v in key.split("_")): iou for key, iou in fce.eval["matched"].items()}
    ours = {(int(i) + 1, int(g)): float(v) for i, g, v in zip(det["result_index"], det["gt_id"], det["iou"]) if g >= 0}
    assert ours == theirs  # detection id = result index + 1, as loadRes numbers results
    outcome = dict(zip(det["result_index"] + 1, det["outcome"]))
    assert {a for a, ann in fce.cocoDt.anns.items() if ann.get("tp")} == {a for a, o in outcome.items() if o == "tp"}
    assert {a for a, ann in fce.cocoDt.anns.items() if ann.get("fp")} == {a for a, o in outcome.items() if o == "fp"}
    fn = {int(i) for i, o in zip(gts["id"], gts["outcome"]) if o == "fn"}
    assert {a for a, ann in fce.cocoGt.anns.items() if ann.get("fn")} == fn
    assert analysis.overall["mean_iou"] == pytest.approx(fce.compute_mIoU(), rel=1e-12)
    metrics = fce.extended_metrics
    rows = {row["name"]: row for row in analysis.per_class}
    for row in metrics["class_map"][:-1]:
        mine = rows[row["class"]]
        assert mine["precision_at_overall"] == pytest.approx(row["precision"], abs=1e-12), row["class"]
        assert mine["recall_at_overall"] == pytest.approx(row["recall"], abs=1e-12), row["class"]
        assert mine["AP50"] == pytest.approx(row["map@50"], abs=1e-12)
    kept = {row["class"] for row in metrics["class_map"][:-1]}
    assert kept == {r["name"] for r in analysis.per_class if r["AP50"] == r["AP50"]}
    assert analysis.overall["precision"] == pytest.approx(metrics["precision"], abs=1e-12)
    assert analysis.overall["recall"] == pytest.approx(metrics["recall"], abs=1e-12)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_real_coco100_flags_and_operating_points_equal_faster_coco_eval(iou_type):
    gt, dt = coco100()
    gt = without_crowd(gt)  # faster-coco-eval counts a match to a crowd region as a tp; we call it ignored
    result = evaluate(gt, dt, iou_type, iou_thresholds=[0.5], area_ranges=ALL_ONLY)
    assert_analysis_equals_fce(result, fce_extra(gt, dt, iou_type))


@pytest.mark.parametrize("seed", [0, 5])
def test_generated_flags_and_operating_points_equal_faster_coco_eval(seed):
    gt, dt = make_dataset(seed, n_images=15, crowd_rate=0.0, max_dt=20)
    result = evaluate(gt, dt, "segm", iou_thresholds=[0.5], area_ranges=ALL_ONLY)
    assert_analysis_equals_fce(result, fce_extra(gt, dt, "segm"))


def test_analysis_reads_the_same_matches_as_the_ap():
    gt, dt = make_dataset(2, n_images=12)
    result = evaluate(gt, dt, "segm")
    for t in (0.5, 0.75):
        analysis = result.analysis(t)
        k = list(result.params.iou_thresholds).index(t)
        recall = result.recall[k, :, result.params.all_area, -1]
        rows = [r for r in analysis.per_class if r["n_gt"] > 0]
        for row, r in zip(rows, recall[recall > -1]):
            assert row["tp"] / row["n_gt"] == pytest.approx(r, abs=1e-12)  # tp at the largest cap = final recall
    assert result.analysis() is result.analysis(0.5)
    with pytest.raises(ValueError, match="iou must be one of the evaluated"):
        result.analysis(0.3)


def tiny_case():
    """One image, one category, four ground truths; five detections with known outcomes at IoU 0.5."""
    images = [{"id": 1, "height": 100, "width": 100}]
    boxes = [[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10], [60, 0, 10, 10]]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 100.0, "iscrowd": 0}
            for i, b in enumerate(boxes)]
    anns.append({"id": 5, "image_id": 1, "category_id": 1, "bbox": [80, 80, 20, 20], "area": 400.0, "iscrowd": 1})
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},    # tp gt 1
        {"image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "score": 0.8},  # fp
        {"image_id": 1, "category_id": 1, "bbox": [20, 0, 10, 9], "score": 0.7},    # tp gt 2, IoU 0.9
        {"image_id": 1, "category_id": 1, "bbox": [85, 85, 10, 10], "score": 0.6},  # in the crowd: ignored
        {"image_id": 1, "category_id": 1, "bbox": [30, 50, 10, 10], "score": 0.5},  # fp
    ]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "none"}]}
    return gt, results


def test_convention_outcomes_and_best_f1_on_a_hand_built_case():
    gt, dt = tiny_case()
    analysis = evaluate(gt, dt, "bbox").analysis()
    assert analysis.detections["outcome"].tolist() == ["tp", "fp", "tp", "ignored", "fp"]
    assert analysis.detections["gt_id"].tolist() == [1, -1, 2, 5, -1]
    assert analysis.ground_truths["outcome"].tolist() == ["tp", "tp", "fn", "fn", "ignored"]
    row, empty = analysis.per_class
    # thresholds 0.9: P 1, R 1/4 -> F1 0.4; 0.8: 1/2, 1/4 -> 1/3; 0.7: 2/3, 1/2 -> 4/7; 0.5: 1/2, 1/2 -> 1/2
    assert row["score_threshold"] == 0.7 and row["f1"] == pytest.approx(4 / 7)
    assert (row["precision"], row["recall"], row["tp"], row["fp"], row["fn"]) == (pytest.approx(2 / 3), 0.5, 2, 2, 2)
    assert row["mean_iou"] == pytest.approx((1.0 + 0.9) / 2)
    assert np.isnan(empty["f1"]) and empty["n_gt"] == 0
    assert analysis.overall["score_threshold"] == 0.7 and analysis.overall["f1"] == pytest.approx(4 / 7)
    np.testing.assert_allclose(analysis.curves[1]["f1"], [0.4, 1 / 3, 4 / 7, 0.5])


def test_convention_ties_take_the_lowest_score_and_uncapped_results_are_not_evaluated():
    gt, _ = tiny_case()
    gt["annotations"] = gt["annotations"][:4]  # four ground truths, no crowd
    box = lambda x, y: [x, y, 10, 10]  # noqa: E731
    layout = [box(0, 0), box(20, 0), box(50, 50), box(70, 50), box(50, 70), box(70, 70), box(40, 0), box(60, 0)]
    dt = [{"image_id": 1, "category_id": 1, "bbox": b, "score": 0.9 - 0.1 * i} for i, b in enumerate(layout)]
    dt.append({"image_id": 1, "category_id": 1, "bbox": box(30, 30), "score": 0.05})  # the 9th: beyond a cap of 8
    analysis = evaluate(gt, dt, "bbox", max_dets=(1, 8)).analysis()
    assert analysis.detections["outcome"].tolist() == ["tp", "tp"] + ["fp"] * 4 + ["tp", "tp", "not_evaluated"]
    row = analysis.per_class[0]
    # F1 after 2 detections (P 1, R 1/2) equals F1 after 8 (P 1/2, R 1) = 2/3, the maximum: the lowest score wins
    assert row["f1"] == pytest.approx(2 / 3) and row["score_threshold"] == pytest.approx(0.2)
    assert analysis.overall["score_threshold"] == pytest.approx(0.2)
    tied = [dict(d, score=0.5) for d in dt[:8]]  # equal scores are one operating point
    row = evaluate(gt, tied, "bbox").analysis().per_class[0]
    assert row["score_threshold"] == 0.5 and len(evaluate(gt, tied, "bbox").analysis().curves[1]["f1"]) == 1


def test_class_agnostic_analysis_has_one_row():
    gt, dt = make_dataset(1, n_images=8)
    result = evaluate(gt, dt, "bbox", use_cats=False)
    rows = result.analysis().per_class
    assert len(rows) == 1 and rows[0]["id"] == -1 and list(result.per_category) == [-1]
    assert rows[0]["n_gt"] == sum(1 for a in gt["annotations"] if not a["iscrowd"])

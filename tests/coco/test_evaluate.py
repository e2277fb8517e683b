"""segfuse.coco.evaluate against pycocotools COCOeval: stats, precision / recall arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segfuse.coco import evaluate, evaluate_masks
from segfuse.coco._summary import STAT_KEYS
from tests.coco.helpers import COCO100_DT, COCO100_GT, coco_mask, make_dataset, needs_coco100, reference_eval

pytestmark = pytest.mark.usefixtures("coco_path")  # every case on the compiled and the numpy path


def assert_same(result, reference, thresholds=None):
    stats = np.array([result.stats[k] for k in STAT_KEYS])
    np.testing.assert_allclose(stats, reference.stats, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(result.precision, reference.eval["precision"])
    np.testing.assert_array_equal(result.recall, reference.eval["recall"])
    np.testing.assert_array_equal(result.scores, reference.eval["scores"])
    area = reference.params.areaRngLbl.index("all")
    for t, thr in enumerate(reference.params.iouThrs):
        m = list(reference.params.maxDets).index(reference.params.maxDets[min(2, len(reference.params.maxDets) - 1)])
        block = reference.eval["precision"][t, :, :, area, m]
        expected = np.mean(block[block > -1]) if (block > -1).any() else -1
        assert result.stats[f"AP{int(round(100 * thr))}"] == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def coco100():
    if not COCO100_GT.is_file():
        pytest.skip(f"shared COCO subset not found at {COCO100_GT.parent}")
    return json.loads(COCO100_GT.read_text()), json.loads(COCO100_DT.read_text())


@needs_coco100
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_real_coco_subset_matches_pycocotools(coco100, iou_type):
    gt, dt = coco100
    assert_same(evaluate(gt, dt, iou_type), reference_eval(gt, dt, iou_type))


@needs_coco100
def test_real_coco_subset_paths_and_custom_parameters(coco100):
    gt, dt = coco100
    thresholds, max_dets = [0.1, 0.5, 0.75, 0.9], (1, 5, 20)
    result = evaluate(str(COCO100_GT), str(COCO100_DT), "segm", iou_thresholds=thresholds, max_dets=max_dets)
    assert_same(result, reference_eval(gt, dt, "segm", thresholds, max_dets))
    assert {"AP10", "AP50", "AP75", "AP90"} <= set(result.stats)


@needs_coco100
def test_real_coco_per_category_from_pycocotools_precision(coco100):
    gt, dt = coco100
    result, reference = evaluate(gt, dt, "segm"), reference_eval(gt, dt, "segm")
    for k, cat_id in enumerate(reference.params.catIds):
        block = reference.eval["precision"][:, :, k, 0, -1]
        expected = np.mean(block[block > -1]) if (block > -1).any() else np.nan
        np.testing.assert_allclose(result.per_category[cat_id]["AP"], expected, rtol=0, atol=1e-12)


GENERATED = [
    dict(seed=0),
    dict(seed=1, iou_thresholds=[0.1, 0.3, 0.5, 0.75]),
    dict(seed=2, max_dets=(1, 3, 6)),
    dict(seed=3, max_dets=(2, 4, 8, 50), iou_thresholds=[0.5, 0.25]),
    dict(seed=4, area_ranges={"all": (0, 1e10), "small": (0, 300), "medium": (300, 2000), "large": (2000, 1e10)}),
    dict(seed=5, iou_thresholds=[0.0, 0.95, 1.0]),
]


@pytest.mark.parametrize("case", GENERATED, ids=lambda c: "-".join(f"{k}" for k in c if k != "seed") or "default")
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_generated_sets_match_pycocotools(case, iou_type):
    case = dict(case)
    gt, dt = make_dataset(case.pop("seed"))
    result = evaluate(gt, dt, iou_type, **case)
    assert_same(result, reference_eval(gt, dt, iou_type, **case))


def test_generated_set_has_the_hard_cases():
    gt, dt = make_dataset(0)
    crowds = sum(a["iscrowd"] for a in gt["annotations"])
    scores = [d["score"] for d in dt]
    annotated = {a["image_id"] for a in gt["annotations"]} | {d["image_id"] for d in dt}
    assert crowds > 0 and len(scores) > len(set(scores)) and len(annotated) < len(gt["images"])
    assert 5 not in {d["category_id"] for d in dt} and 6 not in {a["category_id"] for a in gt["annotations"]}
    assert 5 in {a["category_id"] for a in gt["annotations"]} and 6 in {d["category_id"] for d in dt}


def test_result_ties_keep_input_order_like_pycocotools():
    gt, dt = make_dataset(11, tie_rate=1.0, n_images=6)
    for iou_type in ("segm", "bbox"):
        assert_same(evaluate(gt, dt, iou_type), reference_eval(gt, dt, iou_type))


def test_results_without_bbox_use_mask_area_and_box():
    gt, dt = make_dataset(12)
    for d in dt:
        del d["bbox"]
    for iou_type in ("segm", "bbox"):
        assert_same(evaluate(gt, dt, iou_type), reference_eval(gt, dt, iou_type))


def test_results_with_bbox_only_rasterise_the_box_for_segm():
    gt, dt = make_dataset(13)
    for d in dt:
        del d["segmentation"]
    assert_same(evaluate(gt, dt, "segm"), reference_eval(gt, dt, "segm"))


def test_convention_undefined_stats_are_minus_one():
    gt, dt = make_dataset(0)
    result = evaluate(gt, dt, "segm", iou_thresholds=[0.3, 0.6], max_dets=(1, 10, 50))
    reference = reference_eval(gt, dt, "segm", [0.3, 0.6], (1, 10, 50))
    assert result.stats["AP"] == reference.stats[0] == -1  # maxDets=100 is absent: pycocotools gives -1
    assert result.stats["AP50"] == reference.stats[1] == -1  # 0.5 is not a threshold
    assert result.stats["AR100"] == pytest.approx(reference.stats[8])  # recall at max_dets[2] = 50


def test_convention_fewer_than_three_max_dets_fall_back_to_the_last():
    gt, dt = make_dataset(3)
    result = evaluate(gt, dt, "segm", max_dets=(100,))
    reference = reference_eval(gt, dt, "segm", max_dets=(100,))
    np.testing.assert_array_equal(result.precision, reference.eval["precision"])
    recall = reference.eval["recall"][:, :, 0, 0]
    assert result.stats["AR1"] == result.stats["AR10"] == result.stats["AR100"] == pytest.approx(np.mean(recall[recall > -1]))


def test_convention_ground_truth_id_zero_counts_as_unmatched_like_pycocotools():
    gt, dt = make_dataset(4)
    for ann in gt["annotations"]:
        ann["id"] -= 1
    assert_same(evaluate(gt, dt, "segm"), reference_eval(gt, dt, "segm"))


def test_empty_results_give_zero_precision():
    gt, _ = make_dataset(0)
    result = evaluate(gt, [], "segm")
    assert result.stats["AP"] == 0.0 and result.stats["AR100"] == 0.0


def test_to_dict_is_json_ready():
    gt, dt = make_dataset(0)
    payload = evaluate(gt, dt, "bbox").to_dict()
    json.loads(json.dumps(payload, allow_nan=False))
    assert set(STAT_KEYS) <= set(payload["stats"])


def _dense(rng, n_images=8):
    predictions, targets = [], []
    for _ in range(n_images):
        h, w = (int(v) for v in rng.integers(8, 40, 2))
        gt_masks = rng.random((int(rng.integers(0, 5)), h, w)) < 0.3
        for m in gt_masks:
            m[: int(rng.integers(1, h)), : int(rng.integers(1, w))] = True
        labels = rng.integers(1, 4, len(gt_masks))
        crowd = rng.random(len(gt_masks)) < 0.15
        dt_masks = np.concatenate([gt_masks ^ (rng.random(gt_masks.shape) < 0.1), rng.random((2, h, w)) < 0.2])
        dt_labels = np.concatenate([labels, rng.integers(1, 4, 2)])
        scores = rng.integers(1, 6, len(dt_masks)) / 5
        targets.append({"masks": gt_masks, "labels": labels, "iscrowd": crowd})
        predictions.append({"masks": dt_masks, "labels": dt_labels, "scores": scores})
    return predictions, targets


def test_dense_mask_api_matches_pycocotools_on_the_same_rles():
    import torch

    predictions, targets = _dense(np.random.default_rng(5))
    images, anns, results, cats = [], [], [], set()
    for i, (p, t) in enumerate(zip(predictions, targets)):
        h, w = t["masks"].shape[1:]
        images.append({"id": i, "height": h, "width": w})
        for m, label, crowd in zip(t["masks"], t["labels"], t["iscrowd"]):
            rle = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(label), "segmentation": rle,
                         "area": float(m.sum()), "iscrowd": int(crowd), "bbox": list(coco_mask.toBbox(rle))})
        for m, label, score in zip(p["masks"], p["labels"], p["scores"]):
            results.append({"image_id": i, "category_id": int(label), "score": float(score),
                            "segmentation": coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))})
        cats |= set(t["labels"].tolist()) | set(p["labels"].tolist())
    gt = {"images": images, "annotations": anns, "categories": [{"id": c} for c in sorted(cats)]}
    torch_predictions = [{k: torch.as_tensor(v) for k, v in p.items()} for p in predictions]
    result = evaluate_masks(torch_predictions, targets, iou_thresholds=[0.1, 0.5, 0.75])
    assert_same(result, reference_eval(gt, results, "segm", [0.1, 0.5, 0.75]))


def test_progress_flag_does_not_change_numbers(capsys):
    gt, dt = make_dataset(2)
    quiet = evaluate(gt, dt, "segm", progress=False)
    shown = evaluate(gt, dt, "segm", progress=True)
    assert quiet.stats == shown.stats


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_class_agnostic_matches_pycocotools_use_cats_0(iou_type):
    gt, dt = make_dataset(8, n_images=12, tie_rate=0.5)
    result = evaluate(gt, dt, iou_type, use_cats=False)
    assert_same(result, reference_eval(gt, dt, iou_type, use_cats=False))
    assert result.precision.shape[2] == 1


@needs_coco100
def test_real_coco_class_agnostic(coco100):
    gt, dt = coco100
    assert_same(evaluate(gt, dt, "segm", use_cats=False), reference_eval(gt, dt, "segm", use_cats=False))


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_image_and_category_subsets_match_pycocotools(iou_type):
    gt, dt = make_dataset(9, n_images=12)
    images, cats = [2, 3, 5, 7, 11], [1, 3, 6]
    result = evaluate(gt, dt, iou_type, image_ids=images, category_ids=cats)
    assert_same(result, reference_eval(gt, dt, iou_type, image_ids=images, category_ids=cats))
    assert list(result.per_category) == cats
    agnostic = evaluate(gt, dt, iou_type, image_ids=images, category_ids=cats, use_cats=False)
    assert_same(agnostic, reference_eval(gt, dt, iou_type, image_ids=images, category_ids=cats, use_cats=False))


def test_min_score_equals_dropping_the_results_first():
    gt, dt = make_dataset(10, n_images=10)
    kept = [d for d in dt if d["score"] >= 0.4]
    assert 0 < len(kept) < len(dt)
    result = evaluate(gt, dt, "segm", min_score=0.4)
    assert_same(result, reference_eval(gt, kept, "segm"))
    outcome = result.analysis().detections["outcome"]
    assert all(o == "not_evaluated" for o, d in zip(outcome, dt) if d["score"] < 0.4)


def test_convention_headline_ap_at_the_largest_cap_when_100_is_not_a_cap():
    gt, dt = make_dataset(3)
    result = evaluate(gt, dt, "segm", max_dets=(1, 5))
    reference = reference_eval(gt, dt, "segm", max_dets=(1, 5, 100))
    assert result.stats["AP"] == -1  # pycocotools' summarize reads maxDets=100
    assert result.stats["AP@5"] == pytest.approx(np.mean(result.precision[..., 0, -1][result.precision[..., 0, -1] > -1]))
    assert result.stats["AP@5"] == pytest.approx(
        np.mean(reference.eval["precision"][..., 0, 1][reference.eval["precision"][..., 0, 1] > -1]))
    first = result.summary().splitlines()[0]
    assert "maxDets=  5 ]" in first and first.endswith(f"{result.stats['AP@5']:0.3f}")
    assert "hard-codes maxDets=100" in result.summary()
    assert "hard-codes" not in evaluate(gt, dt, "segm").summary()
    assert evaluate(gt, dt, "segm").stats["AP@100"] == evaluate(gt, dt, "segm").stats["AP"]


@pytest.mark.parametrize("workers", [2, 3])
def test_image_shards_in_processes_give_the_same_arrays(workers):
    gt, dt = make_dataset(12, n_images=14, max_dt=16)
    single = evaluate(gt, dt, "segm", workers=0)
    sharded = evaluate(gt, dt, "segm", workers=workers)
    assert_same(sharded, reference_eval(gt, dt, "segm"))
    for name in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(getattr(sharded, name), getattr(single, name))
    a, b = single.analysis(), sharded.analysis()
    for key in a.detections:
        np.testing.assert_array_equal(a.detections[key], b.detections[key])
    assert a.per_class == b.per_class or all(str(x) == str(y) for x, y in zip(a.per_class, b.per_class))


def test_image_shards_read_results_from_files(tmp_path):
    gt, dt = make_dataset(14, n_images=8)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    for iou_type in ("bbox", "segm"):
        sharded = evaluate(str(tmp_path / "gt.json"), str(tmp_path / "dt.json"), iou_type, workers=2)
        np.testing.assert_array_equal(sharded.precision, evaluate(gt, dt, iou_type).precision)


def test_numpy_and_pycocotools_backends_agree(monkeypatch):
    from segfuse.coco import _pipeline

    gt, dt = make_dataset(13, n_images=10)
    c_path = evaluate(gt, dt, "segm")
    monkeypatch.setattr(_pipeline, "backend_for", lambda iou_type: "numpy")
    numpy_path = evaluate(gt, dt, "segm")
    np.testing.assert_array_equal(c_path.precision, numpy_path.precision)
    np.testing.assert_array_equal(c_path.scores, numpy_path.scores)
    assert_same(numpy_path, reference_eval(gt, dt, "segm"))


def test_pycocotools_backend_batched_and_few_pair_paths_agree(monkeypatch):
    from segfuse.coco import _cmask

    if not _cmask.available():
        pytest.skip("pycocotools' C routines are not installed")
    gt, dt = make_dataset(15, n_images=10, max_dt=16)
    few = evaluate(gt, dt, "segm")
    monkeypatch.setattr(_cmask, "SMALL_PAIRS", 0)  # every image through the batched bookkeeping
    batched = evaluate(gt, dt, "segm")
    np.testing.assert_array_equal(few.precision, batched.precision)
    assert_same(batched, reference_eval(gt, dt, "segm"))


def test_default_parameters_are_shared_and_read_only():
    """make_params returns one frozen instance for the defaults; any argument gives a fresh one."""
    from segfuse.coco._params import make_params

    first, again = make_params("bbox"), make_params("bbox")
    assert first is again and first is not make_params("segm")
    assert make_params("bbox", max_dets=(1, 10, 100)) is not first
    assert make_params("bbox", dilation_ratio=0.03).dilation_ratio == 0.03
    assert not first.iou_thresholds.flags.writeable and not first.area_ranges.flags.writeable
    with pytest.raises(ValueError, match="iou_type"):
        make_params(["bbox"])

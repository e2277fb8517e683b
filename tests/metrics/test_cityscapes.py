"""segfuse.metrics.cityscapes against cityscapesscripts 2.3.0's evalPixelLevelSemanticLabeling."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segfuse.metrics import cityscapes as cs

SHAPE = (48, 64)
INSTANCE_LABELS = (24, 25, 26, 27, 28, 29, 30, 31, 32, 33)  # person .. bicycle, caravan and trailer included


def make_image(rng: np.random.Generator, shape=SHAPE):
    """Label ids (blocks of every id, 0..33), instance ids and a label-id prediction for one image."""
    blocks = rng.integers(0, cs.NUM_LABEL_IDS, (shape[0] // 8, shape[1] // 8))
    label_ids = np.kron(blocks, np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
    instance_ids = label_ids.astype(np.int32)
    for label in INSTANCE_LABELS:  # some blocks of instance classes become numbered instances
        cells = np.argwhere(blocks == label)
        for k, (row, col) in enumerate(cells[: max(len(cells) - 1, 0)]):
            block = (slice(8 * row, 8 * row + 8), slice(8 * col, 8 * col + 8 - int(rng.integers(0, 4))))
            instance_ids[block] = label * 1000 + k
    pred = label_ids.copy()
    wrong = rng.random(shape) < 0.3
    pred[wrong] = rng.integers(0, cs.NUM_LABEL_IDS, int(wrong.sum()))
    near = rng.random(shape) < 0.1  # confusions within a category (car <-> truck <-> caravan, person <-> rider)
    pred[near & (label_ids == 26)] = 29
    pred[near & (label_ids == 24)] = 25
    return label_ids, instance_ids, pred


def write_cityscapes(root: Path, count=3, seed=0, pred_ids="label"):
    """A Cityscapes-shaped tree: gtFine/val/<city>/*_gtFine_{labelIds,instanceIds}.png and flat predictions."""
    rng = np.random.default_rng(seed)
    gt_files, pred_files, images = [], [], []
    for i in range(count):
        city = ("frankfurt", "lindau", "munster")[i % 3]
        stem = f"{city}_{i:06d}_000019"
        folder = root / "gtFine" / "val" / city
        folder.mkdir(parents=True, exist_ok=True)
        label_ids, instance_ids, pred = make_image(rng)
        Image.fromarray(label_ids, mode="L").save(folder / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(instance_ids.astype(np.uint16)).save(folder / f"{stem}_gtFine_instanceIds.png")
        stored = cs.LABEL_ID_TO_TRAIN_ID[pred] if pred_ids == "train" else pred
        (root / "results").mkdir(exist_ok=True)
        Image.fromarray(stored.astype(np.uint8), mode="L").save(root / "results" / f"{stem}_leftImg8bit.png")
        gt_files.append(folder / f"{stem}_gtFine_labelIds.png")
        pred_files.append(root / "results" / f"{stem}_leftImg8bit.png")
        images.append((label_ids, instance_ids, pred))
    return gt_files, pred_files, images


def official_results(gt_files, pred_files, monkeypatch):
    """cityscapesscripts' evaluateImgLists on the files (np.in1d is np.isin under numpy 2)."""
    script = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    monkeypatch.setattr(np, "in1d", np.isin, raising=False)
    monkeypatch.setattr(script.args, "quiet", True)
    monkeypatch.setattr(script.args, "JSONOutput", False)
    monkeypatch.setattr(script.args, "evalInstLevelScore", True)
    return script.evaluateImgLists([str(p) for p in pred_files], [str(g) for g in gt_files], script.args)


def assert_table_equal(ours: dict, theirs: dict):
    for name, value in ours.items():
        if math.isnan(theirs[name]):
            assert math.isnan(value), name
        else:
            assert value == pytest.approx(theirs[name], abs=1e-9, rel=0), name


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_equal_cityscapesscripts(tmp_path, monkeypatch, seed):
    gt_files, pred_files, images = write_cityscapes(tmp_path, count=3, seed=seed)
    official = official_results(gt_files, pred_files, monkeypatch)
    metric = cs.CityscapesMetrics()
    for label_ids, instance_ids, pred in images:
        metric.update(pred, label_ids, instance_ids)
    scores = metric.compute()
    assert metric.confusion.tolist() == np.asarray(official["confMatrix"]).tolist()
    assert_table_equal(scores.class_iou, official["classScores"])
    assert_table_equal(scores.class_iiou, official["classInstScores"])
    assert_table_equal(scores.category_iou, official["categoryScores"])
    assert_table_equal(scores.category_iiou, official["categoryInstScores"])
    for ours, theirs in [("miou", "averageScoreClasses"), ("miiou", "averageScoreInstClasses"),
                         ("category_miou", "averageScoreCategories"), ("category_miiou", "averageScoreInstCategories")]:
        assert getattr(scores, ours) == pytest.approx(official[theirs], abs=1e-9, rel=0), ours
    assert not math.isnan(scores.miiou) and not math.isnan(scores.category_miiou)
    assert set(scores.category_iou) == set(official["categoryScores"]) - {"void"}


def test_convention_train_id_predictions_give_the_same_scores(tmp_path):
    rng = np.random.default_rng(3)
    metric_label, metric_train = cs.CityscapesMetrics("label"), cs.CityscapesMetrics("train")
    for _ in range(2):
        label_ids, instance_ids, pred = make_image(rng)
        pred = cs.TRAIN_ID_TO_LABEL_ID[cs.LABEL_ID_TO_TRAIN_ID[pred]]  # what a train-id model can predict
        metric_label.update(pred, label_ids, instance_ids)
        metric_train.update(cs.LABEL_ID_TO_TRAIN_ID[pred], label_ids, instance_ids)
    ours, theirs = metric_label.compute().to_dict(), metric_train.compute().to_dict()
    for key, value in ours.items():
        if isinstance(value, dict):
            assert_table_equal(theirs[key], value)
        else:
            assert theirs[key] == pytest.approx(value, abs=1e-12)


def test_convention_hand_computed_instance_weight():
    label_ids = np.full((4, 8), 26, dtype=np.uint8)  # all car
    instance_ids = np.full((4, 8), 26, dtype=np.int32)
    instance_ids[:, :4] = 26000  # one car instance of 16 pixels
    pred = np.full((4, 8), 26, dtype=np.uint8)
    pred[0, :4] = 27  # 4 of its pixels predicted truck (same category)
    metric = cs.CityscapesMetrics()
    metric.update(pred, label_ids, instance_ids)
    scores = metric.compute()
    weight = cs.AVERAGE_INSTANCE_SIZE["car"] / 16
    assert scores.class_iou["car"] == pytest.approx(28 / 32)
    assert scores.class_iiou["car"] == pytest.approx(12 * weight / (12 * weight + 4 * weight))
    assert scores.category_iiou["vehicle"] == pytest.approx(1.0)
    assert math.isnan(scores.class_iiou["road"]) and math.isnan(scores.class_iou["road"])


def test_bad_ids_raise_naming_the_argument():
    with pytest.raises(ValueError, match="gt must hold Cityscapes label ids"):
        cs.label_id_confusion(np.zeros((2, 2), np.uint8), np.full((2, 2), 40, np.uint8))
    with pytest.raises(ValueError, match="pred_ids must be"):
        cs.CityscapesMetrics("trainIds")

"""Semantic metrics against mmseg's IoUMetric, detectron2's SemSegEvaluator and torchmetrics.

Oracles, on real-shaped data (a 19-class Cityscapes-like set at 1024 x 2048 and a
150-class ADE20K-like set with ``reduce_zero_label``), built so that some classes are
predicted but absent from the truth and some are present but never predicted:

- mmseg: mmsegmentation 1.2.2's own ``IoUMetric.intersect_and_union`` and
  ``IoUMetric.total_area_to_metrics`` (mmseg/evaluation/metrics/iou_metric.py, loaded
  from the installed package with its registry import stubbed: ``import mmseg`` needs mmcv),
  and the IoUMetric class itself for its own test case;
- detectron2: ``SemSegEvaluator.process`` / ``evaluate`` (detectron2/evaluation/
  sem_seg_evaluation.py, facebookresearch/detectron2 main) re-derived below line by line,
  since detectron2 does not install here;
- torchmetrics 1.9: its Multiclass* classification metrics themselves.

Each is compared with ``segfuse.metrics`` and with ``segfuse eval --convention ...`` run
on mask files, on all means and the per-class vectors (NaN where the oracle has NaN).

Also ported: mmsegmentation v0.30.0 tests/test_metrics.py (the last release whose metric
tests check numbers; 1.2.2's tests/test_evaluation/test_metrics/test_iou_metric.py only
checks that ``evaluate`` returns a dict, ported too), with its ``legacy_*`` reference
functions copied as they are (np.float -> float) and 1.2.2's functions as the peer.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)

from segfuse.cli import main as segfuse_main
from segfuse.metrics import SemanticMetrics, semantic_metrics

IGNORE = 255


# ---- the oracles -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def mmseg_iou_metric():
    """mmseg 1.2.2's IoUMetric class, loaded from the installed file with ``mmseg.registry`` stubbed."""
    spec = importlib.util.find_spec("mmseg")
    path = Path(spec.submodule_search_locations[0]) / "evaluation" / "metrics" / "iou_metric.py"
    source = path.read_text()
    registry_import = "from mmseg.registry import METRICS"
    assert source.count(registry_import) == 1

    class Registry:
        def register_module(self, *args, **kwargs):
            return lambda cls: cls

    module = types.ModuleType("mmseg_iou_metric")
    module.METRICS = Registry()
    exec(compile(source.replace(registry_import, ""), str(path), "exec"), module.__dict__)
    return module.IoUMetric


def mmseg_reduce_zero_label(gt: np.ndarray) -> np.ndarray:
    """mmseg 1.2.2 datasets/transforms/loading.py LoadAnnotations._load_seg_map, reduce_zero_label."""
    gt_semantic_seg = gt.copy()
    gt_semantic_seg[gt_semantic_seg == 0] = 255
    gt_semantic_seg = gt_semantic_seg - 1
    gt_semantic_seg[gt_semantic_seg == 254] = 255
    return gt_semantic_seg


MMSEG_PER_CLASS = {"IoU": "iou", "Acc": "recall", "Dice": "dice", "Fscore": "fscore", "Precision": "precision",
                   "Recall": "recall"}
MMSEG_MEANS = {"aAcc": "acc", "mIoU": "miou", "mAcc": "macc", "mDice": "mdice", "mFscore": "mfscore",
               "mPrecision": "mprecision", "mRecall": "mrecall"}


def mmseg_metrics(preds, labels, num_classes, beta=1):
    """IoUMetric.process (per image) + compute_metrics (sum, total_area_to_metrics, nanmean), unrounded."""
    metric = mmseg_iou_metric()
    results = [
        metric.intersect_and_union(torch.from_numpy(pred).long(), torch.from_numpy(label).long(), num_classes, IGNORE)
        for pred, label in zip(preds, labels)
    ]
    totals = [sum(column) for column in zip(*results)]
    per_class = metric.total_area_to_metrics(*totals, metrics=["mIoU", "mDice", "mFscore"], beta=beta)
    means = {"aAcc": float(per_class["aAcc"])}
    means.update({f"m{name}": float(np.nanmean(per_class[name])) for name in MMSEG_PER_CLASS})
    return per_class, means


def detectron2_evaluate(preds, gts, num_classes):
    """detectron2 SemSegEvaluator.process + evaluate (mIoU, fwIoU, mACC, pACC, IoU-c, ACC-c), as fractions."""
    conf_matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for pred, gt in zip(preds, gts):
        pred = np.array(pred, dtype=int)
        gt = np.array(gt, dtype=int)
        gt[gt == IGNORE] = num_classes
        conf_matrix += np.bincount(
            (num_classes + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=conf_matrix.size
        ).reshape(conf_matrix.shape)
    acc = np.full(num_classes, np.nan, dtype=float)
    iou = np.full(num_classes, np.nan, dtype=float)
    tp = conf_matrix.diagonal()[:-1].astype(float)
    pos_gt = np.sum(conf_matrix[:-1, :-1], axis=0).astype(float)
    class_weights = pos_gt / np.sum(pos_gt)
    pos_pred = np.sum(conf_matrix[:-1, :-1], axis=1).astype(float)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = np.logical_and(acc_valid, union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    macc = np.sum(acc[acc_valid]) / np.sum(acc_valid)
    miou = np.sum(iou[iou_valid]) / np.sum(iou_valid)
    fiou = np.sum(iou[iou_valid] * class_weights[iou_valid])
    pacc = np.sum(tp) / np.sum(pos_gt)
    return {"mIoU": miou, "fwIoU": fiou, "mACC": macc, "pACC": pacc, "IoU": iou, "ACC": acc}


def torchmetrics_metrics(preds, labels, num_classes):
    """torchmetrics' macro means and per-class vectors (average=None) over all valid pixels."""
    pred = torch.from_numpy(np.stack(preds).astype(np.int64)).reshape(-1)
    target = torch.from_numpy(np.stack(labels).astype(np.int64)).reshape(-1)
    args = dict(num_classes=num_classes, ignore_index=IGNORE, validate_args=False)
    metrics = {"iou": MulticlassJaccardIndex, "dice": MulticlassF1Score, "fscore": MulticlassF1Score,
               "precision": MulticlassPrecision, "recall": MulticlassRecall}
    per_class = {name: cls(average=None, **args)(pred, target) for name, cls in metrics.items()}
    means = {f"m{name}": cls(average="macro", **args)(pred, target) for name, cls in metrics.items()}
    means["acc"] = MulticlassAccuracy(average="micro", **args)(pred, target)
    means["macc"] = MulticlassAccuracy(average="macro", **args)(pred, target)
    return per_class, means


# ---- real-shaped data ---------------------------------------------------------------------------


def blocky_labels(rng, shape, cell, weights):
    """Region-like label maps: a coarse random field of class ids, upsampled by ``cell`` (nearest)."""
    coarse = rng.choice(len(weights), size=(shape[0] // cell, shape[1] // cell), p=weights / weights.sum())
    return np.repeat(np.repeat(coarse, cell, 0), cell, 1)


def corrupt(rng, gt, labels, cell, fraction):
    """A prediction: ``gt`` with a ``fraction`` of ``cell``-blocks relabelled at random from ``labels``."""
    pred = gt.copy()
    rows, cols = gt.shape[0] // cell, gt.shape[1] // cell
    for index in rng.choice(rows * cols, size=int(fraction * rows * cols), replace=False):
        r, c = divmod(index, cols)
        pred[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = rng.choice(labels)
    return pred


@functools.lru_cache(maxsize=None)
def cityscapes_like():
    """2 images 1024 x 2048, 19 classes (trainIds), 255 = ignore. Class 16 (train) is predicted but
    never in the truth; class 17 (motorcycle) is in the truth but never predicted; class 18 nowhere."""
    rng = np.random.default_rng(2024)
    weights = np.array([30, 8, 20, 1, 1, 2, 0.5, 0.8, 14, 1.5, 4, 1, 0.3, 6, 0.4, 0.3, 0, 0.3, 0], float)
    gts, preds = [], []
    for _ in range(2):
        gt = blocky_labels(rng, (1024, 2048), 32, weights).astype(np.uint8)
        gt[:64] = IGNORE  # ego vehicle / border
        gt[rng.random(gt.shape) < 0.01] = IGNORE
        pred = corrupt(rng, np.where(gt == IGNORE, 0, gt), np.arange(17), 16, 0.12).astype(np.uint8)
        pred[pred == 17] = 13  # motorcycle always taken for a car
        gts.append(gt)
        preds.append(pred)
    return gts, preds, 19, False


@functools.lru_cache(maxsize=None)
def ade_like():
    """2 images 512 x 683 with 150 classes stored ADE-style (0 = other, 1..150): ``reduce_zero_label``.
    Classes 140..144 are predicted but never in the truth, 120..124 in the truth but never predicted,
    145..149 nowhere."""
    rng = np.random.default_rng(150)
    weights = np.concatenate([[5.0], 1.0 / np.arange(1, 141), np.zeros(10)])
    gts, preds = [], []
    for _ in range(2):
        raw = blocky_labels(rng, (512, 672), 16, weights)
        raw = np.pad(raw, ((0, 0), (0, 11)), mode="edge").astype(np.uint8)  # 683 wide
        reduced = mmseg_reduce_zero_label(raw)
        pred = corrupt(rng, np.where(reduced == IGNORE, 3, reduced), np.arange(145), 8, 0.3).astype(np.uint8)
        pred[(pred >= 120) & (pred < 125)] = 7
        gts.append(raw)
        preds.append(pred)
    return gts, preds, 150, True


DATASETS = {"cityscapes": cityscapes_like, "ade20k": ade_like}


def load(name):
    """(raw ground truths as stored, ground truths as scored, predictions, num_classes, reduce_zero_label)."""
    raw, preds, num_classes, reduce = DATASETS[name]()
    labels = [mmseg_reduce_zero_label(gt) for gt in raw] if reduce else raw
    return raw, labels, preds, num_classes, reduce


def check_the_data_has_the_hard_cases(labels, preds, num_classes):
    truth = np.bincount(np.concatenate([l[l != IGNORE] for l in labels]).astype(np.int64), minlength=num_classes)
    predicted = np.bincount(np.concatenate([p.reshape(-1) for p in preds]).astype(np.int64), minlength=num_classes)
    assert ((predicted > 0) & (truth == 0)).sum() >= 1, "no class predicted but absent from the truth"
    assert ((truth > 0) & (predicted == 0)).sum() >= 1, "no class present but never predicted"
    assert ((truth == 0) & (predicted == 0)).sum() >= 1, "no class absent from both"


def library_scores(labels, preds, num_classes, convention, **kwargs):
    metric = SemanticMetrics(num_classes, IGNORE, convention=convention, **kwargs)
    for pred, label in zip(preds, labels):
        metric.update(torch.from_numpy(pred)[None], torch.from_numpy(label)[None])
    return metric.compute()


@functools.lru_cache(maxsize=None)
def cli_report(name: str, convention: str, folder: str) -> dict:
    """metrics.json of ``segfuse eval --convention`` on the dataset written as PNG files."""
    raw, _, preds, num_classes, reduce = load(name)
    root = Path(folder) / name
    if not (root / "gt").exists():
        for side, masks in (("gt", raw), ("pred", preds)):
            (root / side).mkdir(parents=True)
            for i, mask in enumerate(masks):
                Image.fromarray(mask).save(root / side / f"image_{i}.png")
    out = root / f"report-{convention}"
    argv = ["eval", "--gt", str(root / "gt"), "--pred", str(root / "pred"), "--num-classes", str(num_classes),
            "--ignore-index", str(IGNORE), "--convention", convention, "--out", str(out), "--workers", "1", "--json"]
    assert segfuse_main(argv + (["--reduce-zero-label"] if reduce else [])) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp("reports"))


def from_json(value):
    return float("nan") if value is None else value


def report_vector(document, score):
    return np.array([from_json(document["per_class"][name][score]) for name in document["class_names"]])


# ---- mmseg IoUMetric ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cityscapes", "ade20k"])
def test_mmseg_convention_equals_iou_metric_library_and_cli(name, report_folder):
    raw, labels, preds, num_classes, _ = load(name)
    check_the_data_has_the_hard_cases(labels, preds, num_classes)
    per_class, means = mmseg_metrics(preds, labels, num_classes)
    ours = library_scores(labels, preds, num_classes, "mmseg")
    document = cli_report(name, "mmseg", report_folder)
    assert document["convention"] == "mmseg"
    for theirs, segfuse in MMSEG_MEANS.items():
        assert float(getattr(ours, segfuse)) == pytest.approx(means[theirs], abs=1e-6), theirs
        assert from_json(document["metrics"][segfuse]) == pytest.approx(means[theirs], abs=1e-6), theirs
    for theirs, segfuse in MMSEG_PER_CLASS.items():
        expected = np.asarray(per_class[theirs], dtype=np.float64)
        np.testing.assert_allclose(getattr(ours, segfuse).numpy(), expected, atol=1e-6, rtol=0, err_msg=theirs)
        np.testing.assert_allclose(report_vector(document, segfuse), expected, atol=1e-6, rtol=0, err_msg=theirs)
    # NaN where mmseg has NaN: F of every class with TP = 0, recall of classes absent from the truth
    assert np.isnan(per_class["Fscore"]).sum() > np.isnan(per_class["IoU"]).sum()


@pytest.mark.parametrize("name", ["cityscapes", "ade20k"])
def test_default_convention_differs_from_mmseg_only_in_f_where_tp_is_zero(name):
    """segfuse's own F is (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP): 0, not NaN, when TP = 0 < FP + FN."""
    _, labels, preds, num_classes, _ = load(name)
    per_class, means = mmseg_metrics(preds, labels, num_classes)
    ours = library_scores(labels, preds, num_classes, "segfuse")
    for theirs, segfuse in MMSEG_PER_CLASS.items():
        if theirs != "Fscore":
            np.testing.assert_allclose(getattr(ours, segfuse).numpy(), per_class[theirs], atol=1e-6, rtol=0)
    differ = np.isnan(per_class["Fscore"]) & ~np.isnan(ours.fscore.numpy())
    assert differ.any() and (ours.fscore.numpy()[differ] == 0).all()
    assert float(ours.mfscore) < means["mFscore"]


def test_mmseg_f_beta_and_nan_to_num_are_zero_division():
    _, labels, preds, num_classes, _ = load("cityscapes")
    labels, preds = [l[:256, :512] for l in labels], [p[:256, :512] for p in preds]
    metric = mmseg_iou_metric()
    totals = [sum(c) for c in zip(*(metric.intersect_and_union(torch.from_numpy(p).long(), torch.from_numpy(l).long(),
                                                                num_classes, IGNORE) for p, l in zip(preds, labels)))]
    for beta, nan_to_num in ((2, None), (0.5, 0), (1, 1)):
        expected = metric.total_area_to_metrics(*totals, metrics=["mIoU", "mDice", "mFscore"], nan_to_num=nan_to_num,
                                                beta=beta)
        zero_division = "nan" if nan_to_num is None else nan_to_num
        ours = library_scores(labels, preds, num_classes, "mmseg", beta=beta, zero_division=zero_division)
        for theirs, segfuse in MMSEG_PER_CLASS.items():
            np.testing.assert_allclose(getattr(ours, segfuse).numpy(), expected[theirs], atol=1e-6, rtol=0)
        assert float(ours.mfscore) == pytest.approx(float(np.nanmean(expected["Fscore"])), abs=1e-6)


# ---- detectron2 SemSegEvaluator -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cityscapes", "ade20k"])
def test_detectron2_convention_equals_sem_seg_evaluator_library_and_cli(name, report_folder):
    _, labels, preds, num_classes, _ = load(name)
    expected = detectron2_evaluate(preds, labels, num_classes)
    ours = library_scores(labels, preds, num_classes, "detectron2")
    document = cli_report(name, "detectron2", report_folder)
    assert document["convention"] == "detectron2"
    pairs = {"mIoU": "miou", "fwIoU": "fwiou", "mACC": "macc", "pACC": "acc"}
    for theirs, segfuse in pairs.items():
        assert float(getattr(ours, segfuse)) == pytest.approx(expected[theirs], abs=1e-6), theirs
        assert from_json(document["metrics"][segfuse]) == pytest.approx(expected[theirs], abs=1e-6), theirs
    for theirs, segfuse in (("IoU", "iou"), ("ACC", "recall")):
        np.testing.assert_allclose(getattr(ours, segfuse).numpy(), expected[theirs], atol=1e-6, rtol=0)
        np.testing.assert_allclose(report_vector(document, segfuse), expected[theirs], atol=1e-6, rtol=0)
    # the class predicted but absent from the truth: IoU 0 under mmseg / segfuse, left out by detectron2
    default = library_scores(labels, preds, num_classes, "segfuse")
    left_out = np.isnan(expected["IoU"]) & ~np.isnan(default.iou.numpy())
    assert left_out.any() and (default.iou.numpy()[left_out] == 0).all()


# ---- torchmetrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cityscapes", "ade20k"])
def test_torchmetrics_convention_equals_torchmetrics_library_and_cli(name, report_folder):
    _, labels, preds, num_classes, _ = load(name)
    per_class, means = torchmetrics_metrics(preds, labels, num_classes)
    ours = library_scores(labels, preds, num_classes, "torchmetrics")
    document = cli_report(name, "torchmetrics", report_folder)
    assert document["convention"] == "torchmetrics"
    for segfuse, expected in means.items():
        assert float(getattr(ours, segfuse)) == pytest.approx(float(expected), abs=1e-6), segfuse
        assert from_json(document["metrics"][segfuse]) == pytest.approx(float(expected), abs=1e-6), segfuse
    absent_from_both = torch.isnan(ours.iou)
    assert absent_from_both.any()  # NaN with the default zero_division; torchmetrics prints 0 (average=None)
    for segfuse, expected in per_class.items():
        vector = getattr(ours, segfuse)
        torch.testing.assert_close(vector.nan_to_num(0.0), expected.double(), atol=1e-6, rtol=0)
        np.testing.assert_allclose(report_vector(document, segfuse), vector.numpy(), atol=1e-6, rtol=0)
    exact = library_scores(labels, preds, num_classes, "torchmetrics", zero_division=0)
    for segfuse, expected in per_class.items():
        torch.testing.assert_close(getattr(exact, segfuse), expected.double(), atol=1e-6, rtol=0)


# ---- ported: mmsegmentation v0.30.0 tests/test_metrics.py ------------------------------------------


def get_confusion_matrix(pred_label, label, num_classes, ignore_index):
    """mmseg v0.30.0 tests/test_metrics.py, as it is."""
    mask = label != ignore_index
    pred_label = pred_label[mask]
    label = label[mask]
    n = num_classes
    inds = n * label + pred_label
    mat = np.bincount(inds, minlength=n**2).reshape(n, n)
    return mat


def legacy_mean_iou(results, gt_seg_maps, num_classes, ignore_index):
    """mmseg v0.30.0 tests/test_metrics.py, as it is."""
    num_imgs = len(results)
    assert len(gt_seg_maps) == num_imgs
    total_mat = np.zeros((num_classes, num_classes), dtype=float)
    for i in range(num_imgs):
        mat = get_confusion_matrix(results[i], gt_seg_maps[i], num_classes, ignore_index=ignore_index)
        total_mat += mat
    all_acc = np.diag(total_mat).sum() / total_mat.sum()
    acc = np.diag(total_mat) / total_mat.sum(axis=1)
    iou = np.diag(total_mat) / (total_mat.sum(axis=1) + total_mat.sum(axis=0) - np.diag(total_mat))
    return all_acc, acc, iou


def legacy_mean_dice(results, gt_seg_maps, num_classes, ignore_index):
    """mmseg v0.30.0 tests/test_metrics.py, as it is."""
    num_imgs = len(results)
    assert len(gt_seg_maps) == num_imgs
    total_mat = np.zeros((num_classes, num_classes), dtype=float)
    for i in range(num_imgs):
        mat = get_confusion_matrix(results[i], gt_seg_maps[i], num_classes, ignore_index=ignore_index)
        total_mat += mat
    all_acc = np.diag(total_mat).sum() / total_mat.sum()
    acc = np.diag(total_mat) / total_mat.sum(axis=1)
    dice = 2 * np.diag(total_mat) / (total_mat.sum(axis=1) + total_mat.sum(axis=0))
    return all_acc, acc, dice


def f_score(precision, recall, beta=1):
    """mmseg v0.30.0 mmseg/core/evaluation/metrics.py f_score (used by the legacy reference)."""
    score = (1 + beta**2) * (precision * recall) / ((beta**2 * precision) + recall)
    return score


def legacy_mean_fscore(results, gt_seg_maps, num_classes, ignore_index, beta=1):
    """mmseg v0.30.0 tests/test_metrics.py, as it is."""
    num_imgs = len(results)
    assert len(gt_seg_maps) == num_imgs
    total_mat = np.zeros((num_classes, num_classes), dtype=float)
    for i in range(num_imgs):
        mat = get_confusion_matrix(results[i], gt_seg_maps[i], num_classes, ignore_index=ignore_index)
        total_mat += mat
    all_acc = np.diag(total_mat).sum() / total_mat.sum()
    recall = np.diag(total_mat) / total_mat.sum(axis=1)
    precision = np.diag(total_mat) / total_mat.sum(axis=0)
    fv = np.vectorize(f_score)
    fscore = fv(precision, recall, beta=beta)
    return all_acc, recall, precision, fscore


def segfuse_mmseg(results, labels, num_classes, beta=1.0):
    return semantic_metrics(torch.from_numpy(results), torch.from_numpy(labels), num_classes, ignore_index=IGNORE,
                            beta=beta, convention="mmseg")


def random_case(seed, classes_pred=19, classes_label=19, ignore=True):
    """The inputs of the v0.30.0 cases (pred_size (10, 30, 30), np.random), seeded."""
    rng = np.random.RandomState(seed)
    results = rng.randint(0, classes_pred, size=(10, 30, 30))
    label = rng.randint(0, classes_label, size=(10, 30, 30))
    if ignore:
        label[:, 2, 5:10] = IGNORE  # Test the availability of arg: ignore_index.
    return results, label


@pytest.mark.parametrize("seed", range(2))
def test_mmseg_v030_test_metrics_miou_mdice_mfscore(seed):
    """tests/test_metrics.py::test_metrics, first part (and test_mean_iou / test_mean_dice / test_mean_fscore)."""
    num_classes = 19
    results, label = random_case(seed)
    ours = segfuse_mmseg(results, label, num_classes)
    all_acc_l, acc_l, iou_l = legacy_mean_iou(results, label, num_classes, IGNORE)
    assert float(ours.acc) == pytest.approx(all_acc_l, abs=1e-12)
    assert np.allclose(ours.recall.numpy(), acc_l) and np.allclose(ours.iou.numpy(), iou_l)
    _, acc_l, dice_l = legacy_mean_dice(results, label, num_classes, IGNORE)
    assert np.allclose(ours.dice.numpy(), dice_l)
    for beta in (1, 2):  # test_mean_fscore checks beta=2 as well
        _, recall_l, precision_l, fscore_l = legacy_mean_fscore(results, label, num_classes, IGNORE, beta=beta)
        scores = segfuse_mmseg(results, label, num_classes, beta=float(beta))
        assert np.allclose(scores.recall.numpy(), recall_l) and np.allclose(scores.precision.numpy(), precision_l)
        assert np.allclose(scores.fscore.numpy(), fscore_l)
    # the peer itself (1.2.2) on the same input
    metric = mmseg_iou_metric()
    areas = [metric.intersect_and_union(torch.from_numpy(r), torch.from_numpy(l), num_classes, IGNORE)
             for r, l in zip(results, label)]
    expected = metric.total_area_to_metrics(*[sum(a) for a in zip(*areas)], metrics=["mIoU", "mDice", "mFscore"])
    assert np.allclose(ours.iou.numpy(), expected["IoU"]) and np.allclose(ours.fscore.numpy(), expected["Fscore"])


def test_mmseg_v030_test_metrics_num_classes_larger_than_the_labels():
    """tests/test_metrics.py::test_metrics, 'num_classes is larger than the maximum value of input maps'.

    mmseg passes nan_to_num=-1 and asserts -1 for the last class (absent from both). segfuse's
    zero_division is 'nan', 0 or 1 (no -1 sentinel, see STYLE.md): the same class is NaN, left
    out of the means, and 0 or 1 with zero_division (mmseg's nan_to_num=0 / 1).
    """
    num_classes = 19
    results, label = random_case(7, classes_pred=5, classes_label=4, ignore=False)
    ours = segfuse_mmseg(results, label, num_classes)
    for name in ("recall", "iou", "dice", "precision", "fscore"):  # acc, iou, dice, precision, recall, fscore [-1]
        assert torch.isnan(getattr(ours, name)[-1])
    zero = semantic_metrics(torch.from_numpy(results), torch.from_numpy(label), num_classes, convention="mmseg",
                            zero_division=0)
    assert zero.iou[-1] == 0 and zero.recall[-1] == 0 and zero.fscore[-1] == 0


def test_mmseg_v030_test_metrics_histc_bug():
    """tests/test_metrics.py::test_metrics, 'the bug which is caused by torch.histc': no NaN IoU."""
    results = np.array([np.repeat(31, 59)])
    label = np.array([np.arange(59)])
    ours = segfuse_mmseg(results, label, 59)
    assert not np.any(np.isnan(ours.iou.numpy()))


def test_mmseg_v030_test_filename_inputs(tmp_path):
    """tests/test_metrics.py::test_filename_inputs: predictions as .npy files, labels as PNG files."""
    num_classes = 19
    results, labels = random_case(11)
    for i, (result, label) in enumerate(zip(results, labels)):
        np.save(tmp_path / f"pred-{i}.npy", result)
        Image.fromarray(label.astype(np.uint8)).save(tmp_path / f"label-{i}.png")
    loaded = [(np.load(tmp_path / f"pred-{i}.npy"), np.array(Image.open(tmp_path / f"label-{i}.png")))
              for i in range(len(results))]
    ours = SemanticMetrics(num_classes, IGNORE, convention="mmseg")
    for result, label in loaded:
        ours.update(torch.from_numpy(result), torch.from_numpy(label))
    all_acc_l, acc_l, iou_l = legacy_mean_iou(results, labels, num_classes, IGNORE)
    scores = ours.compute()
    assert float(scores.acc) == pytest.approx(all_acc_l, abs=1e-12)
    assert np.allclose(scores.recall.numpy(), acc_l) and np.allclose(scores.iou.numpy(), iou_l)


# ---- ported: mmsegmentation 1.2.2 tests/test_evaluation/test_metrics/test_iou_metric.py -----------


def test_mmseg_122_test_iou_metric_test_evaluate():
    """TestIoUMetric.test_evaluate: IoUMetric(iou_metrics=['mIoU']) on 2 random 64 x 64 samples, 5 classes.

    The peer only checks that ``evaluate`` returns a dict; here its rounded output (percent,
    2 decimals, computed by the IoUMetric class itself) must equal segfuse's, rounded alike.
    """
    rng = np.random.RandomState(0)
    generator = torch.Generator().manual_seed(0)
    classes = ["wall", "building", "sky", "floor", "tree"]
    samples = []
    for _ in range(2):
        gt = torch.LongTensor(rng.randint(0, 5, (1, 64, 64), dtype=np.uint8))
        pred = torch.randint(0, 5, (1, 64, 64), generator=generator)
        samples.append({"gt_sem_seg": {"data": gt}, "pred_sem_seg": {"data": pred}, "img_path": "00000_img.jpg"})
    iou_metric = mmseg_iou_metric()(iou_metrics=["mIoU"])
    iou_metric.dataset_meta = dict(classes=classes, label_map=dict(), reduce_zero_label=False)
    iou_metric.process([0] * len(samples), samples)
    result = iou_metric.evaluate(2)
    assert isinstance(result, dict)
    ours = SemanticMetrics(5, IGNORE, convention="mmseg")
    for sample in samples:
        ours.update(sample["pred_sem_seg"]["data"], sample["gt_sem_seg"]["data"])
    scores = ours.compute()
    for theirs, segfuse in (("aAcc", "acc"), ("mIoU", "miou"), ("mAcc", "macc")):
        assert result[theirs] == pytest.approx(round(float(getattr(scores, segfuse)) * 100, 2), abs=1e-9)

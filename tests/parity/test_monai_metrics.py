"""MONAI's own metric test cases, ported: inputs, arguments and expected numbers copied.

Peer: Project-MONAI/MONAI, tests/metrics/test_compute_meandice.py, test_compute_meaniou.py and
test_compute_confusion_matrix.py at commit d388d1c6f (2025-06-13; the installed monai is
1.6.1). The harness is ours. MONAI's inputs are one-hot / multi-hot masks (N, C, H, W);
segfuse takes them as they are (``mask_overlap_counts``, ``SemanticMetrics.update``).

How MONAI's settings map onto segfuse:
- ``DiceMetric`` / ``MeanIoU`` / ``compute_dice`` / ``compute_iou`` with ``ignore_empty=True``
  (their default): ``convention="monai"``; ``reduction="mean"`` is its per-image mean
  (``mdice`` / ``miou``), ``"mean_batch"`` its per-class vector, ``"none"`` the per-image
  scores of ``semantic_scores`` on per-image counts, ``"sum_batch"`` and ``not_nans`` its
  state sums (``SemanticMetrics.sums``: ``class_sums`` / ``class_counts``).
- ``ignore_empty=False``: ``convention="segfuse"`` with ``zero_division=1`` per image (an empty
  truth scores 1 if the prediction is empty too, else 0, which is the score's own value).
- ``include_background=False``: the channels from 1 on (MONAI drops channel 0 of both inputs).
- ``ConfusionMatrixMetric(compute_sample=True)``: ``convention="segfuse"``, ``per_image=True``,
  ``per_image_average="image"``; its ``"tpr"`` / ``"ppv"`` / ``"f1"`` / ``"ts"`` are recall,
  precision, F1 and IoU. MONAI's 13 other confusion-matrix metrics (fpr, tnr, npv, fnr, fdr,
  for, pt, acc, ba, mcc, fm, bm, mk) use true negatives, which segfuse's semantic scores do
  not; those 26 parametrised cases (and the ``tnr`` NaN cases) are not ported.

Deliberate difference, asserted where it shows: where no image defines a class, MONAI's
aggregate returns 0 with ``not_nans`` = 0; segfuse returns NaN (an undefined score is not a
zero score) and its count of defining images is 0 as well. ``zero_division=0`` turns it into 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segfuse.metrics import SemanticMetrics, mask_overlap_counts, semantic_metrics, semantic_scores
from segfuse.metrics.scores import CLASS_SCORES

# ---- tests/metrics/test_compute_meandice.py and test_compute_meaniou.py: shared inputs ----------

Y_PRED_1 = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
Y_1 = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
Y_PRED_2 = torch.tensor(
    [
        [[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]],
        [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]],
    ]
)
Y_2 = torch.tensor(
    [
        [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]],
        [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]],
    ]
)
Y_PRED_3 = torch.tensor(
    [
        [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
        [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
    ]
)
Y_3 = torch.tensor(
    [
        [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
        [[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]],
    ]
)
Y_PRED_4 = torch.tensor(  # TEST_CASE_4 .. 8 and 13 .. 15
    [
        [[[1.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]],
        [[[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]],
    ]
)
Y_4 = torch.tensor(  # TEST_CASE_4, 5, 13, 14, 15
    [
        [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
        [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]],
    ]
)
Y_6 = torch.tensor(  # TEST_CASE_6, 7, 8
    [
        [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
        [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
    ]
)

# Expected values, per file: {case: expected} (MONAI compares with atol=1e-4).
EXPECTED = {
    "dice": {
        "TEST_CASE_1": [[0.8]],
        "TEST_CASE_2": [[0.5000, 0.0000], [0.6667, 0.6667]],
        "TEST_CASE_4": [0.6786, 0.4000, 0.6667],
        "TEST_CASE_5": 0.689683,
        "TEST_CASE_6": [1.7143, 0.0000, 0.0000],
        "TEST_CASE_7": 0.857143,
        "TEST_CASE_8": [0.0000, 0.0000],
        "TEST_CASE_13": {"bg": 0.6786, "fg0": 0.4000, "fg1": 0.6667},
        "TEST_CASE_14": {"label_0": 0.6786, "label_1": 0.4000, "label_2": 0.6667},
        "TEST_CASE_15": {"label_1": 0.4000, "label_2": 0.6667},
    },
    "iou": {
        "TEST_CASE_1": [[0.6667]],
        "TEST_CASE_2": [[0.3333, 0.0000], [0.5000, 0.5000]],
        "TEST_CASE_4": [0.5416, 0.2500, 0.5000],
        "TEST_CASE_5": 0.5555,
        "TEST_CASE_6": [1.5000, 0.0000, 0.0000],
        "TEST_CASE_7": 0.7500,
        "TEST_CASE_8": [0.0000, 0.0000],
    },
}
MONAI_FILE = {"dice": "test_compute_meandice.py", "iou": "test_compute_meaniou.py"}
ATOL = 1e-4


def per_image(y_pred, y, **kwargs):
    """MONAI's compute_dice / compute_iou (reduction "none"): scores (N, C) of per-image counts."""
    return semantic_scores(mask_overlap_counts(y_pred, y, per_image=True), **kwargs)


def streaming(y_pred, y, class_names=None):
    """DiceMetric / MeanIoU(include_background=True): one update, then compute()."""
    metric = SemanticMetrics(y.shape[1], convention="monai", class_names=class_names)
    metric.update(y_pred, y)
    return metric, metric.compute()


def no_background(tensor):
    return tensor[:, 1:]


def close(actual, expected):
    np.testing.assert_allclose(torch.as_tensor(actual, dtype=torch.float64).numpy(), expected, atol=ATOL)


# ---- compute_dice / compute_iou (test_value, test_nans) --------------------------------------------


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_1_keep_background(score):
    """TEST_CASE_1 (test_value, test_value_class): y (1, 1, 2, 2), include_background=True."""
    close(getattr(per_image(Y_PRED_1, Y_1, convention="monai"), score), EXPECTED[score]["TEST_CASE_1"])


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_2_remove_background(score):
    """TEST_CASE_2 (test_value, test_value_class): include_background=False."""
    result = per_image(no_background(Y_PRED_2), no_background(Y_2), convention="monai")
    close(getattr(result, score), EXPECTED[score]["TEST_CASE_2"])


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_3_nan_for_empty_ground_truth(score):
    """TEST_CASE_3 (test_nans): NaN where a class is absent from the image's truth, even when predicted."""
    result = getattr(per_image(Y_PRED_3, Y_3, convention="monai"), score)
    assert torch.isnan(result).tolist() == [[False, True, True], [False, False, True]]
    # the segfuse convention scores class 2 of both images (predicted, not in the truth) 0, not NaN
    default = getattr(per_image(Y_PRED_3, Y_3), score)
    assert torch.isnan(default).tolist() == [[False, True, False], [False, False, False]] and (default[:, 2] == 0).all()


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_9_and_10_all_ones(score):
    """TEST_CASE_9 (tensors) and TEST_CASE_10 (lists of (C, H, W), the class API): all ones -> 1."""
    ones = torch.ones((2, 2, 3, 3))
    close(getattr(per_image(ones, ones, convention="monai"), score), [[1.0, 1.0], [1.0, 1.0]])
    listed = [torch.ones((2, 3, 3)), torch.ones((2, 3, 3))]
    stacked = per_image(torch.stack(listed), torch.stack(listed), convention="monai")
    close(getattr(stacked, score), [[1.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_11_and_12_ignore_empty_false(score):
    """TEST_CASE_11 (empty truth, empty prediction -> 1) and TEST_CASE_12 (empty truth, full prediction -> 0)."""
    zeros, ones = torch.zeros((2, 2, 3, 3)), torch.ones((2, 2, 3, 3))
    close(getattr(per_image(zeros, zeros, zero_division=1), score), [[1.0, 1.0], [1.0, 1.0]])
    close(getattr(per_image(ones, zeros, zero_division=1), score), [[0.0, 0.0], [0.0, 0.0]])


# ---- DiceMetric / MeanIoU (test_nans_class) ---------------------------------------------------------


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_4_mean_batch(score):
    """TEST_CASE_4: reduction="mean_batch", get_not_nans=True: the per-class vector."""
    _, result = streaming(Y_PRED_4, Y_4)
    close(getattr(result, score), EXPECTED[score]["TEST_CASE_4"])


@pytest.mark.parametrize("score", ["dice", "iou"])
@pytest.mark.parametrize("case, y", [("TEST_CASE_5", Y_4), ("TEST_CASE_7", Y_6)])
def test_monai_test_case_5_and_7_mean(score, case, y):
    """TEST_CASE_5 / TEST_CASE_7: reduction="mean": each image's class mean, then the mean over images."""
    _, result = streaming(Y_PRED_4, y)
    close(getattr(result, "m" + score), EXPECTED[score][case])
    functional = semantic_metrics(Y_PRED_4, y, 3, convention="monai")
    close(getattr(functional, "m" + score), EXPECTED[score][case])


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_6_sum_batch(score):
    """TEST_CASE_6: reduction="sum_batch": the state's per-class sums; classes 1, 2 are empty in both images."""
    metric, result = streaming(Y_PRED_4, Y_6)
    row = CLASS_SCORES.index(score)
    close(metric.sums["class_sums"][row], EXPECTED[score]["TEST_CASE_6"])
    assert metric.sums["class_counts"][row].tolist() == [2, 0, 0]  # MONAI's not_nans
    assert torch.isnan(getattr(result, score)[1:]).all()  # MONAI's mean_batch would give 0 here


@pytest.mark.parametrize("score", ["dice", "iou"])
def test_monai_test_case_8_sum_batch_without_background(score):
    """TEST_CASE_8: include_background=False, reduction="sum_batch": [0, 0] (nothing to sum)."""
    metric = SemanticMetrics(2, convention="monai")
    metric.update(no_background(Y_PRED_4), no_background(Y_6))
    row = CLASS_SCORES.index(score)
    close(metric.sums["class_sums"][row], EXPECTED[score]["TEST_CASE_8"])
    assert metric.sums["class_counts"][row].tolist() == [0, 0]
    assert torch.isnan(getattr(metric.compute(), "m" + score))  # MONAI: 0 with not_nans 0
    zero = semantic_metrics(no_background(Y_PRED_4), no_background(Y_6), 2, convention="monai", zero_division=0)
    assert getattr(zero, "m" + score) == 0


@pytest.mark.parametrize(
    "case, names, background",
    [("TEST_CASE_13", ["bg", "fg0", "fg1"], True), ("TEST_CASE_14", None, True), ("TEST_CASE_15", None, False)],
)
def test_monai_meandice_test_case_13_to_15_return_with_label(case, names, background):
    """TEST_CASE_13 .. 15: return_with_label: per-class Dice keyed by class name (label_<c> by default)."""
    y_pred, y = (Y_PRED_4, Y_4) if background else (no_background(Y_PRED_4), no_background(Y_4))
    first = 0 if background else 1
    class_names = names or [f"label_{c}" for c in range(first, 3)]
    _, result = streaming(y_pred, y, class_names=class_names)
    per_class = result.to_dict()["per_class"]
    expected = EXPECTED["dice"][case]
    assert list(per_class) == list(expected)
    for name, value in expected.items():
        assert per_class[name]["dice"] == pytest.approx(value, abs=ATOL)


def test_monai_meandice_test_helper():
    """TestComputeMeanDice.test_helper on TEST_CASE_3 (DiceHelper, reduction "mean_batch").

    MONAI gives [0, 0, 0] with not_nans {0, 1, 2}: class 2 is empty in every image's truth, so
    MONAI's 0 is a mean over no image. segfuse gives NaN there and the same counts.
    """
    metric, result = streaming(Y_PRED_3, Y_3)  # DiceHelper(threshold=True): include_background=True
    close(result.dice[:2], [0.0, 0.0])
    assert torch.isnan(result.dice[2])
    assert sorted(metric.sums["class_counts"][CLASS_SCORES.index("dice")].tolist()) == [0, 1, 2]
    labels = Y_3.argmax(1)  # Y_3 is one-hot: its class map
    argmax = semantic_metrics(Y_PRED_3.argmax(1), labels, 3, convention="monai")  # apply_argmax=True
    close(argmax.dice[1:2], [0.0])  # include_background=False -> classes 1, 2: MONAI [0.0, 0.0]
    assert torch.isnan(argmax.dice[2])
    keepdim = semantic_metrics(Y_PRED_3.argmax(1, keepdim=True), Y_3.argmax(1, keepdim=True), 3, convention="monai")
    close(keepdim.dice[:2], [0.0, 0.0])  # class indices (N, 1, H, W), num_classes=3: MONAI [0, 0, 0]
    assert torch.isnan(keepdim.dice[2])


# ---- tests/metrics/test_compute_confusion_matrix.py ---------------------------------------------------

DATA_Y_PRED = Y_PRED_2
DATA_Y = Y_2
DATA_NAN_Y_PRED = torch.tensor(
    [
        [[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]],
        [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
        [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
    ]
)
DATA_NAN_Y = torch.tensor(
    [
        [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]],
        [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
        [[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]],
    ]
)
TEST_CASE_CONFUSION_MATRIX = torch.tensor(  # [tp, fp, tn, fn] per image and class
    [
        [[0.0, 1.0, 2.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 2.0, 1.0]],
        [[1.0, 0.0, 3.0, 0.0], [1.0, 0.0, 2.0, 1.0], [1.0, 1.0, 2.0, 0.0]],
    ]
)
# result_mean_batch / result_mean rows for the metric names segfuse scores (of MONAI's 17)
RESULT_MEAN_BATCH = {
    "tpr": [0.5000, 0.5000, 0.5000],
    "ppv": [0.5000, 0.7500, 0.2500],
    "ts": [0.5000, 0.4167, 0.2500],
    "f1": [0.5000, 0.5833, 0.3333],
}
RESULT_MEAN = {"tpr": 0.5000, "ppv": 0.5000, "ts": 0.3889, "f1": 0.4722}
SEGFUSE_SCORE = {"tpr": "recall", "ppv": "precision", "ts": "iou", "f1": "fscore"}


def confusion_counts(y_pred, y):
    """MONAI's get_confusion_matrix columns from segfuse's counts; tn = pixels - tp - fp - fn."""
    tp, fp, fn = mask_overlap_counts(y_pred, y, per_image=True)
    pixels = y[0, 0].numel()
    return torch.stack([tp, fp, pixels - tp - fp - fn, fn], dim=-1).to(torch.float32)


def test_monai_confusion_matrix_test_value():
    """TEST_CASE_CONFUSION_MATRIX (test_value), with and without the background."""
    close(confusion_counts(DATA_Y_PRED, DATA_Y), TEST_CASE_CONFUSION_MATRIX)
    close(confusion_counts(no_background(DATA_Y_PRED), no_background(DATA_Y)), TEST_CASE_CONFUSION_MATRIX[:, 1:, :])
    assert mask_overlap_counts(DATA_Y_PRED, DATA_Y, per_image=True).tp.dtype == torch.int64


@pytest.mark.parametrize("metric_name", list(SEGFUSE_SCORE))
@pytest.mark.parametrize("reduction", ["mean", "mean_batch"])
def test_monai_confusion_matrix_test_compute_sample(metric_name, reduction):
    """TEST_CASES_COMPUTE_SAMPLE for tpr / ppv / ts / f1 (compute_sample=True, include_background=True)."""
    score = SEGFUSE_SCORE[metric_name]
    metric = SemanticMetrics(3, per_image=True, per_image_average="image")
    metric.update(DATA_Y_PRED, DATA_Y)
    result = metric.compute()
    if reduction == "mean":
        close(getattr(result, "m" + score), RESULT_MEAN[metric_name])
    else:
        close(getattr(result, score), RESULT_MEAN_BATCH[metric_name])


@pytest.mark.parametrize("reduction", ["mean", "mean_batch"])
def test_monai_confusion_matrix_test_compute_sample_multiple_metrics(reduction):
    """TEST_CASES_COMPUTE_SAMPLE_MULTI_METRICS, restricted to tpr / ppv / ts / f1: one update, every score."""
    result = semantic_metrics(DATA_Y_PRED, DATA_Y, 3, per_image=True, per_image_average="image")
    for metric_name, score in SEGFUSE_SCORE.items():
        if reduction == "mean":
            close(getattr(result, "m" + score), RESULT_MEAN[metric_name])
        else:
            close(getattr(result, score), RESULT_MEAN_BATCH[metric_name])


@pytest.mark.parametrize(
    "reduction, expected, not_nans", [("sum", [0.5000], [6]), ("sum_batch", [0.0000, 0.5000, 0.0000], [3.0, 2.0, 1.0])]
)
def test_monai_confusion_matrix_test_compute_sample_with_nan_tpr(reduction, expected, not_nans):
    """TEST_CASES_COMPUTE_SAMPLE_NAN for "tpr": recall sums and not_nans of data_nan (three images)."""
    metric = SemanticMetrics(3, per_image=True)
    metric.update(DATA_NAN_Y_PRED, DATA_NAN_Y)
    row = CLASS_SCORES.index("recall")
    sums, counts = metric.sums["class_sums"][row], metric.sums["class_counts"][row]
    if reduction == "sum":
        sums, counts = sums.sum(0, keepdim=True), counts.sum(0, keepdim=True)
    close(sums, expected)
    close(counts, not_nans)


def test_monai_confusion_matrix_test_clf_with_nan():
    """TEST_CASES_CLF: classification rows (N, C); [tp, fp, tn, fn] per sample, then "mean_channel" tpr.

    compute_sample=False with reduction "mean_channel" pools the classes of each sample before
    the ratio: sum tp / (sum tp + sum fn), which is segfuse's per-image aAcc of one-hot rows.
    """
    y_pred = torch.tensor([[1, 0, 0], [0, 0, 1]]).bool()
    y = torch.tensor([[1, 0, 0], [0, 1, 0]])
    result_clf = torch.tensor(
        [
            [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]],
            [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]],
        ]
    )
    tp, fp, fn = mask_overlap_counts(y_pred, y, per_image=True)
    close(torch.stack([tp, fp, 1 - tp - fp - fn, fn], dim=-1), result_clf)
    pooled = result_clf.sum(1)  # do_metric_reduction(result_clf, "mean_channel") up to a common factor
    expected_tpr = pooled[:, 0] / (pooled[:, 0] + pooled[:, 3])
    close(semantic_scores(mask_overlap_counts(y_pred, y, per_image=True)).acc, expected_tpr)


def test_monai_confusion_matrix_test_precision():
    """TEST_CASE_PRECISION: 1 x 1 x 1024 x 1024 x 44 zeros: tn = 46137344 exactly (counts are int64).

    The zeros are bool here (the same masks in a quarter of MONAI's float32 memory).
    """
    zeros = torch.zeros([1, 1, 1024, 1024, 44], dtype=torch.bool)
    tp, fp, fn = mask_overlap_counts(zeros, zeros, per_image=True)
    tn = zeros[0, 0].numel() - tp - fp - fn
    assert torch.stack([tp, fp, tn, fn], dim=-1).tolist() == [[[0, 0, 46137344, 0]]]

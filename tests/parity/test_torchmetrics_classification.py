"""torchmetrics' own classification test cases and doctests (Jaccard, PR curve, AP), ported.

Peer: Lightning-AI/torchmetrics v1.9.0 (the installed version):
tests/unittests/classification/test_jaccard.py, test_precision_recall_curve.py,
test_average_precision.py, and the doctests of src/torchmetrics/functional/classification/
{jaccard,precision_recall_curve,average_precision}.py (the class doctests in
src/torchmetrics/classification/ print the same numbers for the same inputs). Doctests run
after ``torch.manual_seed(42)`` (torchmetrics' src/conftest.py). The harness is ours.

How torchmetrics' settings map onto segfuse:
- Multiclass / binary Jaccard: ``semantic_metrics(..., convention="torchmetrics")``, with
  ``zero_division`` = torchmetrics' (0 by default); binary = the IoU of class 1 of 2; a binary
  probability is thresholded at torchmetrics' 0.5 first (segfuse scores class maps or argmax).
- Multilabel Jaccard: one-hot / multi-hot masks, dataset level.
- PR curves and AP: ``precision_recall_curve`` / ``average_precision``; binned mode is
  ``thresholds=T``; multiclass AP with ``convention="torchmetrics"``; multilabel = one binary
  problem per label (the harness loops over the labels).

Deliberate differences, asserted: segfuse's exact PR curve is scikit-learn's (SPEC 4), so a
class without positives has recall 1 at every threshold where torchmetrics has NaN (its AP is
NaN in both libraries). Not ported: the random-input ``MetricTester`` classes (they compare
with scikit-learn, as tests/metrics does), dtype / differentiability / wrapper-class tests
(torchmetrics' own plumbing), ``test_warning_on_no_positives`` (a warning text).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segfuse.metrics import (
    BinaryPRCurve,
    average_precision,
    precision_recall_curve,
    semantic_metrics,
    semantic_scores,
)

ATOL = 1e-4  # the doctests print 4 decimals


def close(actual, expected):
    np.testing.assert_allclose(torch.as_tensor(actual, dtype=torch.float64).numpy(), expected, atol=ATOL)


def close_nan(actual, expected):
    np.testing.assert_allclose(
        torch.as_tensor(actual, dtype=torch.float64).numpy(), np.array(expected, dtype=float), atol=ATOL, equal_nan=True
    )


MULTICLASS_PREDS = torch.tensor([[0.75, 0.05, 0.05, 0.05, 0.05],
                                 [0.05, 0.75, 0.05, 0.05, 0.05],
                                 [0.05, 0.05, 0.75, 0.05, 0.05],
                                 [0.05, 0.05, 0.05, 0.75, 0.05]])
MULTICLASS_TARGET = torch.tensor([0, 1, 3, 2])
MULTILABEL_PREDS = torch.tensor([[0.75, 0.05, 0.35],
                                 [0.45, 0.75, 0.05],
                                 [0.05, 0.55, 0.75],
                                 [0.05, 0.65, 0.05]])
MULTILABEL_TARGET = torch.tensor([[1, 0, 1],
                                  [0, 0, 0],
                                  [0, 1, 1],
                                  [1, 1, 1]])


# ---- tests/unittests/classification/test_jaccard.py ---------------------------------------------------


def test_jaccard_corner_case():
    """test_corner_case (torchmetrics issue 1693): class 2 absent from the target AND the prediction."""
    target = torch.tensor([0, 1, 0, 0])
    preds = torch.tensor([0, 1, 0, 1])
    res = semantic_metrics(preds, target, 3, convention="torchmetrics", zero_division=0)
    assert torch.allclose(res.iou.float(), torch.tensor([2.0 / 3.0, 0.5000, 0.0000]))  # average="none"
    assert torch.allclose(res.miou.float(), torch.tensor(0.5833333))  # average="macro"
    default = semantic_metrics(preds, target, 3, convention="torchmetrics")
    assert torch.isnan(default.iou[2]) and torch.allclose(default.miou.float(), torch.tensor(0.5833333))

    target = torch.tensor([0, 1])
    pred = torch.tensor([0, 1])
    out = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0]).float()
    res = semantic_metrics(pred, target, 10, convention="torchmetrics", zero_division=0)
    assert torch.allclose(res.miou.float(), torch.ones_like(res.miou.float()))
    assert torch.allclose(res.iou.float(), out)


def test_jaccard_index_zero_division():
    """test_jaccard_index_zero_division (issue 2658): _jaccard_index_reduce(confmat, average="binary")."""
    confmat = torch.tensor([[4, 0], [0, 0]])  # all pixels are background
    result = semantic_scores(confmat, convention="torchmetrics", zero_division=0).iou[1]
    assert result == 0.0, f"Expected 0.0, but got {result}"
    result = semantic_scores(confmat, convention="torchmetrics", zero_division=1).iou[1]
    assert result == 1.0, f"Expected 1.0, but got {result}"
    confmat = torch.tensor([[2, 1], [1, 1]])  # some foreground pixels
    result = semantic_scores(confmat, convention="torchmetrics", zero_division=0).iou[1]
    assert torch.isclose(result, torch.tensor(1 / 3, dtype=torch.float64))


def test_jaccard_doctests():
    """binary_jaccard_index, multiclass_jaccard_index, multilabel_jaccard_index and jaccard_index examples."""
    target = torch.tensor([1, 1, 0, 0])
    for preds in (torch.tensor([0, 1, 0, 0]), (torch.tensor([0.35, 0.85, 0.48, 0.01]) > 0.5).long()):
        close(semantic_metrics(preds, target, 2, convention="torchmetrics").iou[1], 0.5000)
    target = torch.tensor([2, 1, 0, 0])
    scores = torch.tensor([[0.16, 0.26, 0.58], [0.22, 0.61, 0.17], [0.71, 0.09, 0.20], [0.05, 0.82, 0.13]])
    for preds in (torch.tensor([2, 1, 0, 1]), scores):
        close(semantic_metrics(preds, target, 3, convention="torchmetrics").miou, 0.6667)
    target = torch.tensor([[0, 1, 0], [1, 0, 1]]).bool()
    probabilities = torch.tensor([[0.11, 0.22, 0.84], [0.73, 0.33, 0.92]])
    for preds in (torch.tensor([[0, 0, 1], [1, 0, 1]]).bool(), probabilities > 0.5):
        close(semantic_metrics(preds, target, 3, convention="torchmetrics").miou, 0.5000)
    with torch.random.fork_rng():
        torch.manual_seed(42)
        target = torch.randint(0, 2, (10, 25, 25))
    pred = target.clone()
    pred[2:5, 7:13, 9:15] = 1 - pred[2:5, 7:13, 9:15]
    close(semantic_metrics(pred, target, 2, convention="torchmetrics").miou, 0.9660)


# ---- tests/unittests/classification/test_precision_recall_curve.py + doctests -------------------------


@pytest.mark.parametrize("thresholds", [5, 10])
def test_precision_nan_when_no_preds_meet_threshold(thresholds):
    """If threshold > max(preds), precision should be NaN, recall should be 0.0."""
    preds = torch.tensor([0.1, 0.2, 0.3, 0.4])
    targets = torch.tensor([0, 1, 1, 0])
    metric = BinaryPRCurve(thresholds=thresholds)
    metric.update(preds, targets)
    precision, recall, thres = metric.compute()
    mask = thres > preds.max()
    precision_bins = precision[:-1]
    recall_bins = recall[:-1]
    assert torch.isnan(precision_bins[mask]).all(), f"Precision not NaN for thresholds {thres[mask]}"
    assert torch.all(recall_bins[mask] == 0.0), f"Recall not zero for thresholds {thres[mask]}"


def test_binary_precision_recall_curve_doctest():
    """binary_precision_recall_curve and BinaryPrecisionRecallCurve, exact and thresholds=5."""
    preds = torch.tensor([0, 0.5, 0.7, 0.8])
    target = torch.tensor([0, 1, 1, 0])
    precision, recall, thresholds = precision_recall_curve(preds, target, thresholds=None)
    close(precision, [0.5000, 0.6667, 0.5000, 0.0000, 1.0000])
    close(recall, [1.0000, 1.0000, 0.5000, 0.0000, 0.0000])
    close(thresholds, [0.0000, 0.5000, 0.7000, 0.8000])
    curve = BinaryPRCurve(thresholds=5)
    curve.update(preds, target)
    precision, recall, thresholds = curve.compute()
    close_nan(precision, [0.5000, 0.6667, 0.6667, 0.0000, np.nan, 1.0000])
    close(recall, [1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    close(thresholds, [0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
    # the legacy precision_recall_curve(task="binary") example
    precision, recall, thresholds = precision_recall_curve(torch.tensor([0, 0.1, 0.8, 0.4]), target)
    close(precision, [0.5000, 0.6667, 0.5000, 1.0000, 1.0000])
    close(recall, [1.0000, 1.0000, 0.5000, 0.5000, 0.0000])
    close(thresholds, [0.0000, 0.1000, 0.4000, 0.8000])


def test_multiclass_precision_recall_curve_doctest():
    """multiclass_precision_recall_curve, exact (a list per class) and thresholds=5.

    Class 4 has no positives: torchmetrics' exact curve has recall [nan, 0]; segfuse's is
    scikit-learn's, recall [1, 0] (SPEC 4). Everything else is equal.
    """
    curves = precision_recall_curve(MULTICLASS_PREDS, MULTICLASS_TARGET, thresholds=None)
    expected_precision = [[0.25, 1.0, 1.0], [0.25, 1.0, 1.0], [0.25, 0.0, 1.0], [0.25, 0.0, 1.0], [0.0, 1.0]]
    expected_recall = [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [np.nan, 0.0]]
    expected_thresholds = [[0.05, 0.75]] * 4 + [[0.05]]
    for c, curve in enumerate(curves):
        close(curve.precision, expected_precision[c])
        close(curve.thresholds, expected_thresholds[c])
        if c < 4:
            close(curve.recall, expected_recall[c])
    close(curves[4].recall, [1.0, 0.0])  # scikit-learn: recall is 1 with no positives
    binned = precision_recall_curve(MULTICLASS_PREDS, MULTICLASS_TARGET, thresholds=5)
    nan = np.nan
    precision = [[0.2500, 1.0000, 1.0000, 1.0000, nan, 1.0000],
                 [0.2500, 1.0000, 1.0000, 1.0000, nan, 1.0000],
                 [0.2500, 0.0000, 0.0000, 0.0000, nan, 1.0000],
                 [0.2500, 0.0000, 0.0000, 0.0000, nan, 1.0000],
                 [0.0000, nan, nan, nan, nan, 1.0000]]
    recall = [[1., 1., 1., 1., 0., 0.],
              [1., 1., 1., 1., 0., 0.],
              [1., 0., 0., 0., 0., 0.],
              [1., 0., 0., 0., 0., 0.],
              [nan, nan, nan, nan, nan, 0.]]
    close_nan(torch.stack([c.precision for c in binned]), precision)
    close_nan(torch.stack([c.recall for c in binned]), recall)
    close(binned[0].thresholds, [0.0000, 0.2500, 0.5000, 0.7500, 1.0000])


def test_multilabel_precision_recall_curve_doctest():
    """multilabel_precision_recall_curve: one binary curve per label, exact and thresholds=5."""
    expected_precision = [[0.5000, 0.5000, 1.0000, 1.0000], [0.5000, 0.6667, 0.5000, 0.0000, 1.0000]]
    expected_recall = [[1.0000, 0.5000, 0.5000, 0.0000], [1.0000, 1.0000, 0.5000, 0.0000, 0.0000]]
    expected_thresholds = [[0.0500, 0.4500, 0.7500], [0.0500, 0.5500, 0.6500, 0.7500], [0.0500, 0.3500, 0.7500]]
    for label in range(3):
        curve = precision_recall_curve(MULTILABEL_PREDS[:, label], MULTILABEL_TARGET[:, label])
        close(curve.thresholds, expected_thresholds[label])
        if label < 2:  # the doctest elides the third label's precision and recall
            close(curve.precision, expected_precision[label])
            close(curve.recall, expected_recall[label])
    nan = np.nan
    binned_precision = [[0.5000, 0.5000, 1.0000, 1.0000, nan, 1.0000],
                        [0.5000, 0.6667, 0.6667, 0.0000, nan, 1.0000],
                        [0.7500, 1.0000, 1.0000, 1.0000, nan, 1.0000]]
    binned_recall_rows = {1: [1.0000, 1.0000, 1.0000, 0.0000, 0.0000, 0.0000],
                          2: [1.0000, 0.6667, 0.3333, 0.3333, 0.0000, 0.0000]}
    for label in range(3):
        curve = precision_recall_curve(MULTILABEL_PREDS[:, label], MULTILABEL_TARGET[:, label], thresholds=5)
        close_nan(curve.precision, binned_precision[label])
        if label in binned_recall_rows:
            close(curve.recall, binned_recall_rows[label])


# ---- tests/unittests/classification/test_average_precision.py + doctests ------------------------------


def test_binary_average_precision_doctest():
    preds = torch.tensor([0, 0.5, 0.7, 0.8])
    target = torch.tensor([0, 1, 1, 0])
    close(average_precision(preds, target, thresholds=None), 0.5833)
    close(average_precision(preds, target, thresholds=5), 0.6667)
    # the legacy average_precision(task="binary") example: scores used as given
    close(average_precision(torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([0, 1, 1, 1])), 1.0)


def test_multiclass_average_precision_doctest():
    """Class 4 has no positives: NaN (left out of the macro mean) exact, 0 (counted) binned."""
    ap = lambda **kwargs: average_precision(MULTICLASS_PREDS, MULTICLASS_TARGET, convention="torchmetrics", **kwargs)
    close(ap(average="macro", thresholds=None), 0.6250)
    close_nan(ap(average=None, thresholds=None), [1.0000, 1.0000, 0.2500, 0.2500, np.nan])
    close(ap(average="macro", thresholds=5), 0.5000)
    close(ap(average=None, thresholds=5), [1.0000, 1.0000, 0.2500, 0.2500, -0.0000])
    # segfuse's own convention gives the class no AP in binned mode too
    binned = average_precision(MULTICLASS_PREDS, MULTICLASS_TARGET, thresholds=5, average=None)
    assert torch.isnan(binned[4])
    close(average_precision(MULTICLASS_PREDS, MULTICLASS_TARGET, thresholds=5), 0.6250)


def test_multilabel_average_precision_doctest():
    def per_label(thresholds):
        return torch.stack([
            average_precision(MULTILABEL_PREDS[:, c], MULTILABEL_TARGET[:, c], thresholds=thresholds) for c in range(3)
        ])

    close(per_label(None).mean(), 0.7500)
    close(per_label(None), [0.7500, 0.5833, 0.9167])
    close(per_label(5).mean(), 0.7778)
    close(per_label(5), [0.7500, 0.6667, 0.9167])


@pytest.mark.parametrize("average", ["macro", None])
def test_multiclass_average_precision_threshold_arg(average):
    """test_multiclass_average_precision_threshold_arg: scores rounded to 2 decimals (+1e-6) give the
    same AP exact and binned on linspace(0, 1, 100). Inputs: torchmetrics' shape (10 batches of 32
    samples, 5 classes, softmax of randn), seeded here; weighted averaging is not offered."""
    generator = torch.Generator().manual_seed(42)
    preds = torch.randn(10, 32, 5, generator=generator).softmax(dim=-1)
    target = torch.randint(0, 5, (10, 32), generator=generator)
    for pred, true in zip(preds, target):
        pred = torch.tensor(np.round(pred.numpy(), 2)) + 1e-6  # rounding will simulate binning
        ap1 = average_precision(pred, true, average=average, thresholds=None, convention="torchmetrics")
        ap2 = average_precision(pred, true, average=average, thresholds=torch.linspace(0, 1, 100),
                                convention="torchmetrics")
        assert torch.allclose(ap1, ap2, equal_nan=True)

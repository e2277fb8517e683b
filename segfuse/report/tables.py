"""Report tables built from results: per-class scores of one model, and the A / B comparison.

The same :class:`segfuse.report.html.Table` feeds the HTML page and the terminal table, so
the two never disagree. Scores are shown in percent with two decimals (mmseg's tables);
deltas and bounds are signed percentage points; an unbounded bound shows as -inf / +inf.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from segfuse.report.html import Table

if TYPE_CHECKING:
    from segfuse.metrics.compare import ModelComparison
    from segfuse.metrics.scores import SemanticScores

CLASS_SCORES = ("iou", "dice", "fscore", "precision", "recall")
MEAN_SCORES = ("miou", "mdice", "mfscore", "mprecision", "mrecall", "acc", "macc", "fwiou")
VERDICT_STYLE = {"better": "better", "worse": "worse", "within noise": "noise", "absent": "absent"}


def score_label(name: str, beta: float = 1.0) -> str:
    """Display name of a score: iou -> IoU, mfscore -> mF1, acc -> aAcc, ..."""
    labels = {
        "iou": "IoU", "dice": "Dice", "fscore": f"F{beta:g}", "precision": "Precision", "recall": "Recall",
        "acc": "aAcc", "macc": "mAcc", "fwiou": "fwIoU",
    }
    if name in labels:
        return labels[name]
    if name.startswith("m") and name[1:] in CLASS_SCORES:
        return "m" + labels[name[1:]]
    raise ValueError(f"unknown score {name!r}")


def percent(value: float) -> str:
    return "nan" if value != value else f"{100 * value:.2f}"


def signed_points(value: float) -> str:
    if value != value:
        return "nan"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{100 * value:+.2f}"


def interval_text(low: float, high: float) -> str:
    return "" if low != low else f"[{signed_points(low)}, {signed_points(high)}]"


def scores_table(scores: "SemanticScores", title: str = "Per-class scores (%)") -> Table:
    """One model's per-class IoU, Dice, F-beta, precision, recall and pixels, then the means.

    Pixels are each class's ground-truth pixels (misses included when the scores carry them).
    """
    columns = ["Class", *(score_label(name, scores.beta) for name in CLASS_SCORES), "Pixels"]
    support = scores.confusion_matrix.sum(-1)
    if getattr(scores, "misses", None) is not None:
        support = support + scores.misses
    support = support.tolist()
    values = {name: getattr(scores, name).tolist() for name in CLASS_SCORES}
    rows = [[name, *(percent(values[s][c]) for s in CLASS_SCORES), str(support[c])] for c, name in enumerate(scores.names())]
    rows.append(["mean", *(percent(float(getattr(scores, "m" + s))) for s in CLASS_SCORES), str(sum(support))])
    styles = [["", *(["num"] * (len(columns) - 1))] for _ in rows]
    styles[-1][0] = "mean"
    return Table(title, columns, rows, styles)


def _delta_cells(a: float, b: float, delta: float, low: float, high: float, verdict: str):
    cells = [percent(a), percent(b), signed_points(delta), interval_text(low, high), verdict]
    return cells, ["num", "num", "num", "num", VERDICT_STYLE[verdict]]


def _per_class_values(delta) -> list[tuple]:
    columns = [getattr(delta, key).tolist() for key in ("a", "b", "delta", "low", "high")]
    return list(zip(*columns, delta.verdict))


def _mean_values(delta) -> tuple:
    return (*(float(getattr(delta, key)) for key in ("a", "b", "delta", "low", "high")), delta.verdict)


def comparison_table(comparison: "ModelComparison", score: str = "iou", labels: Sequence[str] = ("A", "B")) -> Table:
    """Per class: A, B, delta = B - A, its interval and the verdict; then the class mean."""
    if score not in CLASS_SCORES:
        raise ValueError(f"score must be one of {CLASS_SCORES}, got {score!r}")
    name = score_label(score, comparison.beta)
    level = f"{100 * comparison.confidence:g}%"
    columns = ["Class", f"{name} {labels[0]}", f"{name} {labels[1]}", "Delta", f"{level} interval", "Verdict"]
    rows, styles = [], []
    for class_name, values in zip(comparison.names(), _per_class_values(comparison.per_class[score])):
        cells, classes = _delta_cells(*values)
        rows.append([class_name, *cells])
        styles.append(["", *classes])
    cells, classes = _delta_cells(*_mean_values(comparison.means["m" + score]))
    rows.append([f"m{name}", *cells])
    styles.append(["mean", *classes])
    note = (
        f"{name} in %, delta and interval in percentage points ({labels[1]} - {labels[0]}). Paired bootstrap over "
        f"{comparison.num_images} images, {comparison.resamples} resamples, seed {comparison.seed}."
    )
    return Table(f"Per-class {name}: {labels[1]} against {labels[0]}", columns, rows, styles, note)


def comparison_means_table(comparison: "ModelComparison", labels: Sequence[str] = ("A", "B")) -> Table:
    """Every mean score (mIoU, mDice, mF, mPrecision, mRecall, aAcc, mAcc, fwIoU) of both models."""
    level = f"{100 * comparison.confidence:g}%"
    columns = ["Score", labels[0], labels[1], "Delta", f"{level} interval", "Verdict"]
    rows, styles = [], []
    for name in MEAN_SCORES:
        cells, classes = _delta_cells(*_mean_values(comparison.means[name]))
        rows.append([score_label(name, comparison.beta), *cells])
        styles.append(["", *classes])
    return Table(f"Means: {labels[1]} against {labels[0]}", columns, rows, styles)


def worst_images(image_scores: Sequence[float], count: int) -> list[int]:
    """Indices of the ``count`` lowest scores, lowest first (NaN never chosen, ties by index)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    finite = [(value, index) for index, value in enumerate(image_scores) if value == value]
    return [index for _, index in sorted(finite)[:count]]

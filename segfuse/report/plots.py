"""The comparison plot: per-class delta (B - A) with its bootstrap interval, coloured by verdict.

matplotlib is imported on first use, with the Agg backend (no display needed). Margins are
fixed from the longest class name, as in the ``segfuse eval`` plots.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Sequence

from segfuse.report.tables import CLASS_SCORES, score_label

if TYPE_CHECKING:
    from segfuse.metrics.compare import ModelComparison

DPI = 100
CHAR_INCHES = 0.075
VERDICT_COLORS = {"better": "#1a7f37", "worse": "#cf222e", "within noise": "#6e7781", "absent": "#afb8c1"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _rows(comparison: "ModelComparison", score: str) -> list[tuple[str, float, float, float, str]]:
    per_class = comparison.per_class[score]
    mean = comparison.means["m" + score]
    rows = [(f"m{score_label(score, comparison.beta)}", float(mean.delta), float(mean.low), float(mean.high), mean.verdict)]
    values = zip(comparison.names(), per_class.delta.tolist(), per_class.low.tolist(), per_class.high.tolist(), per_class.verdict)
    return rows + list(values)


def _limits(rows) -> tuple[float, float]:
    finite = [100 * v for _, *values, _ in rows for v in values if v == v and not math.isinf(v)]
    low, high = min(finite + [0.0]), max(finite + [0.0])
    pad = 0.08 * (high - low) or 1.0
    return low - pad, high + pad


def comparison_plot(comparison: "ModelComparison", score: str = "iou", labels: Sequence[str] = ("A", "B")) -> bytes:
    """PNG bytes: one row per class (the class mean first), delta and interval in points.

    Unbounded interval ends run to the plot edge and end in an arrow; absent classes
    show no point.
    """
    if score not in CLASS_SCORES:
        raise ValueError(f"score must be one of {CLASS_SCORES}, got {score!r}")
    plt = _pyplot()
    rows = _rows(comparison, score)
    left = 0.3 + CHAR_INCHES * max(len(name) for name, *_ in rows)
    width, height = 6.5, 1.2 + 0.26 * len(rows)
    total = left + width + 0.3
    figure = plt.figure(figsize=(total, height))
    axes = figure.add_axes((left / total, 0.6 / height, width / total, 1 - 1.0 / height))
    x_min, x_max = _limits(rows)
    for y, (name, delta, low, high, verdict) in enumerate(rows):
        if delta != delta:
            continue
        color = VERDICT_COLORS[verdict]
        start, end = max(100 * low, x_min), min(100 * high, x_max)
        axes.plot([start, end], [y, y], color=color, linewidth=2.2 if y == 0 else 1.6, solid_capstyle="butt")
        axes.plot([100 * delta], [y], "o", color=color, markersize=6 if y == 0 else 4.5)
        for bound, edge, marker in ((low, x_min, "<"), (high, x_max, ">")):
            if math.isinf(bound):
                axes.plot([edge], [y], marker, color=color, markersize=6)
    axes.axvline(0.0, color="#1f2328", linewidth=0.8)
    axes.axhline(0.5, color="#d1d9e0", linewidth=0.8)
    axes.set_yticks(range(len(rows)), labels=[name for name, *_ in rows])
    axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.set_xlim(x_min, x_max)
    name = score_label(score, comparison.beta)
    axes.set_xlabel(f"{name} delta, {labels[1]} - {labels[0]} (percentage points)")
    title = f"{100 * comparison.confidence:g}% paired bootstrap intervals, {comparison.resamples} resamples"
    axes.set_title(title, fontsize=9, loc="left")
    handles = [axes.plot([], [], "o-", color=color, label=verdict)[0] for verdict, color in VERDICT_COLORS.items() if verdict != "absent"]
    axes.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize=8, frameon=False, borderaxespad=0.1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    plt.close(figure)
    return buffer.getvalue()

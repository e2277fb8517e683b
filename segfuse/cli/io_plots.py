"""Report plots (matplotlib, Agg backend): per-class IoU bars and the normalised confusion matrix.

Margins are fixed from the longest class name instead of ``tight_layout`` (which draws
the figure twice); PNGs use light compression, as these plots are written on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

DPI = 100
CHAR_INCHES = 0.075  # width of one tick-label character at the default 10 pt font


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label_inches(names: Sequence[str]) -> float:
    return 0.3 + CHAR_INCHES * max((len(name) for name in names), default=1)


def _save(plt, figure, path: Path) -> None:
    figure.savefig(path, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    plt.close(figure)


def plot_per_class(path: Path, names: Sequence[str], iou: Sequence[float], miou: float) -> None:
    """Horizontal bars of per-class IoU with the mIoU as a dashed line (NaN bars are empty)."""
    plt = _pyplot()
    left, width, height = _label_inches(names), 6.0, 0.9 + 0.3 * len(names)
    figure = plt.figure(figsize=(left + width + 0.3, height))
    axes = figure.add_axes((left / (left + width + 0.3), 0.6 / height, width / (left + width + 0.3), 1 - 0.8 / height))
    values = [0.0 if value != value else value for value in iou]
    axes.barh(range(len(names)), values, color="#4c72b0")
    axes.set_yticks(range(len(names)), labels=list(names))
    axes.set_ylim(len(names) - 0.5, -0.5)
    axes.set_xlim(0, 1)
    axes.set_xlabel("IoU")
    if miou == miou:
        axes.axvline(miou, color="#c44e52", linestyle="--", label=f"mIoU {miou:.3f}")
        axes.legend(loc="lower right")
    _save(plt, figure, path)


def plot_confusion_matrix(path: Path, names: Sequence[str], confusion: torch.Tensor) -> None:
    """Heatmap of the confusion matrix with each truth row divided by its pixel count."""
    plt = _pyplot()
    counts = confusion.to(torch.float64)
    normalised = (counts / counts.sum(1, keepdim=True).clamp_min(1)).numpy()
    margin, side = _label_inches(names) + 0.3, 1.5 + 0.3 * len(names)
    total_width, total_height = margin + side + 1.2, margin + side + 0.3
    figure = plt.figure(figsize=(total_width, total_height))
    axes = figure.add_axes((margin / total_width, margin / total_height, side / total_width, side / total_height))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    axes.set_xticks(range(len(names)), labels=list(names), rotation=90)
    axes.set_yticks(range(len(names)), labels=list(names))
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    colorbar = figure.add_axes(((margin + side + 0.2) / total_width, margin / total_height, 0.2 / total_width, side / total_height))
    figure.colorbar(image, cax=colorbar)
    _save(plt, figure, path)

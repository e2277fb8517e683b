"""Report plots (matplotlib, Agg backend): per-class IoU bars and the normalised confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_per_class(path: Path, names: Sequence[str], iou: Sequence[float], miou: float) -> None:
    """Horizontal bars of per-class IoU with the mIoU as a dashed line (NaN bars are empty)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 1.0 + 0.3 * len(names)), dpi=100)
    values = [0.0 if value != value else value for value in iou]
    axes.barh(range(len(names)), values, color="#4c72b0")
    axes.set_yticks(range(len(names)), labels=list(names))
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("IoU")
    if miou == miou:
        axes.axvline(miou, color="#c44e52", linestyle="--", label=f"mIoU {miou:.3f}")
        axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def plot_confusion_matrix(path: Path, names: Sequence[str], confusion: torch.Tensor) -> None:
    """Heatmap of the confusion matrix with each truth row divided by its pixel count."""
    plt = _pyplot()
    counts = confusion.to(torch.float64)
    normalised = (counts / counts.sum(1, keepdim=True).clamp_min(1)).numpy()
    size = 2.0 + 0.35 * len(names)
    figure, axes = plt.subplots(figsize=(size + 1, size), dpi=100)
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), labels=list(names), rotation=90)
    axes.set_yticks(range(len(names)), labels=list(names))
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)

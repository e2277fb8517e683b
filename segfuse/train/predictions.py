"""Validation predictions as PNG masks, in the two-folder layout ``segfuse eval`` reads.

``<folder>/pred/<stem>.png`` holds the argmax class map, ``<folder>/gt/<stem>.png`` the
ground truth as the model saw it (ignored pixels keep ``ignore_index``). Masks are 8-bit
greyscale ("L") when every value is below 256, 16-bit ("I;16") otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

MAX_PNG_LABEL = 65535


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """Write an integer (H, W) mask with values in [0, 65535] as a PNG."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    low, high = int(mask.min(initial=0)), int(mask.max(initial=0))
    if low < 0 or high > MAX_PNG_LABEL:
        raise ValueError(f"mask values must be in [0, {MAX_PNG_LABEL}] to be stored as PNG, got [{low}, {high}]")
    Image.fromarray(mask.astype(np.uint8 if high < 256 else np.uint16)).save(path)


class PredictionWriter:
    """Writes batches of predicted and true class maps (N, H, W) to ``folder/pred`` and ``folder/gt``."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.pred_dir, self.gt_dir = self.folder / "pred", self.folder / "gt"
        self.pred_dir.mkdir(parents=True, exist_ok=True)
        self.gt_dir.mkdir(parents=True, exist_ok=True)

    def write(self, stems: list[str], pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = pred.cpu().numpy(), target.cpu().numpy()
        for stem, pred_mask, true_mask in zip(stems, pred, target):
            write_mask_png(self.pred_dir / f"{stem}.png", pred_mask)
            write_mask_png(self.gt_dir / f"{stem}.png", true_mask)

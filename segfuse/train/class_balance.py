"""Class weights from label frequencies: median frequency balancing (Eigen & Fergus 2015).

w_c = median_k(f_k) / f_c, where f_c is the fraction of valid (non-ignored) pixels of
class c over a dataset and the median (torch.median: the lower middle value for an even
count) runs over the classes present. A class absent from the data gets weight 0.
"""

from __future__ import annotations

from typing import Optional

import torch


def class_frequencies(dataset, num_classes: int, ignore_index: Optional[int] = None) -> torch.Tensor:
    """Fraction of valid pixels per class (C,) float64 over the masks of (image, mask, stem) items."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for index in range(len(dataset)):
        mask = dataset[index][1].reshape(-1).long()
        if ignore_index is not None:
            mask = mask[mask != ignore_index]
        if mask.numel() and (mask.min() < 0 or mask.max() >= num_classes):
            raise ValueError(f"mask labels must be in [0, {num_classes}) or ignore_index={ignore_index}, got "
                             f"[{int(mask.min())}, {int(mask.max())}] in item {index}")
        counts += torch.bincount(mask, minlength=num_classes).double()
    total = counts.sum()
    if total == 0:
        raise ValueError("dataset has no valid (non-ignored) pixel to count class frequencies from")
    return counts / total


def median_frequency_weights(frequencies: torch.Tensor) -> list[float]:
    """Weights median(f) / f_c (C,) for class frequencies f (C,); 0 for absent classes."""
    present = frequencies > 0
    median = frequencies[present].median()
    weights = torch.where(present, median / frequencies.clamp_min(1e-12), torch.zeros_like(frequencies))
    return [round(float(w), 6) for w in weights]

"""Stored mask values -> class indices: identity, mmseg's reduce_zero_label, or an explicit table.

Convention:
    A mapping is applied to the *values* present in a mask (at most 256 for 8-bit masks,
    e.g. the axes of a joint histogram), never pixel by pixel. It returns the class index,
    :data:`IGNORED` (-1) for a value whose pixels are skipped, or :data:`INVALID` (-2) for
    a value the data may not hold. ``ignore_index`` is always IGNORED.

    - identity: v in [0, C) is class v.
    - ``reduce_zero_label`` (mmseg, ADE20K): 0 is IGNORED, v in [1, C] is class v - 1.
    - ``table`` (e.g. Cityscapes label ids -> train ids): v is ``table[v]``; a table entry
      equal to ``ignore_index`` that is no class index is IGNORED; values missing from the
      table are INVALID.

    With ``num_classes=None`` (not known yet) no value is INVALID for being too large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

IGNORED = -1
INVALID = -2


@dataclass(frozen=True)
class LabelMapping:
    """Maps stored values to class indices (see the module Convention)."""

    num_classes: int | None
    ignore_index: int | None = 255
    reduce_zero_label: bool = False
    table: Mapping[int, int] | None = None

    def __post_init__(self) -> None:
        if self.reduce_zero_label and self.table is not None:
            raise ValueError("a label mapping takes reduce_zero_label or a table, not both")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")

    def classes(self, values) -> np.ndarray:
        """Class index (int64), IGNORED or INVALID for each stored value."""
        values = np.asarray(values, dtype=np.int64)
        if self.table is not None:
            keys = np.fromiter(self.table.keys(), dtype=np.int64, count=len(self.table))
            targets = np.fromiter(self.table.values(), dtype=np.int64, count=len(self.table))
            order = np.argsort(keys)
            position = np.clip(np.searchsorted(keys[order], values), 0, max(len(keys) - 1, 0))
            found = keys[order][position] == values if len(keys) else np.zeros(values.shape, bool)
            mapped = np.where(found, targets[order][position] if len(keys) else 0, INVALID)
            if self.ignore_index is not None:
                is_class = (mapped >= 0) & (mapped < (self.num_classes or 0))
                mapped = np.where(found & (mapped == self.ignore_index) & ~is_class, IGNORED, mapped)
        elif self.reduce_zero_label:
            mapped = np.where(values == 0, IGNORED, np.where(values > 0, values - 1, INVALID))
        else:
            mapped = np.where(values >= 0, values, INVALID)
        if self.num_classes is not None:
            mapped = np.where(mapped >= self.num_classes, INVALID, mapped)
        if self.ignore_index is not None:
            mapped = np.where(values == self.ignore_index, IGNORED, mapped)
        return mapped

    def with_num_classes(self, num_classes: int) -> "LabelMapping":
        return LabelMapping(num_classes, self.ignore_index, self.reduce_zero_label, self.table)

    def describe(self) -> str:
        if self.table is not None:
            return "label table"
        return "reduce_zero_label" if self.reduce_zero_label else "identity"

"""segfuse: segmentation losses and metrics on one statistics core.

Loss modules live here (``segfuse.DiceLoss``), their functions in
:mod:`segfuse.functional`, metrics in :mod:`segfuse.metrics`, COCO AP in
:mod:`segfuse.coco`.

The loss names are resolved lazily (PEP 562), so that ``import segfuse.coco`` and
``segfuse --version`` do not import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LOSSES = (
    "BCEWithLogitsLoss", "CrossEntropyLoss", "DiceCELoss", "DiceFocalLoss", "DiceLoss", "FBetaLoss",
    "FocalLoss", "GeneralizedDiceLoss", "JaccardLoss", "LovaszLoss", "SegmentationLoss", "TverskyLoss", "WeightedSum",
)

__all__ = ["__version__", *_LOSSES]


def __getattr__(name: str):
    if name in _LOSSES:
        value = getattr(importlib.import_module("segfuse.losses"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'segfuse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

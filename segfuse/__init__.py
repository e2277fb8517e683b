"""segfuse: segmentation losses and metrics on one statistics core.

Loss modules live here (``segfuse.DiceLoss``), their functions in
:mod:`segfuse.functional`, metrics in :mod:`segfuse.metrics`, COCO AP in
:mod:`segfuse.coco`.
"""

__version__ = "0.1.0"

from segfuse.losses import (  # noqa: E402
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    DiceCELoss,
    DiceFocalLoss,
    DiceLoss,
    FBetaLoss,
    FocalLoss,
    GeneralizedDiceLoss,
    JaccardLoss,
    LovaszLoss,
    SegmentationLoss,
    TverskyLoss,
    WeightedSum,
)

__all__ = [
    "__version__", "BCEWithLogitsLoss", "CrossEntropyLoss", "DiceCELoss", "DiceFocalLoss", "DiceLoss", "FBetaLoss",
    "FocalLoss", "GeneralizedDiceLoss", "JaccardLoss", "LovaszLoss", "SegmentationLoss", "TverskyLoss", "WeightedSum",
]

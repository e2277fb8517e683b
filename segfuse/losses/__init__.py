"""Loss modules; the functions they call are in :mod:`segfuse.functional`."""

from segfuse.losses._base import SegmentationLoss
from segfuse.losses.compound import DiceCELoss, DiceFocalLoss, WeightedSum
from segfuse.losses.cross_entropy import BCEWithLogitsLoss, CrossEntropyLoss
from segfuse.losses.focal import FocalLoss
from segfuse.losses.lovasz import LovaszLoss
from segfuse.losses.overlap import DiceLoss, FBetaLoss, GeneralizedDiceLoss, JaccardLoss, TverskyLoss

__all__ = [
    "SegmentationLoss", "WeightedSum", "DiceCELoss", "DiceFocalLoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
    "FocalLoss", "LovaszLoss", "DiceLoss", "FBetaLoss", "GeneralizedDiceLoss", "JaccardLoss", "TverskyLoss",
]

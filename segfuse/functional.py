"""The functional losses: each module in :mod:`segfuse` calls one of these."""

from segfuse.losses.compound import dice_ce_loss, dice_focal_loss
from segfuse.losses.cross_entropy import binary_cross_entropy_with_logits, cross_entropy
from segfuse.losses.focal import focal_loss
from segfuse.losses.lovasz import lovasz_loss
from segfuse.losses.overlap import (
    dice_loss,
    fbeta_loss,
    generalized_dice_loss,
    jaccard_loss,
    overlap_loss,
    tversky_loss,
)

__all__ = [
    "binary_cross_entropy_with_logits", "cross_entropy", "dice_ce_loss", "dice_focal_loss", "dice_loss",
    "fbeta_loss", "focal_loss", "generalized_dice_loss", "jaccard_loss", "lovasz_loss", "overlap_loss",
    "tversky_loss",
]

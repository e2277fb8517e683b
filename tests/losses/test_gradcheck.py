"""float64 gradcheck for every loss, in each mode, 2D and 3D."""

import pytest
import torch
from torch.autograd import gradcheck

import segfuse.functional as SF
from tests.losses.helpers import make_inputs

LOSSES = {
    "dice": lambda x, t, mode: SF.dice_loss(x, t, mode=mode, ignore_index=255),
    "dice_per_image_squared": lambda x, t, mode: SF.dice_loss(x, t, mode=mode, per_image=True, squared=True),
    "fbeta_log": lambda x, t, mode: SF.fbeta_loss(x, t, beta=2.0, mode=mode, log_loss=True, ignore_index=255),
    "focal_tversky": lambda x, t, mode: SF.tversky_loss(x, t, 0.3, 0.7, gamma=0.75, mode=mode, ignore_index=255),
    "jaccard": lambda x, t, mode: SF.jaccard_loss(x, t, mode=mode, include_background=False, ignore_index=255),
    "generalized_dice": lambda x, t, mode: SF.generalized_dice_loss(x, t, mode=mode, ignore_index=255),
    "focal": lambda x, t, mode: SF.focal_loss(x, t, mode, alpha=0.25 if mode != "multiclass" else None,
                                              gamma=1.5, ignore_index=255),
    "lovasz": lambda x, t, mode: SF.lovasz_loss(x, t, mode, ignore_index=255),
    "dice_ce": lambda x, t, mode: SF.dice_ce_loss(x, t, mode=mode, ignore_index=255),
    "dice_focal": lambda x, t, mode: SF.dice_focal_loss(x, t, mode=mode, ignore_index=255),
}


@pytest.mark.parametrize("spatial", [(4, 5), (3, 3, 2)])
@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck(name, mode, spatial):
    logits, target = make_inputs(mode, n=2, c=3, spatial=spatial, ignore_index=255)
    if name == "dice_per_image_squared":
        target = target.masked_fill(target == 255, 0)
    logits.requires_grad_(True)
    assert gradcheck(lambda x: LOSSES[name](x, target, mode), (logits,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("spatial", [(4, 5), (3, 3, 2)])
def test_gradcheck_cross_entropy_and_bce(spatial):
    logits, labels = make_inputs("multiclass", n=2, c=3, spatial=spatial, ignore_index=255)
    weight = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    logits.requires_grad_(True)
    assert gradcheck(lambda x: SF.cross_entropy(x, labels, weight, 255, 0.1), (logits,))
    logits, target = make_inputs("multilabel", n=2, c=3, spatial=spatial, ignore_index=255)
    logits.requires_grad_(True)
    assert gradcheck(lambda x: SF.binary_cross_entropy_with_logits(x, target, ignore_index=255), (logits,))

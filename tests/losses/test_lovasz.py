"""Lovasz-softmax and Lovasz-hinge against kornia and Berman's reference."""

import pytest
import torch

import segfuse
import segfuse.functional as SF
from tests.losses.helpers import make_inputs

kornia_losses = pytest.importorskip("kornia.losses")


def test_convention_lovasz_kornia_is_per_image_all_classes():
    logits, labels = make_inputs("multiclass", n=3, c=4, spatial=(6, 7))
    expected = kornia_losses.lovasz_softmax_loss(logits, labels)
    torch.testing.assert_close(SF.lovasz_loss(logits, labels, per_image=True, classes="all"), expected)


def test_lovasz_hinge_equals_kornia_per_image():
    logits, target = make_inputs("binary", n=3, spatial=(6, 7))
    expected = kornia_losses.lovasz_hinge_loss(logits, target[:, 0])
    torch.testing.assert_close(SF.lovasz_loss(logits, target, "binary", per_image=True), expected)


def berman_lovasz_softmax_flat(probas, labels, classes="present"):
    """Berman et al.'s lovasz_softmax_flat (P, C) re-derived with torch ops."""
    losses = []
    for c in range(probas.size(1)):
        fg = (labels == c).double()
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probas[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        fg_sorted = fg[perm]
        gts = fg_sorted.sum()
        jaccard = 1.0 - (gts - fg_sorted.cumsum(0)) / (gts + (1 - fg_sorted).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
        losses.append(torch.dot(errors_sorted, jaccard))
    return torch.stack(losses).mean()


def test_lovasz_softmax_batch_present_with_ignore_equals_berman():
    logits, labels = make_inputs("multiclass", n=2, c=5, ignore_index=255)
    labels[labels == 3] = 1  # class 3 absent: "present" skips it
    probs = torch.softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, 5)
    flat = labels.reshape(-1)
    valid = flat != 255
    expected = berman_lovasz_softmax_flat(probs[valid], flat[valid])
    torch.testing.assert_close(SF.lovasz_loss(logits, labels, ignore_index=255), expected)
    torch.testing.assert_close(segfuse.LovaszLoss(ignore_index=255)(logits, labels), expected)


def test_lovasz_explicit_class_list():
    logits, labels = make_inputs("multiclass", n=2, c=4)
    probs = torch.softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, 4)
    all_classes = berman_lovasz_softmax_flat(probs, labels.reshape(-1), classes="all")
    torch.testing.assert_close(SF.lovasz_loss(logits, labels, classes="all"), all_classes)
    torch.testing.assert_close(SF.lovasz_loss(logits, labels, classes=[0, 1, 2, 3]), all_classes)


def test_lovasz_hinge_needs_logits():
    logits, target = make_inputs("binary", n=1)
    with pytest.raises(ValueError, match="from_logits"):
        SF.lovasz_loss(torch.sigmoid(logits), target, "binary", from_logits=False)

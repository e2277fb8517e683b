"""CrossEntropyLoss and BCEWithLogitsLoss: torch's values and gradients."""

import pytest
import torch
import torch.nn.functional as F

import segfuse
import segfuse.functional as SF
from tests.losses.helpers import make_inputs


def value_and_grad(fn, logits):
    x = logits.detach().clone().requires_grad_(True)
    upstream = torch.tensor(1.7, dtype=x.dtype)
    out = fn(x)
    (out * upstream).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("spatial", [(5,), (4, 6), (3, 4, 2)])
def test_cross_entropy_equals_torch(reduction, use_weight, label_smoothing, spatial):
    logits, labels = make_inputs("multiclass", n=3, c=4, spatial=spatial, ignore_index=255)
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64) if use_weight else None
    ours = value_and_grad(lambda x: SF.cross_entropy(x, labels.to(torch.uint8), weight, 255, label_smoothing,
                                                     reduction), logits)
    theirs = value_and_grad(lambda x: F.cross_entropy(x, labels, weight, ignore_index=255,
                                                      label_smoothing=label_smoothing, reduction=reduction), logits)
    torch.testing.assert_close(ours, theirs)


def test_cross_entropy_soft_target_equals_torch():
    logits, _ = make_inputs("multiclass", n=2, c=4)
    probs = torch.softmax(torch.randn_like(logits), 1)
    torch.testing.assert_close(SF.cross_entropy(logits, probs), F.cross_entropy(logits, probs))


def test_convention_cross_entropy_all_ignored_is_zero_with_zero_grad():
    logits, labels = make_inputs("multiclass", n=2, c=4)
    labels = torch.full_like(labels, 255)
    assert torch.isnan(F.cross_entropy(logits, labels, ignore_index=255))  # torch's convention
    value, grad = value_and_grad(lambda x: segfuse.CrossEntropyLoss(ignore_index=255)(x, labels), logits)
    assert value == 0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_equals_torch(reduction):
    logits, target = make_inputs("multilabel", n=2, c=3)
    target = target.double() * 0.8 + 0.1  # soft targets
    weight = torch.rand(3, 1, 1, dtype=torch.float64)
    pos_weight = torch.rand(3, 1, 1, dtype=torch.float64) + 0.5
    ours = value_and_grad(lambda x: SF.binary_cross_entropy_with_logits(x, target, weight, pos_weight,
                                                                        reduction=reduction), logits)
    theirs = value_and_grad(lambda x: F.binary_cross_entropy_with_logits(x, target, weight, pos_weight=pos_weight,
                                                                         reduction=reduction), logits)
    torch.testing.assert_close(ours, theirs)


def test_convention_bce_ignore_index_leaves_the_mean():
    logits, target = make_inputs("multilabel", n=2, c=3, ignore_index=255)
    valid = target != 255
    ours = SF.binary_cross_entropy_with_logits(logits, target, ignore_index=255)
    expected = F.binary_cross_entropy_with_logits(logits[valid], target[valid].double())
    torch.testing.assert_close(ours, expected)
    module = segfuse.BCEWithLogitsLoss(ignore_index=255)
    torch.testing.assert_close(module(logits, target), expected)


def test_bce_rejects_values_outside_unit_interval():
    logits, target = make_inputs("multilabel", n=1, c=2)
    with pytest.raises(ValueError, match="target must hold values in \\[0, 1\\]"):
        SF.binary_cross_entropy_with_logits(logits, target * 3)

"""Loss specs: parsing, errors, and that the built sum is the weighted sum of segfuse losses."""

import pytest
import torch

from segfuse import CrossEntropyLoss, DiceLoss, FocalLoss, LovaszLoss, TverskyLoss
from segfuse.train import build_loss, parse_loss_spec


def test_parse_weights_and_separators():
    assert parse_loss_spec("ce:1,dice:0.5") == [("ce", 1.0), ("dice", 0.5)]
    assert parse_loss_spec("focal+dice") == [("focal", 1.0), ("dice", 1.0)]
    assert parse_loss_spec(" Tversky : 2e-1 ") == [("tversky", 0.2)]


@pytest.mark.parametrize("spec, message", [
    ("", "non-empty"),
    ("ce:1,,dice", "'name' or 'name:weight'"),
    ("cee", "loss term must be one of"),
    ("ce:0", "loss weight must be > 0, got 0.0"),
    ("ce:x", "'name' or 'name:weight'"),
    ("ce+ce", "distinct"),
])
def test_bad_specs_are_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_spec(spec)


def test_built_loss_equals_the_weighted_sum_and_reports_terms():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    target[0, :2] = 255
    weights = [1.0, 2.0, 0.5]
    loss = build_loss("ce:1,dice:0.5,tversky:0.25", class_weights=weights, ignore_index=255)
    expected = (CrossEntropyLoss(weight=weights, ignore_index=255)(logits, target)
                + 0.5 * DiceLoss(class_weights=weights, ignore_index=255)(logits, target)
                + 0.25 * TverskyLoss(alpha=0.3, beta=0.7, class_weights=weights, ignore_index=255)(logits, target))
    assert torch.allclose(loss(logits, target), expected, rtol=1e-6, atol=1e-7)
    assert set(loss.last_terms) == {"CrossEntropyLoss", "DiceLoss", "TverskyLoss"}
    focal = build_loss("focal", class_weights=weights)
    assert torch.allclose(focal(logits, target.clamp_max(2)), FocalLoss(alpha=weights)(logits, target.clamp_max(2)))
    lovasz = build_loss("lovasz", ignore_index=255)
    assert torch.allclose(lovasz(logits, target), LovaszLoss(ignore_index=255)(logits, target))


def test_class_weights_no_term_can_use_are_an_error():
    with pytest.raises(ValueError, match="class_weights are not used by any term of loss 'lovasz'"):
        build_loss("lovasz", class_weights=[1.0, 2.0])

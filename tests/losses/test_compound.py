"""DiceCELoss, DiceFocalLoss and weighted sums."""

import pytest
import torch

import segfuse
import segfuse.functional as SF
from tests.losses.helpers import make_inputs

monai_losses = pytest.importorskip("monai.losses")


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.3, 1.7)])
def test_dice_ce_equals_monai(per_image, weights):
    logits, labels = make_inputs("multiclass", n=3, c=4, spatial=(5, 6, 2))
    expected = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, batch=not per_image, lambda_dice=weights[0],
                                       lambda_ce=weights[1])(logits, labels.unsqueeze(1))
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels, *weights, per_image=per_image), expected)
    module = segfuse.DiceCELoss(*weights, per_image=per_image)
    torch.testing.assert_close(module(logits, labels), expected)


def test_dice_ce_is_the_sum_of_its_terms_with_ignore_and_weights():
    logits, labels = make_inputs("multiclass", n=2, c=4, ignore_index=255)
    weights = [0.5, 1.0, 2.0, 1.5]
    ce = SF.cross_entropy(logits, labels, weight=torch.tensor(weights, dtype=torch.float64), ignore_index=255)
    dice = SF.dice_loss(logits, labels, ignore_index=255, class_weights=weights)
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels, 0.4, 0.6, ignore_index=255, class_weights=weights),
                               0.4 * dice + 0.6 * ce)


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
def test_dice_focal_is_the_sum_of_its_terms(mode):
    logits, target = make_inputs(mode, n=2, c=3, ignore_index=255)
    focal = SF.focal_loss(logits, target, mode, gamma=1.5, ignore_index=255)
    dice = SF.dice_loss(logits, target, mode=mode, ignore_index=255)
    torch.testing.assert_close(SF.dice_focal_loss(logits, target, 2.0, 0.5, gamma=1.5, mode=mode, ignore_index=255),
                               2.0 * dice + 0.5 * focal)
    module = segfuse.DiceFocalLoss(2.0, 0.5, gamma=1.5, mode=mode, ignore_index=255)
    torch.testing.assert_close(module(logits, target), 2.0 * dice + 0.5 * focal)


def test_binary_dice_ce_uses_bce():
    logits, target = make_inputs("binary", n=2)
    expected = SF.dice_loss(logits, target, mode="binary") + SF.binary_cross_entropy_with_logits(
        logits, target.double())
    torch.testing.assert_close(SF.dice_ce_loss(logits, target, mode="binary"), expected)


def test_weighted_sum_written_with_operators():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    combined = 1.0 * segfuse.CrossEntropyLoss() + 0.5 * segfuse.DiceLoss()
    assert isinstance(combined, segfuse.WeightedSum)
    expected = SF.cross_entropy(logits, labels) + 0.5 * SF.dice_loss(logits, labels)
    torch.testing.assert_close(combined(logits, labels), expected)
    assert set(combined.last_terms) == {"CrossEntropyLoss", "DiceLoss"}
    torch.testing.assert_close(combined.last_terms["DiceLoss"], SF.dice_loss(logits, labels))
    tripled = 2 * (segfuse.DiceLoss() + segfuse.DiceLoss(per_image=True)) + segfuse.FocalLoss()
    assert tripled.weights == [2.0, 2.0, 1.0]
    assert tripled.term_names() == ["DiceLoss[0]", "DiceLoss[1]", "FocalLoss"]
    logits.requires_grad_(True)
    tripled(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()


def test_convention_dice_ce_label_smoothing_smooths_both_terms():
    logits, labels = make_inputs("multiclass", n=2, c=4, ignore_index=255)
    weights = [0.5, 1.0, 2.0, 1.5]
    ce = SF.cross_entropy(logits, labels, weight=torch.tensor(weights, dtype=torch.float64), ignore_index=255,
                          label_smoothing=0.2)
    dice = SF.dice_loss(logits, labels, ignore_index=255, class_weights=weights, label_smoothing=0.2)
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels, ignore_index=255, class_weights=weights,
                                               label_smoothing=0.2), dice + ce)
    plain_dice = SF.dice_loss(logits, labels, ignore_index=255, class_weights=weights)
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels, ignore_index=255, class_weights=weights,
                                               label_smoothing=0.2, dice_label_smoothing=0.0), plain_dice + ce)


def test_dice_ce_label_smoothing_equals_monai_with_the_ce_term_only():
    logits, labels = make_inputs("multiclass", n=2, c=3, spatial=(4, 5, 3))
    expected = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, label_smoothing=0.1)(logits, labels.unsqueeze(1))
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels, per_image=True, label_smoothing=0.1,
                                               dice_label_smoothing=0.0), expected)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_dice_ce_pos_weight_and_label_smoothing_in_sigmoid_modes(mode):
    logits, target = make_inputs(mode, n=2, c=3, ignore_index=255)
    channels = logits.shape[1]
    pos_weight = torch.linspace(0.5, 2.0, channels, dtype=torch.float64)
    valid = target != 255
    smoothed = target.double() * 0.8 + 0.1
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, smoothed, pos_weight=pos_weight.view(-1, 1, 1), reduction="none")[valid].mean()
    dice = SF.dice_loss(logits, target, mode=mode, ignore_index=255, label_smoothing=0.2)
    torch.testing.assert_close(SF.dice_ce_loss(logits, target, mode=mode, ignore_index=255, label_smoothing=0.2,
                                               pos_weight=pos_weight.tolist()), dice + bce)


def test_dice_focal_with_a_onehot_target_equals_the_class_map():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    onehot = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1)
    torch.testing.assert_close(SF.dice_focal_loss(logits, onehot, gamma=1.5, alpha=[0.2, 0.3, 0.5]),
                               SF.dice_focal_loss(logits, labels, gamma=1.5, alpha=[0.2, 0.3, 0.5]))


def test_compound_losses_take_every_dice_switch():
    logits, labels = make_inputs("multiclass", n=2, c=4)
    labels[labels == 3] = 2
    switches = dict(skip_absent=True, normalize_weights=False, class_weights=[1.0, 2.0, 1.0, 0.5], smooth_nr=0.0,
                    smooth_dr=1e-3, per_image=True)
    dice = SF.dice_loss(logits, labels, **switches)
    ce = SF.cross_entropy(logits, labels, weight=torch.tensor(switches["class_weights"], dtype=torch.float64))
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels, **switches), dice + ce)
    focal = SF.focal_loss(logits, labels, gamma=2.0)
    torch.testing.assert_close(SF.dice_focal_loss(logits, labels, **switches), dice + focal)
    pooled = SF.dice_loss(logits, labels, pooling="class")
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels, pooling="class"), pooled + SF.cross_entropy(logits, labels))

"""Edge cases of SPEC 1 and 8: all ignored, half precision, integer dtypes, bad input."""

import pytest
import torch

import segfuse
import segfuse.functional as SF
from tests.losses.helpers import make_inputs

EVERY_LOSS = {
    "dice": lambda x, t, mode: SF.dice_loss(x, t, mode=mode, ignore_index=255),
    "dice_log_per_image": lambda x, t, mode: SF.dice_loss(x, t, mode=mode, ignore_index=255, per_image=True,
                                                          log_loss=True, smooth=0.0),
    "fbeta": lambda x, t, mode: SF.fbeta_loss(x, t, beta=2.0, mode=mode, ignore_index=255, skip_absent=True),
    "tversky": lambda x, t, mode: SF.tversky_loss(x, t, gamma=0.75, mode=mode, ignore_index=255),
    "jaccard": lambda x, t, mode: SF.jaccard_loss(x, t, mode=mode, ignore_index=255),
    "generalized_dice": lambda x, t, mode: SF.generalized_dice_loss(x, t, mode=mode, ignore_index=255),
    "focal": lambda x, t, mode: SF.focal_loss(x, t, mode, ignore_index=255),
    "lovasz": lambda x, t, mode: SF.lovasz_loss(x, t, mode, ignore_index=255),
    "dice_ce": lambda x, t, mode: SF.dice_ce_loss(x, t, mode=mode, ignore_index=255),
    "dice_focal": lambda x, t, mode: SF.dice_focal_loss(x, t, mode=mode, ignore_index=255),
    "ce_or_bce": lambda x, t, mode: (SF.cross_entropy(x, t, ignore_index=255) if mode == "multiclass"
                                     else SF.binary_cross_entropy_with_logits(x, t, ignore_index=255)),
}


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("name", sorted(EVERY_LOSS))
def test_all_pixels_ignored_gives_zero_and_zero_gradient(name, mode):
    logits, target = make_inputs(mode, n=2, c=3, dtype=torch.float32)
    target = torch.full_like(target, 255)
    logits.requires_grad_(True)
    loss = EVERY_LOSS[name](logits, target, mode)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(EVERY_LOSS))
def test_half_precision_is_finite_and_close_to_fp32(name, dtype):
    logits, target = make_inputs("multiclass", n=2, c=4, spatial=(16, 16), dtype=torch.float32, ignore_index=255)
    reference = EVERY_LOSS[name](logits, target, "multiclass")
    half = logits.to(dtype).requires_grad_(True)
    loss = EVERY_LOSS[name](half, target, "multiclass")
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert half.grad.dtype == dtype and torch.isfinite(half.grad).all()
    # the only error is the rounding of the logits to half precision
    torch.testing.assert_close(loss, reference, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_integer_target_dtypes(dtype):
    logits, labels = make_inputs("multiclass", n=2, c=4, ignore_index=255)
    expected = SF.dice_ce_loss(logits, labels, ignore_index=255)
    labels = labels.masked_fill(labels == 255, 200 if dtype == torch.int16 else 255)
    ignore = 200 if dtype == torch.int16 else 255
    torch.testing.assert_close(SF.dice_ce_loss(logits, labels.to(dtype), ignore_index=ignore), expected)


@pytest.mark.parametrize("bad_label", [4, -1])
@pytest.mark.parametrize("loss", [segfuse.DiceLoss(), segfuse.CrossEntropyLoss(), segfuse.FocalLoss(),
                                  segfuse.LovaszLoss(), segfuse.DiceCELoss()])
def test_label_out_of_range_without_ignore_index_is_a_clear_error(loss, bad_label):
    logits, labels = make_inputs("multiclass", n=1, c=4)
    labels[0, 0, 0] = bad_label
    with pytest.raises(ValueError, match=rf"labels in \[0, 4\).*\[{bad_label}\]"):
        loss(logits, labels)


@pytest.mark.parametrize("make, message", [
    (lambda: segfuse.DiceLoss(mode="softmax"), "mode must be one of"),
    (lambda: segfuse.FBetaLoss(beta=0.0), "beta must be > 0, got 0.0"),
    (lambda: segfuse.FocalLoss(gamma=-1.0), "gamma must be >= 0, got -1.0"),
    (lambda: segfuse.TverskyLoss(alpha=-0.1), "alpha must be >= 0"),
    (lambda: segfuse.DiceLoss(reduction="avg"), "reduction must be one of"),
    (lambda: segfuse.DiceLoss(smooth=-1.0), "smooth must be >= 0"),
    (lambda: segfuse.CrossEntropyLoss(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\]"),
    (lambda: segfuse.DiceLoss(class_weights=[1.0, -2.0]), "class_weights must hold finite values >= 0"),
    (lambda: segfuse.GeneralizedDiceLoss(weight_type="cube"), "weight_type must be one of"),
    (lambda: segfuse.FocalLoss(mode="binary", alpha=[0.1, 0.2]), "alpha must be None or a float"),
    (lambda: segfuse.DiceLoss(ignore_index=1.5), "ignore_index must be an int"),
])
def test_bad_arguments_name_the_argument(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_bad_tensors_name_the_shapes_and_dtypes():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    with pytest.raises(ValueError, match=r"\(2, 3, 6, 7\).*\(3, 6, 7\)"):
        SF.dice_loss(logits, labels[:1].expand(3, 6, 7))
    with pytest.raises(TypeError, match="integer class labels.*torch.float64"):
        SF.dice_loss(logits, labels.double())
    with pytest.raises(TypeError, match="input must be a floating tensor"):
        SF.dice_loss(labels.unsqueeze(1), labels)
    with pytest.raises(ValueError, match=r"class_weights must have 3 entries"):
        SF.dice_loss(logits, labels, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"alpha must have 3 entries"):
        SF.focal_loss(logits, labels, alpha=[0.1, 0.2])
    binary_logits, binary_target = make_inputs("binary", n=2)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        SF.dice_loss(binary_logits, binary_target * 2, mode="binary")


def test_validate_args_false_skips_the_value_check():
    logits, labels = make_inputs("multiclass", n=1, c=3)
    labels[0, 0, 0] = 2  # valid; with validate_args=False the loss runs without a host sync
    torch.testing.assert_close(SF.dice_loss(logits, labels, validate_args=False), SF.dice_loss(logits, labels))

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


OVERLAP_LOSSES = ("dice", "dice_log_per_image", "fbeta", "tversky", "jaccard", "generalized_dice", "dice_ce",
                  "dice_focal")


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("name", sorted(EVERY_LOSS))
def test_nan_logits_give_nan_never_a_perfect_score(name, mode):
    """Issue 11 (1): NaN logits gave a loss of 0.0 (ratio_or_one mapped a NaN denominator to 1)."""
    logits, target = make_inputs(mode, n=1, c=3, spatial=(4, 4), dtype=torch.float32)
    loss = EVERY_LOSS[name](torch.full_like(logits, float("nan")), target, mode)
    assert torch.isnan(loss), f"{name} gave {loss.item()} for NaN logits"
    if mode == "multiclass" and name in OVERLAP_LOSSES:
        assert torch.isnan(EVERY_LOSS[name](torch.full_like(logits, float("inf")), target, mode))


def test_nan_in_one_pixel_reaches_the_loss():
    logits, labels = make_inputs("multiclass", n=2, c=3, dtype=torch.float32)
    logits[1, 2, 3, 4] = float("nan")
    for fn in (SF.dice_loss, SF.jaccard_loss, SF.tversky_loss, SF.fbeta_loss):
        assert torch.isnan(fn(logits, labels)) and torch.isnan(fn(logits, labels, skip_absent=True))
    assert torch.isnan(SF.generalized_dice_loss(logits, labels))


def _every_module():
    return {
        "CrossEntropyLoss": segfuse.CrossEntropyLoss(ignore_index=255, weight=[1.0, 2.0, 0.5]),
        "DiceLoss": segfuse.DiceLoss(ignore_index=255),
        "DiceLoss_squared": segfuse.DiceLoss(ignore_index=255, squared=True, per_image=True),
        "FBetaLoss": segfuse.FBetaLoss(beta=2.0, ignore_index=255, class_weights=[1.0, 2.0, 1.0]),
        "TverskyLoss": segfuse.TverskyLoss(0.3, 0.7, 0.75, ignore_index=255),
        "JaccardLoss": segfuse.JaccardLoss(ignore_index=255, label_smoothing=0.1),
        "GeneralizedDiceLoss": segfuse.GeneralizedDiceLoss(ignore_index=255),
        "FocalLoss": segfuse.FocalLoss(ignore_index=255, gamma=0.5),
        "LovaszLoss": segfuse.LovaszLoss(ignore_index=255),
        "DiceCELoss": segfuse.DiceCELoss(ignore_index=255, class_weights=[1.0, 2.0, 0.5]),
        "DiceFocalLoss": segfuse.DiceFocalLoss(ignore_index=255),
        "WeightedSum": 1.0 * segfuse.CrossEntropyLoss(ignore_index=255) + 0.5 * segfuse.DiceLoss(ignore_index=255),
    }


@pytest.mark.parametrize("name", sorted(_every_module()))
def test_every_loss_runs_forward_and_backward_under_cpu_bf16_autocast(name):
    """Issue 11 (2): with ignore_index, backward under bf16 autocast raised a dtype mismatch (torch.bmm)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 1)
    x = torch.randn(2, 2, 8, 8)
    labels = torch.randint(0, 3, (2, 8, 8))
    labels[0, :2] = 255
    loss_fn = _every_module()[name]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(x)
        loss = loss_fn(logits, labels)
    loss.backward()
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    reference = loss_fn(logits.detach(), labels)  # the same bf16 logits, outside autocast
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("name", sorted(EVERY_LOSS))
def test_empty_batch_gives_zero_and_zero_gradient(name, mode):
    """Issue 11 (3): N = 0 raised "cannot reshape tensor of 0 elements"."""
    logits, target = make_inputs(mode, n=1, c=3, dtype=torch.float32)
    logits, target = logits[:0].clone().requires_grad_(True), target[:0]
    loss = EVERY_LOSS[name](logits, target, mode)
    loss.backward()
    assert loss.item() == 0.0 and loss.shape == ()
    assert logits.grad.shape == logits.shape


@pytest.mark.parametrize("name", sorted(_every_module()))
def test_empty_batch_modules(name):
    logits = torch.zeros(0, 3, 5, 4, requires_grad=True)
    loss = _every_module()[name](logits, torch.zeros(0, 5, 4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0


@pytest.mark.parametrize("name", sorted(_every_module()))
def test_class_map_with_a_singleton_channel_is_accepted(name):
    """Issue 11: (N, 1, H, W) class maps, as MONAI users pass them, equal (N, H, W)."""
    logits, labels = make_inputs("multiclass", n=2, c=3, ignore_index=255)
    loss_fn = _every_module()[name]
    torch.testing.assert_close(loss_fn(logits, labels.unsqueeze(1)), loss_fn(logits, labels))


def test_singleton_channel_float_target_is_not_taken_for_a_class_map():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    with pytest.raises(ValueError, match=r"dense target must have shape \(N, C, \*S\)"):
        SF.dice_loss(logits, labels.unsqueeze(1).double())


def test_sum_of_losses_builds_a_weighted_sum():
    """Issue 11: sum([A, B]) raised TypeError (0 + module)."""
    logits, labels = make_inputs("multiclass", n=2, c=3)
    combined = sum([segfuse.CrossEntropyLoss(), segfuse.DiceLoss(), 0.5 * segfuse.JaccardLoss()])
    assert isinstance(combined, segfuse.WeightedSum) and combined.weights == [1.0, 1.0, 0.5]
    expected = SF.cross_entropy(logits, labels) + SF.dice_loss(logits, labels) + 0.5 * SF.jaccard_loss(logits, labels)
    torch.testing.assert_close(combined(logits, labels), expected)
    assert sum([segfuse.DiceLoss()]).weights == [1.0]
    with pytest.raises(TypeError):
        1 + segfuse.DiceLoss()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(_every_module()))
def test_every_loss_runs_forward_and_backward_under_cuda_autocast(name, dtype):
    """Issue 11 (2) on a GPU: every loss under fp16 / bf16 autocast with ignore_index gives
    an fp32 finite loss and gradient, equal to the same half-precision logits outside autocast."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 1).cuda()
    x = torch.randn(2, 2, 8, 8, device="cuda")
    labels = torch.randint(0, 3, (2, 8, 8), device="cuda")
    labels[0, :2] = 255
    loss_fn = _every_module()[name]
    with torch.autocast("cuda", dtype=dtype):
        logits = conv(x)
        loss = loss_fn(logits, labels)
    loss.backward()
    assert logits.dtype == dtype and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(conv.weight.grad).all()
    reference = loss_fn(logits.detach(), labels)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)

"""Dice, F-beta, Tversky, Jaccard and generalized Dice against MONAI and the seeds."""

import pytest
import torch
import torch.nn.functional as F

import segfuse
import segfuse.functional as SF
from tests.losses.helpers import make_inputs

monai_losses = pytest.importorskip("monai.losses")


def onehot_monai_args(per_image):
    return dict(softmax=True, to_onehot_y=True, batch=not per_image)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("spatial", [(6, 7), (3, 4, 5)])
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_equals_monai(per_image, spatial, include_background):
    logits, labels = make_inputs("multiclass", n=3, c=5, spatial=spatial)
    expected = monai_losses.DiceLoss(**onehot_monai_args(per_image), include_background=include_background)(
        logits, labels.unsqueeze(1))
    actual = SF.dice_loss(logits, labels, per_image=per_image, include_background=include_background)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per_image", [False, True])
def test_dice_squared_and_sigmoid_equal_monai(per_image):
    logits, labels = make_inputs("multiclass", n=2, c=3)
    expected = monai_losses.DiceLoss(**onehot_monai_args(per_image), squared_pred=True)(logits, labels.unsqueeze(1))
    torch.testing.assert_close(SF.dice_loss(logits, labels, per_image=per_image, squared=True), expected)
    logits, target = make_inputs("multilabel", n=2, c=3)
    expected = monai_losses.DiceLoss(sigmoid=True, batch=not per_image)(logits, target.double())
    torch.testing.assert_close(SF.dice_loss(logits, target, mode="multilabel", per_image=per_image), expected)


@pytest.mark.parametrize("per_image", [False, True])
def test_jaccard_equals_monai_with_doubled_smoothing(per_image):
    # MONAI's Jaccard is (2 tp + s') / (2 (ps + gs - tp) + s'): ours with s = s' / 2.
    logits, labels = make_inputs("multiclass", n=3, c=4)
    expected = monai_losses.DiceLoss(**onehot_monai_args(per_image), jaccard=True, smooth_nr=0.2, smooth_dr=0.2)(
        logits, labels.unsqueeze(1))
    torch.testing.assert_close(SF.jaccard_loss(logits, labels, per_image=per_image, smooth=0.1), expected)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 0.7), (0.9, 0.1)])
def test_tversky_equals_monai(per_image, alpha, beta):
    logits, labels = make_inputs("multiclass", n=2, c=4, spatial=(5, 6, 3))
    expected = monai_losses.TverskyLoss(**onehot_monai_args(per_image), alpha=alpha, beta=beta)(
        logits, labels.unsqueeze(1))
    torch.testing.assert_close(SF.tversky_loss(logits, labels, alpha=alpha, beta=beta, per_image=per_image), expected)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("weight_type", ["square", "simple", "uniform"])
def test_generalized_dice_equals_monai(per_image, weight_type):
    logits, labels = make_inputs("multiclass", n=3, c=5)
    labels[labels == 2] = 1  # an absent class exercises the infinite-weight convention
    labels[0][labels[0] == 3] = 0  # absent from one image only
    expected = monai_losses.GeneralizedDiceLoss(**onehot_monai_args(per_image), w_type=weight_type)(
        logits, labels.unsqueeze(1))
    actual = SF.generalized_dice_loss(logits, labels, weight_type=weight_type, per_image=per_image)
    # MONAI computes its class weights in float32: agreement to float32 precision.
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7)


def seed_dice_loss(inputs, target_onehot_with_border, beta=1, smooth=1e-5):
    """Seed 000/001 Dice_loss: inputs (n, c, h, w) logits, target (n, h, w, c + 1) one-hot."""
    n, c, h, w = inputs.size()
    temp_inputs = torch.softmax(inputs.transpose(1, 2).transpose(2, 3).contiguous().view(n, -1, c), -1)
    temp_target = target_onehot_with_border.view(n, -1, c + 1)
    tp = torch.sum(temp_target[..., :-1] * temp_inputs, axis=[0, 1])
    fp = torch.sum(temp_inputs, axis=[0, 1]) - tp
    fn = torch.sum(temp_target[..., :-1], axis=[0, 1]) - tp
    score = ((1 + beta**2) * tp + smooth) / ((1 + beta**2) * tp + beta**2 * fn + fp + smooth)
    return 1 - torch.mean(score)


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
def test_fbeta_equals_seed_formula(beta):
    logits, labels = make_inputs("multiclass", n=2, c=4)
    onehot = F.one_hot(labels, 5).double()  # the seed's extra "border" channel stays empty
    expected = seed_dice_loss(logits, onehot, beta=beta)
    torch.testing.assert_close(SF.fbeta_loss(logits, labels, beta=beta), expected)
    if beta == 1.0:
        torch.testing.assert_close(SF.dice_loss(logits, labels), expected)


def test_dense_onehot_target_equals_class_map():
    logits, labels = make_inputs("multiclass", n=2, c=4)
    onehot = F.one_hot(labels, 4).movedim(-1, 1)
    for per_image in (False, True):
        torch.testing.assert_close(SF.dice_loss(logits, onehot, per_image=per_image),
                                   SF.dice_loss(logits, labels, per_image=per_image))


def test_convention_dice_smoothing_and_absent_classes():
    """Pins the Convention of overlap_loss: s in numerator and denominator, absent classes."""
    logits = torch.full((1, 3, 2, 2), -30.0, dtype=torch.float64)
    logits[:, 0] = 30.0  # predicts class 0 everywhere
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    losses = SF.dice_loss(logits, labels, reduction="none", smooth=1e-5)
    # class 0 perfect -> ~0; classes 1, 2 absent from target and prediction -> score s/(~0 + s) ~ 1, loss ~ 0
    assert losses[0] < 1e-6 and losses[1] < 1e-3 and losses[2] < 1e-3
    logits[:, 1] = 30.0  # now class 1 is predicted (tied with class 0) but absent from the target
    losses = SF.dice_loss(logits, labels, reduction="none")
    assert losses[1] > 0.99
    # skip_absent=True (smp): absent classes count 0 in a mean that still divides by C
    torch.testing.assert_close(SF.dice_loss(logits, labels, skip_absent=True), losses[0] / 3)
    # skip_absent="drop": absent classes leave the mean
    torch.testing.assert_close(SF.dice_loss(logits, labels, skip_absent="drop"), losses[0])


def test_convention_class_weights_are_a_weighted_mean():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    per_class = SF.dice_loss(logits, labels, reduction="none")
    weights = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    expected = (weights * per_class).sum() / weights.sum()
    torch.testing.assert_close(SF.dice_loss(logits, labels, class_weights=weights.tolist()), expected)


def test_log_loss_and_focal_tversky():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    per_class = SF.tversky_loss(logits, labels, reduction="none")
    torch.testing.assert_close(SF.tversky_loss(logits, labels, gamma=0.75), (per_class**0.75).mean())
    dice = SF.dice_loss(logits, labels, reduction="none")
    torch.testing.assert_close(SF.dice_loss(logits, labels, log_loss=True), (-torch.log(1 - dice)).mean())


def test_modules_equal_functions():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    pairs = [
        (segfuse.DiceLoss(per_image=True), SF.dice_loss(logits, labels, per_image=True)),
        (segfuse.FBetaLoss(beta=2.0), SF.fbeta_loss(logits, labels, beta=2.0)),
        (segfuse.TverskyLoss(alpha=0.2, beta=0.8, gamma=2.0), SF.tversky_loss(logits, labels, 0.2, 0.8, 2.0)),
        (segfuse.JaccardLoss(smooth=0.5), SF.jaccard_loss(logits, labels, smooth=0.5)),
        (segfuse.GeneralizedDiceLoss("simple"), SF.generalized_dice_loss(logits, labels, "simple")),
    ]
    for module, expected in pairs:
        torch.testing.assert_close(module(logits, labels), expected)


def test_binary_layouts_agree():
    logits, target = make_inputs("binary", n=2)
    a = SF.dice_loss(logits, target, mode="binary")
    b = SF.dice_loss(logits[:, 0], target[:, 0], mode="binary")
    c = SF.dice_loss(logits, target[:, 0], mode="binary")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    expected = monai_losses.DiceLoss(sigmoid=True, batch=True)(logits, target.double())
    torch.testing.assert_close(a, expected)


def test_resize_logits_reproduces_the_seed_interpolation():
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 8, 10))
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\).*\(2, 8, 10\)"):
        SF.dice_loss(logits, labels)
    resized = F.interpolate(logits, size=(8, 10), mode="bilinear", align_corners=True)
    torch.testing.assert_close(SF.dice_loss(logits, labels, resize_logits=True), SF.dice_loss(resized, labels))


def test_convention_generalized_dice_absent_class_takes_the_largest_finite_weight():
    from segfuse.losses.overlap import generalized_dice_weights

    gs = torch.tensor([[4.0, 0.0, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    weights = generalized_dice_weights(gs, "square")
    torch.testing.assert_close(weights[0], torch.tensor([1 / 16, 1 / 4, 1 / 4], dtype=torch.float64))
    assert torch.equal(weights[1], torch.zeros(3, dtype=torch.float64))  # every class absent: loss 0
    logits, labels = make_inputs("multiclass", n=1, c=3)
    labels = torch.zeros_like(labels)
    assert SF.generalized_dice_loss(logits, torch.full_like(labels, 255), ignore_index=255).item() == 0.0


def _smp_aggregate(per_class, gs, weights=None):
    """smp DiceLoss.forward / aggregate_loss: loss *= (gs > 0); weighted sum / sum(w) or mean."""
    per_class = per_class * (gs > 0)
    if weights is None:
        return per_class.mean()
    return (per_class * weights).sum() / weights.sum()


def test_convention_skip_absent_zero_keeps_absent_classes_in_the_mean():
    """skip_absent=True (= "zero"): smp's aggregation; "drop": absent classes leave the mean."""
    logits, labels = make_inputs("multiclass", n=2, c=4, spatial=(8, 8))
    labels[labels == 2] = 1  # class 2 absent
    per_class = SF.dice_loss(logits, labels, reduction="none")
    gs = torch.bincount(labels.flatten(), minlength=4)
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(SF.dice_loss(logits, labels, skip_absent=True), _smp_aggregate(per_class, gs))
    torch.testing.assert_close(SF.dice_loss(logits, labels, skip_absent="zero", class_weights=weights.tolist()),
                               _smp_aggregate(per_class, gs, weights))
    present = gs > 0
    torch.testing.assert_close(SF.dice_loss(logits, labels, skip_absent="drop"), per_class[present].mean())
    zeroed = SF.dice_loss(logits, labels, skip_absent=True, reduction="none")
    assert zeroed[2] == 0 and torch.equal(zeroed[present], per_class[present])


def test_convention_normalize_weights_false_is_the_mean_of_weighted_losses():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    weights = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    per_image = SF.dice_loss(logits, labels, per_image=True, reduction="none")
    torch.testing.assert_close(SF.dice_loss(logits, labels, per_image=True, class_weights=weights.tolist(),
                                            normalize_weights=False), (per_image * weights).mean())
    expected = monai_losses.DiceLoss(**onehot_monai_args(True), weight=weights)(logits, labels.unsqueeze(1))
    torch.testing.assert_close(SF.dice_loss(logits, labels, per_image=True, class_weights=weights.tolist(),
                                            normalize_weights=False), expected)


@pytest.mark.parametrize("per_image", [False, True])
def test_convention_pooling_class_sums_the_statistics_over_classes(per_image):
    logits, labels = make_inputs("multiclass", n=3, c=4, ignore_index=255)
    probs = torch.softmax(logits, 1) * (labels != 255).unsqueeze(1)
    onehot = F.one_hot(labels.masked_fill(labels == 255, 0), 4).movedim(-1, 1) * (labels != 255).unsqueeze(1)
    weights = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64).view(1, 4, 1, 1)
    dims = (1, 2, 3) if per_image else (0, 1, 2, 3)
    tp, ps, gs = ((probs * onehot * weights).sum(dims), (probs * weights).sum(dims), (onehot * weights).sum(dims))
    for name, fn, ratio in [("dice", SF.dice_loss, (2 * tp + 1e-5) / (ps + gs + 1e-5)),
                            ("jaccard", SF.jaccard_loss, (tp + 1e-5) / (ps + gs - tp + 1e-5)),
                            ("tversky", lambda *a, **k: SF.tversky_loss(*a, alpha=0.3, beta=0.7, **k),
                             (tp + 1e-5) / (tp + 0.3 * (ps - tp) + 0.7 * (gs - tp) + 1e-5)),
                            ("fbeta", lambda *a, **k: SF.fbeta_loss(*a, beta=2.0, **k),
                             (5 * tp + 1e-5) / (5 * tp + (ps - tp) + 4 * (gs - tp) + 1e-5))]:
        actual = fn(logits, labels, pooling="class", per_image=per_image, ignore_index=255,
                    class_weights=weights.flatten().tolist(), reduction="none")
        torch.testing.assert_close(actual, 1 - ratio, msg=name)
    with pytest.raises(ValueError, match="skip_absent has no meaning with pooling='class'"):
        SF.dice_loss(logits, labels, pooling="class", skip_absent=True, ignore_index=255)


def test_convention_soft_label_is_minimised_at_the_soft_target():
    """MONAI's soft_label: tp = sum min(p, g); for g = 0.5 the loss is 0 at p = 0.5, not at p = 1."""
    target = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    half = torch.full_like(target, 0.5)
    one = torch.ones_like(target)
    soft = [SF.dice_loss(p, target, mode="binary", from_logits=False, soft_label=True, smooth=0) for p in (half, one)]
    plain = [SF.dice_loss(p, target, mode="binary", from_logits=False, smooth=0) for p in (half, one)]
    assert soft[0].item() == pytest.approx(0.0, abs=1e-12) and soft[1].item() > 0.3
    assert plain[1] < plain[0]  # the plain formula prefers p = 1 for a 0.5 target
    logits, labels = make_inputs("multiclass", n=2, c=3)
    onehot = F.one_hot(labels, 3).movedim(-1, 1)
    torch.testing.assert_close(SF.dice_loss(logits, onehot, soft_label=True), SF.dice_loss(logits, labels))


@pytest.mark.parametrize("soft_label", [False, True])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("per_image", [False, True])
def test_convention_label_smoothing_equals_the_smoothed_dense_target(soft_label, squared, per_image):
    """A class map with label_smoothing eps equals the dense target (1 - eps) onehot + eps / C,
    at valid pixels only; no one-hot is built for the class map."""
    logits, labels = make_inputs("multiclass", n=2, c=4, ignore_index=255)
    eps = 0.2
    valid = (labels != 255).unsqueeze(1)
    onehot = F.one_hot(labels.masked_fill(~valid.squeeze(1), 0), 4).movedim(-1, 1).double()
    smoothed = ((1 - eps) * onehot + eps / 4) * valid
    kwargs = dict(per_image=per_image, squared=squared, soft_label=soft_label, reduction="none")
    actual = SF.jaccard_loss(logits, labels, ignore_index=255, label_smoothing=eps, **kwargs)
    # the dense reference: probabilities of ignored pixels zeroed as the ignore_index does
    probs = torch.softmax(logits, 1) * valid
    expected = SF.jaccard_loss(probs, smoothed, from_logits=False, **kwargs)
    torch.testing.assert_close(actual, expected)


def test_label_smoothing_in_sigmoid_modes_uses_two_classes():
    logits, target = make_inputs("multilabel", n=2, c=3, ignore_index=255)
    valid = target != 255
    smoothed = torch.where(valid, target.double() * 0.9 + 0.05, 255.0)
    torch.testing.assert_close(SF.dice_loss(logits, target, mode="multilabel", ignore_index=255, label_smoothing=0.1),
                               SF.dice_loss(logits, smoothed, mode="multilabel", ignore_index=255))


def test_convention_smooth_nr_and_smooth_dr_replace_smooth():
    logits, labels = make_inputs("multiclass", n=2, c=3)
    for nr, dr in [(0.0, 1e-3), (1.0, 0.5)]:
        expected = monai_losses.DiceLoss(**onehot_monai_args(False), smooth_nr=nr, smooth_dr=dr)(
            logits, labels.unsqueeze(1))
        torch.testing.assert_close(SF.dice_loss(logits, labels, smooth=7.0, smooth_nr=nr, smooth_dr=dr), expected)
        expected = monai_losses.TverskyLoss(**onehot_monai_args(True), alpha=0.3, beta=0.7, smooth_nr=nr,
                                            smooth_dr=dr)(logits, labels.unsqueeze(1))
        torch.testing.assert_close(SF.tversky_loss(logits, labels, 0.3, 0.7, per_image=True, smooth_nr=nr,
                                                   smooth_dr=dr), expected)
        expected = monai_losses.GeneralizedDiceLoss(**onehot_monai_args(False), smooth_nr=nr, smooth_dr=dr)(
            logits, labels.unsqueeze(1))
        torch.testing.assert_close(SF.generalized_dice_loss(logits, labels, smooth_nr=nr, smooth_dr=dr), expected,
                                   rtol=1e-6, atol=1e-7)
    # no smoothing: an absent class predicted nowhere is 0 / 0 and scores 1 (loss 0)
    probs = torch.tensor([1.0, 0.0], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    empty = SF.dice_loss(probs, torch.zeros(1, 2, 2, dtype=torch.long), smooth_nr=0.0, smooth_dr=0.0,
                         from_logits=False, reduction="none")
    assert empty.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("make, message", [
    (lambda: segfuse.DiceLoss(skip_absent="yes"), "skip_absent must be one of"),
    (lambda: segfuse.DiceLoss(pooling="micro"), "pooling must be one of"),
    (lambda: segfuse.DiceLoss(normalize_weights=1), "normalize_weights must be True or False"),
    (lambda: segfuse.DiceLoss(soft_label="no"), "soft_label must be True or False"),
    (lambda: segfuse.JaccardLoss(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\], got 1.5"),
    (lambda: segfuse.TverskyLoss(smooth_nr=-1.0), "smooth_nr must be >= 0, got -1.0"),
    (lambda: segfuse.FBetaLoss(smooth_dr="a"), "smooth_dr must be a number, got str"),
    (lambda: segfuse.DiceLoss(pooling="class", skip_absent="drop"), "skip_absent has no meaning"),
    (lambda: segfuse.GeneralizedDiceLoss(pooling="class"), "GeneralizedDiceLoss does not take pooling"),
    (lambda: segfuse.DiceLoss(weights=[1.0]), r"unexpected arguments \['weights'\]"),
    (lambda: segfuse.DiceCELoss(label_smoothing=-0.1), "label_smoothing must be >= 0"),
    (lambda: segfuse.DiceCELoss(dice_label_smoothing=-0.1), "dice_label_smoothing must be >= 0"),
    (lambda: segfuse.DiceCELoss(pos_weight=[-1.0]), "pos_weight must hold finite values >= 0"),
    (lambda: segfuse.DiceFocalLoss(pooling="x"), "pooling must be one of"),
    (lambda: segfuse.DiceFocalLoss(smoth=1.0), r"unexpected arguments \['smoth'\]"),
])
def test_new_switches_are_validated(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_new_switches_are_validated_in_the_functions():
    logits, labels = make_inputs("multiclass", n=1, c=3)
    with pytest.raises(ValueError, match="skip_absent must be one of"):
        SF.dice_loss(logits, labels, skip_absent="all")
    with pytest.raises(ValueError, match="pooling must be one of"):
        SF.tversky_loss(logits, labels, pooling="micro")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        SF.generalized_dice_loss(logits, labels, label_smoothing=2.0)
    with pytest.raises(ValueError, match=r"dice_label_smoothing must be in \[0, 1\]"):
        SF.dice_ce_loss(logits, labels, dice_label_smoothing=3.0)

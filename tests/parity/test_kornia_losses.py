"""kornia's own loss test cases (dice, focal, tversky, lovasz), ported.

Peer: kornia at commit b4f5a78a13891c7ac4c1cd9695941380273e981d (v0.9.0rc1-61),
tests/losses/test_dice.py, test_focal_loss.py, test_tversky.py, test_lovaz_hinge.py,
test_lovaz_softmax.py; each test names the kornia test method. The installed kornia
(0.9.0) also serves as a live oracle.

kornia's conventions and segfuse configured to them: dice_loss(average="micro") and
tversky_loss pool tp, fp, fn over the classes of each image (``pooling="class",
per_image=True``), average="macro" is one score per class and image; eps is in the
denominator only (``smooth_nr=0, smooth_dr=eps``); ignore_index defaults to -100. kornia's
focal alpha is (1 - alpha, alpha, alpha, ...) per class, and its means run over every
entry of the one-hot loss tensor (N * C * S); segfuse's over the N * S pixels.
"""

import pytest
import torch

import segfuse
import segfuse.functional as SF

kornia = pytest.importorskip("kornia")

SOURCE = "kornia b4f5a78 tests/losses"


def kornia_dice(pred, labels, average="micro", eps=1e-8, weight=None, ignore_index=-100, **extra):
    """segfuse's Dice configured as kornia.losses.dice_loss."""
    return SF.dice_loss(pred, labels, pooling="class" if average == "micro" else "none", per_image=True,
                        smooth_nr=0.0, smooth_dr=eps, class_weights=None if weight is None else weight.tolist(),
                        ignore_index=ignore_index, **extra)


def kornia_tversky(pred, labels, alpha, beta, eps=1e-8, ignore_index=-100):
    return SF.tversky_loss(pred, labels, alpha, beta, pooling="class", per_image=True, smooth_nr=0.0, smooth_dr=eps,
                           ignore_index=ignore_index)


# ---- test_dice.py ------------------------------------------------------------------------

def test_dice_smoke_and_module():
    """kornia TestDiceLoss.test_smoke and test_module; the live kornia is the oracle."""
    torch.manual_seed(0)
    logits = torch.rand(2, 3, 3, 2)
    labels = (torch.rand(2, 3, 2) * 3).long()
    for average in ("micro", "macro"):
        expected = kornia.losses.dice_loss(logits, labels, average=average)
        torch.testing.assert_close(kornia_dice(logits, labels, average), expected)
    torch.testing.assert_close(segfuse.DiceLoss(pooling="class", per_image=True, smooth_nr=0.0, smooth_dr=1e-8)(
        logits, labels), kornia.losses.DiceLoss()(logits, labels))


@pytest.mark.parametrize("ignore_index", [-100, None])
def test_dice_all_zeros(ignore_index):
    """kornia TestDiceLoss.test_all_zeros: a confident right prediction, loss about 0 (atol 1e-3)."""
    logits = torch.zeros(2, 3, 1, 2)
    logits[:, 0] = 10.0
    logits[:, 1] = 1.0
    logits[:, 2] = 1.0
    labels = torch.zeros(2, 1, 2, dtype=torch.int64)
    loss = kornia_dice(logits, labels, ignore_index=ignore_index)
    torch.testing.assert_close(loss, torch.zeros_like(loss), rtol=1e-3, atol=1e-3)


def test_dice_exception():
    """kornia TestDiceLoss.test_exception. Shapes that differ are a ValueError in both. A
    documented difference: kornia accepts only (B, N, H, W); segfuse takes any (N, C, *S),
    so kornia's 3-D "Invalid pred shape" input is a valid 1-D case here."""
    with pytest.raises(ValueError, match="must have the same shape|must match"):
        SF.dice_loss(torch.rand(1, 1, 1, 1), torch.rand(1, 1, 1, 2))
    assert torch.isfinite(SF.dice_loss(torch.rand(1, 1, 1), torch.rand(1, 1, 1)))


def test_dice_averaging_micro():
    """kornia TestDiceLoss.test_averaging_micro: the hand-derived expected loss. kornia's
    labels have batch 2 against logits of batch 1 (it broadcasts); both images are the same,
    so segfuse takes one."""
    eps = 1e-8
    logits = torch.zeros(1, 2, 4, 1)
    logits[:, 0, 0:3] = 10.0
    logits[:, 0, 3:4] = 1.0
    logits[:, 1, 0:3] = 1.0
    logits[:, 1, 3:4] = 10.0
    labels = torch.zeros(1, 4, 1, dtype=torch.int64)
    exp_1, exp_10 = torch.exp(torch.tensor(1.0)), torch.exp(torch.tensor(10.0))
    intersection = (3.0 * exp_10 + 1.0 * exp_1) / (exp_1 + exp_10)
    expected = 1.0 - 2.0 * intersection / (8.0 + eps)
    torch.testing.assert_close(kornia_dice(logits, labels, eps=eps), expected, rtol=1e-3, atol=1e-3)


def test_dice_averaging_macro():
    """kornia TestDiceLoss.test_averaging_macro: the hand-derived expected loss (labels as above)."""
    eps = 1e-8
    logits = torch.zeros(1, 2, 1, 4)
    logits[:, 0, :, 0:3] = 10.0
    logits[:, 0, :, 3:4] = 1.0
    logits[:, 1, :, 0:3] = 1.0
    logits[:, 1, :, 3:4] = 10.0
    labels = torch.zeros(1, 1, 4, dtype=torch.int64)
    exp_1, exp_10 = torch.exp(torch.tensor(1.0)), torch.exp(torch.tensor(10.0))
    intersection_1 = (3.0 * exp_10 + exp_1) / (exp_1 + exp_10)
    cardinality_1 = 4.0 + (3.0 * exp_10 + 1.0 * exp_1) / (exp_1 + exp_10)
    cardinality_2 = 0.0 + (1.0 * exp_10 + 3.0 * exp_1) / (exp_1 + exp_10)
    expected = ((1.0 - 2.0 * intersection_1 / (cardinality_1 + eps)) + (1.0 - 0.0 / (cardinality_2 + eps))) / 2.0
    torch.testing.assert_close(kornia_dice(logits, labels, "macro", eps=eps), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("average", ["micro", "macro"])
def test_dice_weight(average):
    """kornia TestDiceLoss.test_weight: class 0 right (0), class 1 wrong (1), class 2 partly
    right (1/5), a zero-weight extra class changes nothing, and non-binary weights: macro
    0.7 as kornia. Micro with weights (0.3, 0.7): kornia's test at b4f5a78 expects
    1 - 2 * 0.3^2 / 1.3 (p and g both multiplied by w, so the intersection carried w^2);
    the kornia 0.9.0 release computes 2 sum(w p t) / sum(w (p + t)), w once, as segfuse
    does (1 - 2 * 0.3 / 1.3), which keeps the loss invariant to the scale of the weights.
    segfuse asserts the linear value and agrees with the installed kornia."""
    eps = 1e-8
    logits = torch.zeros(4, 3, 1, 4)
    logits[:, 0, :, 0] = 100.0
    logits[:, 2, :, 1:] = 100.0
    labels = torch.tensor([0, 1, 2, 2], dtype=torch.int64).expand((4, 1, -1))
    for weight, expected in (([1.0, 0.0, 0.0], 0.0), ([0.0, 1.0, 0.0], 1.0), ([0.0, 0.0, 1.0], 0.2)):
        loss = kornia_dice(logits, labels, average, eps=eps, weight=torch.tensor(weight))
        torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-3, atol=1e-3)
    padded = torch.cat([logits, logits.new_zeros((4, 1, 1, 4))], dim=1)
    torch.testing.assert_close(kornia_dice(padded, labels, average, eps=eps, weight=torch.tensor([1.0, 1.0, 1.0, 0.0])),
                               kornia_dice(logits, labels, average, eps=eps), rtol=1e-3, atol=1e-3)
    weight = torch.tensor([0.3, 0.7, 0.0])
    ours = kornia_dice(logits, labels, average, eps=eps, weight=weight)
    if average == "macro":
        torch.testing.assert_close(ours, torch.tensor(0.7), rtol=1e-3, atol=1e-3)
    else:
        torch.testing.assert_close(ours, torch.tensor(1 - 2 * 0.3 / 1.3), rtol=1e-3, atol=1e-3)
        assert abs(ours.item() - (1 - 2 * 0.3**2 / 1.3)) > 0.3  # the b4f5a78 expectation, w^2
        kornia_value = kornia.losses.dice_loss(logits, labels, average="micro", eps=eps, weight=weight)
        torch.testing.assert_close(ours, kornia_value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(kornia_dice(logits, labels, average, eps=eps, weight=weight * 10), ours)


@pytest.mark.parametrize("ignore_index", [-100, 255])
def test_dice_ignore_index(ignore_index):
    """kornia TestDiceLoss.test_ignore_index: 0.5 with the last two pixels ignored."""
    logits = torch.zeros(2, 2, 1, 4)
    logits[:, 0, :, 0] = 100.0
    logits[:, 1, :, 1:] = 100.0
    labels = torch.zeros(2, 1, 4, dtype=torch.int64)
    labels[..., 2:] = ignore_index
    torch.testing.assert_close(kornia_dice(logits, labels, ignore_index=ignore_index), torch.tensor(0.5),
                               rtol=1e-3, atol=1e-3)


def test_dice_gradcheck_and_dynamo():
    """kornia TestDiceLoss.test_gradcheck (float64, -100 ignored) and test_dynamo."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(2, 3, 3, 2, dtype=torch.float64, generator=generator).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 3, 2), generator=generator)
    labels[torch.rand(2, 3, 2, generator=generator) > 0.8] = -100
    assert torch.autograd.gradcheck(lambda x: kornia_dice(x, labels), (logits,))
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, y: kornia_dice(x, y, validate_args=False), backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(logits.detach(), labels), kornia_dice(logits.detach(), labels))


# ---- test_tversky.py ---------------------------------------------------------------------

def test_tversky_smoke_module_and_oracle():
    """kornia TestTverskyLoss.test_smoke and test_module, with the parameters of its
    test_dynamo (0.5, 0.05) too. kornia's tversky_loss changed convention between the commit
    whose tests are ported (b4f5a78: tp, fp, fn pooled over the classes of each image) and the
    installed 0.9.0 release (one score per class present in the image, averaged over them):
    segfuse reproduces both, the second as ``skip_absent="drop", per_image=True``."""
    torch.manual_seed(0)
    logits = torch.rand(2, 3, 3, 2)
    labels = (torch.rand(2, 3, 2) * 3).long()
    for alpha, beta in ((0.5, 0.5), (0.5, 0.05)):
        assert torch.isfinite(kornia_tversky(logits, labels, alpha, beta))
        per_class = SF.tversky_loss(logits, labels, alpha, beta, per_image=True, skip_absent="drop", smooth_nr=0.0,
                                    smooth_dr=1e-8, ignore_index=-100)
        torch.testing.assert_close(per_class, kornia.losses.tversky_loss(logits, labels, alpha, beta))


def test_tversky_exception():
    """kornia TestTverskyLoss.test_exception: not a tensor (TypeError), a 1-D prediction and
    shapes that differ (ValueError)."""
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        SF.tversky_loss("not a tensor", torch.rand(1))
    with pytest.raises(ValueError, match=r"at least 2 dims"):
        SF.tversky_loss(torch.rand(1), torch.rand(1))
    with pytest.raises(ValueError):
        SF.tversky_loss(torch.rand(1, 1, 1, 1), torch.rand(1, 1, 1, 2))


@pytest.mark.parametrize("ignore_index", [-100, None])
def test_tversky_all_zeros(ignore_index):
    """kornia TestTverskyLoss.test_all_zeros."""
    logits = torch.zeros(2, 3, 1, 2)
    logits[:, 0] = 10.0
    logits[:, 1] = 1.0
    logits[:, 2] = 1.0
    labels = torch.zeros(2, 1, 2, dtype=torch.int64)
    loss = kornia_tversky(logits, labels, 0.5, 0.5, ignore_index=ignore_index)
    torch.testing.assert_close(loss, torch.zeros_like(loss), atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("ignore_index", [-100, 255])
def test_tversky_ignore_index(ignore_index):
    """kornia TestTverskyLoss.test_ignore_index: 0.5."""
    logits = torch.zeros(2, 2, 1, 4)
    logits[:, 0, :, 0] = 100.0
    logits[:, 1, :, 1:] = 100.0
    labels = torch.zeros(2, 1, 4, dtype=torch.int64)
    labels[..., 2:] = ignore_index
    torch.testing.assert_close(kornia_tversky(logits, labels, 0.5, 0.5, ignore_index=ignore_index),
                               torch.tensor(0.5), rtol=1e-3, atol=1e-3)


def test_tversky_gradcheck():
    """kornia TestTverskyLoss.test_gradcheck (float64, -100 ignored)."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.rand(2, 3, 3, 2, dtype=torch.float64, generator=generator).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 3, 2), generator=generator)
    labels[torch.rand(2, 3, 2, generator=generator) > 0.8] = -100
    assert torch.autograd.gradcheck(lambda x: kornia_tversky(x, labels, 0.5, 0.5), (logits,))


# ---- test_focal_loss.py ------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("ignore_index", [-100, None])
def test_binary_focal_value_same_as_torch_bce_loss(reduction, ignore_index):
    """kornia TestBinaryFocalLossWithLogits.test_value_same_as_torch_bce_loss (soft labels)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(2, 3, 2, generator=generator)
    labels = torch.rand(2, 3, 2, generator=generator)
    ours = SF.focal_loss(logits, labels, "multilabel", alpha=None, gamma=0.0, reduction=reduction,
                         ignore_index=ignore_index)
    torch.testing.assert_close(ours, torch.nn.functional.binary_cross_entropy_with_logits(logits, labels,
                                                                                        reduction=reduction))


def test_binary_focal_shapes_and_oracle():
    """kornia TestBinaryFocalLossWithLogits.test_shape_alpha_gamma (27 rows) and
    test_shape_ignore_index (6 rows): output shapes on kornia's soft labels; kornia is the
    oracle for the values on hard labels. For soft labels t the two differ by design:
    segfuse is torchvision's BCE(x, t) (1 - p_t)^gamma with p_t = p t + (1 - p)(1 - t);
    kornia 0.9.0 weighs the two BCE halves separately, -(1 - p)^gamma t log p -
    p^gamma (1 - t) log(1 - p). They agree for t in {0, 1} and for gamma = 0."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(2, 3, 2, generator=generator)
    labels = torch.rand(2, 3, 2, generator=generator)
    hard = (labels > 0.5).float()
    for reduction, shape in (("none", (2, 3, 2)), ("mean", ()), ("sum", ())):
        for alpha in (None, 0.2, 0.5):
            for gamma in (0.0, 1.0, 2.0):
                ours = SF.focal_loss(logits, labels, "multilabel", alpha=alpha, gamma=gamma, reduction=reduction)
                assert ours.shape == shape
                expected = kornia.losses.binary_focal_loss_with_logits(logits, hard, alpha=alpha, gamma=gamma,
                                                                       reduction=reduction)
                torch.testing.assert_close(SF.focal_loss(logits, hard, "multilabel", alpha=alpha, gamma=gamma,
                                                         reduction=reduction), expected)
        for ignore_index in (-100, 255):
            ignored = labels.clone()
            ignored[torch.rand(2, 3, 2, generator=generator) > 0.6] = ignore_index
            ours = SF.focal_loss(logits, ignored, "multilabel", alpha=0.8, gamma=0.5, reduction=reduction,
                                 ignore_index=ignore_index)
            assert ours.shape == shape


def test_binary_focal_numeric_stability_gradcheck_and_module():
    """kornia TestBinaryFocalLossWithLogits.test_numeric_stability ([[100, -100]] -> [[0, 0]]),
    test_gradcheck, test_gradcheck_ignore_index and test_module (alpha 0.25, gamma 2)."""
    stable = SF.focal_loss(torch.tensor([[100.0, -100.0]]), torch.tensor([[1.0, 0.0]]), "multilabel", alpha=0.25,
                           reduction="none")
    torch.testing.assert_close(stable, torch.zeros(1, 2))
    generator = torch.Generator().manual_seed(2)
    logits = torch.rand(2, 3, 2, dtype=torch.float64, generator=generator).requires_grad_(True)
    labels = torch.rand(2, 3, 2, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(lambda x: SF.focal_loss(x, labels, "multilabel", 0.25, 2.0), (logits,))
    labels[torch.rand(2, 3, 2, generator=generator) > 0.8] = -100
    assert torch.autograd.gradcheck(lambda x: SF.focal_loss(x, labels, "multilabel", 0.25, 2.0, ignore_index=-100),
                                    (logits,))
    torch.testing.assert_close(segfuse.FocalLoss("multilabel", 0.25, 2.0)(logits, labels.clamp(0, 1)),
                               SF.focal_loss(logits, labels.clamp(0, 1), "multilabel", 0.25, 2.0))


def _kornia_alpha(alpha, num_classes):
    return None if alpha is None else [1 - alpha] + [alpha] * (num_classes - 1)


def test_focal_shapes_and_values_against_kornia():
    """kornia TestFocalLoss.test_shape_alpha_gamma (27 rows), test_shape_target_with_only_one_dim
    (3 rows) and test_shape_weight (6 rows, weight=None rows). A documented difference:
    kornia's "none" is the one-hot loss tensor (N, C, *S) and its mean divides by N * C * S;
    segfuse's "none" is per pixel (N, *S) (kornia's summed over C) and its mean divides by
    the N * S pixels. kornia is the oracle for the values."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(2, 3, 3, 2, generator=generator)
    labels = torch.randint(3, (2, 3, 2), generator=generator)
    for alpha in (None, 0.2, 0.5):
        for gamma in (0.0, 1.0, 2.0):
            ours = SF.focal_loss(logits, labels, alpha=_kornia_alpha(alpha, 3), gamma=gamma, reduction="none")
            assert ours.shape == (2, 3, 2)
            theirs = kornia.losses.focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction="none")
            assert theirs.shape == (2, 3, 3, 2)
            torch.testing.assert_close(ours, theirs.sum(1))
            mean = SF.focal_loss(logits, labels, alpha=_kornia_alpha(alpha, 3), gamma=gamma)
            torch.testing.assert_close(mean / 3, kornia.losses.focal_loss(logits, labels, alpha, gamma, "mean"))
            total = SF.focal_loss(logits, labels, alpha=_kornia_alpha(alpha, 3), gamma=gamma, reduction="sum")
            torch.testing.assert_close(total, kornia.losses.focal_loss(logits, labels, alpha, gamma, "sum"))
    flat_logits, flat_labels = torch.rand(2, 3, generator=generator), torch.randint(3, (2,), generator=generator)
    for reduction, shape in (("none", (2,)), ("mean", ()), ("sum", ())):
        assert SF.focal_loss(flat_logits, flat_labels, alpha=_kornia_alpha(0.1, 3), gamma=1.5,
                             reduction=reduction).shape == shape


@pytest.mark.parametrize("ignore_index", [-100, 255])
def test_focal_value_ignore_index(ignore_index):
    """kornia TestFocalLoss.test_value_ignore_index and test_shape_ignore_index: ignored pixels
    give 0, and the others equal kornia's construction with an extra class of -inf logits."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.rand(2, 3, 3, 2, generator=generator)
    labels = torch.randint(3, (2, 3, 2), generator=generator)
    ignore = torch.rand(2, 3, 2, generator=generator) > 0.6
    labels[ignore] = ignore_index
    extra_labels = labels.clone()
    extra_labels[ignore] = 3
    extra_logits = torch.cat([logits, logits.new_full((2, 1, 3, 2), float("-inf"))], dim=1)
    alpha = _kornia_alpha(0.8, 3)
    ours = SF.focal_loss(logits, labels, alpha=alpha, gamma=0.5, reduction="none", ignore_index=ignore_index)
    expected = kornia.losses.focal_loss(extra_logits, extra_labels, alpha=0.8, gamma=0.5, reduction="none")[:, :-1]
    torch.testing.assert_close(ours, expected.sum(1))
    assert torch.all(ours[ignore] == 0)
    theirs = kornia.losses.focal_loss(logits, labels, alpha=0.8, gamma=0.5, reduction="none", ignore_index=ignore_index)
    torch.testing.assert_close(ours, theirs.sum(1))


def test_focal_gradcheck_and_module():
    """kornia TestFocalLoss.test_gradcheck (float64, -100 ignored) and test_module."""
    generator = torch.Generator().manual_seed(4)
    logits = torch.rand(2, 3, 3, 2, dtype=torch.float64, generator=generator).requires_grad_(True)
    labels = torch.randint(3, (2, 3, 2), generator=generator)
    labels[torch.rand(2, 3, 2, generator=generator) > 0.8] = -100
    alpha = _kornia_alpha(0.25, 3)
    assert torch.autograd.gradcheck(lambda x: SF.focal_loss(x, labels, alpha=alpha, ignore_index=-100), (logits,))
    torch.testing.assert_close(segfuse.FocalLoss(alpha=alpha, ignore_index=-100)(logits, labels),
                               SF.focal_loss(logits, labels, alpha=alpha, ignore_index=-100))


# ---- test_lovaz_hinge.py / test_lovaz_softmax.py -----------------------------------------

def test_lovasz_hinge_cases():
    """kornia TestLovaszHingeLoss.test_smoke, test_multi_class (more than one channel with a
    class map is an error in binary mode), test_perfect_prediction (0) and test_gradcheck.
    kornia's hinge is the mean of per-image losses: ``per_image=True``; kornia is the oracle."""
    generator = torch.Generator().manual_seed(5)
    logits = torch.rand(2, 1, 3, 2, generator=generator)
    labels = torch.randint(0, 2, (2, 3, 2), generator=generator)
    torch.testing.assert_close(SF.lovasz_loss(logits, labels, "binary", per_image=True),
                               kornia.losses.lovasz_hinge_loss(logits, labels))
    with pytest.raises(ValueError):
        SF.lovasz_loss(torch.rand(2, 5, 3, 2), torch.randint(0, 5, (2, 3, 2)), "binary")
    perfect = SF.lovasz_loss(torch.ones(2, 1, 1, 2), torch.ones(2, 1, 2, dtype=torch.int64), "binary", per_image=True)
    assert perfect.item() == pytest.approx(0.0, abs=1e-3)
    x = torch.rand(2, 1, 3, 2, dtype=torch.float64, generator=generator).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: SF.lovasz_loss(v, labels, "binary", per_image=True), (x,))


def test_lovasz_softmax_cases():
    """kornia TestLovaszSoftmaxLoss.test_smoke, test_all_ones (0), test_gradcheck and
    test_module; kornia's loss is ``per_image=True, classes="all"`` (kornia is the oracle).
    test_weight is a documented difference: segfuse's Lovasz has no class weights; kornia's
    0.5 is w_0 l_0 / C with l_0 = 1 (class 0 predicted everywhere, absent), which segfuse
    gives for ``classes=[0]`` before kornia's division by C = 2."""
    generator = torch.Generator().manual_seed(6)
    logits = torch.rand(2, 4, 3, 2, generator=generator)
    labels = torch.randint(0, 4, (2, 3, 2), generator=generator)
    torch.testing.assert_close(SF.lovasz_loss(logits, labels, per_image=True, classes="all"),
                               kornia.losses.lovasz_softmax_loss(logits, labels))
    prediction = torch.zeros(2, 2, 1, 2)
    prediction[:, 1] = 100.0
    ones = torch.ones(2, 1, 2, dtype=torch.int64)
    assert SF.lovasz_loss(prediction, ones, per_image=True, classes="all").item() == pytest.approx(0.0, abs=1e-3)
    wrong = torch.zeros(2, 2, 1, 2)
    wrong[:, 0] = 100.0
    assert SF.lovasz_loss(wrong, ones, per_image=True, classes=[0]).item() / 2 == pytest.approx(0.5, abs=1e-3)
    x = torch.rand(2, 4, 3, 2, dtype=torch.float64, generator=generator).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: SF.lovasz_loss(v, labels, per_image=True, classes="all"), (x,))

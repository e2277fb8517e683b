"""MONAI's own loss test cases, ported: segfuse configured to MONAI's convention reproduces them.

Peer: MONAI 1.5.0 (commit d388d1c6fec8cb3a0eebee5b5a0b9776ca59ca83), tests/losses/:
test_dice_loss.py, test_generalized_dice_loss.py, test_tversky_loss.py,
test_masked_dice_loss.py, test_focal_loss.py, test_dice_ce_loss.py,
test_dice_focal_loss.py. The fixed cases are in :mod:`tests.parity.monai_cases` (copied
verbatim); each test names the file and the case. Tolerances are MONAI's own. The
installed MONAI (1.6.1) is also run on every case as a live oracle.

How MONAI's arguments map to segfuse's (``monai_config``):
    batch=False -> per_image=True; sigmoid -> mode="multilabel"; softmax -> "multiclass";
    no activation or other_act=f -> from_logits=False on f(input) (per channel);
    to_onehot_y -> a one-hot target; smooth_nr / smooth_dr, squared_pred, soft_label,
    include_background -> the same switches; jaccard=True -> jaccard_loss with half of
    each smoothing; weight -> class_weights with normalize_weights=False (MONAI's mean of
    w_c l_c); reduction "none" -> our (N, C) against MONAI's (N, C, 1, ...).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segfuse.functional as SF
from tests.parity import monai_cases as cases

monai_losses = pytest.importorskip("monai.losses")

SOURCE = "MONAI 1.5.0 tests/losses"
ACTIVATIONS = {"tanh": torch.tanh, "log_softmax": lambda x: torch.log_softmax(x, dim=1)}


def monai_config(args: dict, input, target):
    """(segfuse keyword arguments, input, target) reproducing MONAI's loss with ``args``."""
    args = dict(args)
    channels = input.shape[1]
    kwargs = dict(per_image=not args.pop("batch", False), smooth_nr=args.pop("smooth_nr", 1e-5),
                  smooth_dr=args.pop("smooth_dr", 1e-5), reduction=args.pop("reduction", "mean"))
    include_background = args.pop("include_background", True)
    kwargs["include_background"] = include_background or channels == 1  # MONAI ignores it for one channel
    if args.pop("to_onehot_y", False) and channels > 1:
        target = F.one_hot(target[:, 0].long(), channels).movedim(-1, 1)
    if args.pop("softmax", False):
        kwargs["mode"] = "multiclass"
    else:
        kwargs["mode"] = "multilabel"
        if not args.pop("sigmoid", False):
            act = args.pop("other_act", None)
            input = ACTIVATIONS[act](input) if act else input
            kwargs["from_logits"] = False
    kwargs["squared"] = args.pop("squared_pred", False)
    kwargs["soft_label"] = args.pop("soft_label", False)
    if "weight" in args:
        kwargs["class_weights"] = list(args.pop("weight"))
        kwargs["normalize_weights"] = False
    if "w_type" in args:
        kwargs["weight_type"] = args.pop("w_type")
    for name in ("alpha", "beta", "jaccard"):
        if name in args:
            kwargs[name] = args.pop(name)
    assert not args, f"unmapped MONAI arguments {args}"
    return kwargs, input, target


def monai_live_args(args: dict) -> dict:
    args = dict(args)
    if "other_act" in args:
        args["other_act"] = ACTIVATIONS[args["other_act"]]
    return args


def _dice(kwargs, input, target):
    if kwargs.pop("jaccard", False):
        kwargs["smooth_nr"] /= 2  # MONAI's (2 tp + s') / (2 (tp + fp + fn) + s')
        kwargs["smooth_dr"] /= 2
        return SF.jaccard_loss(input, target, **kwargs)
    return SF.dice_loss(input, target, **kwargs)


def _check(actual, expected, rtol):
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(actual.detach().double().reshape(expected.shape).numpy(), expected, rtol=rtol)


@pytest.mark.parametrize("index", range(len(cases.DICE)), ids=lambda i: f"TEST_CASES[{i}]")
def test_dice_loss_cases(index):
    """MONAI 1.5.0 tests/losses/test_dice_loss.py, TestDiceLoss.test_shape, TEST_CASES[index]."""
    args, input, target, expected = cases.DICE[index]
    kwargs, x, t = monai_config(args, input, target)
    _check(_dice(kwargs, x, t), expected, rtol=1e-5)
    _check(_dice(*monai_config(args, input, target)), monai_losses.DiceLoss(**monai_live_args(args))(input, target),
           rtol=1e-5)


@pytest.mark.parametrize("index", range(len(cases.GENERALIZED_DICE)), ids=lambda i: f"TEST_CASES[{i}]")
def test_generalized_dice_loss_cases(index):
    """MONAI 1.5.0 tests/losses/test_generalized_dice_loss.py, test_shape, TEST_CASES[index]."""
    args, input, target, expected = cases.GENERALIZED_DICE[index]
    kwargs, x, t = monai_config(args, input, target)
    _check(SF.generalized_dice_loss(x, t, **kwargs), expected, rtol=1e-5)


@pytest.mark.parametrize("index", range(len(cases.TVERSKY)), ids=lambda i: f"TEST_CASES[{i}]")
def test_tversky_loss_cases(index):
    """MONAI 1.5.0 tests/losses/test_tversky_loss.py, TestTverskyLoss.test_shape, TEST_CASES[index]."""
    args, input, target, expected = cases.TVERSKY[index]
    kwargs, x, t = monai_config(args, input, target)
    _check(SF.tversky_loss(x, t, **kwargs), expected, rtol=1e-4)
    live = monai_losses.TverskyLoss(**monai_live_args(args))(input, target)
    _check(SF.tversky_loss(x, t, **kwargs), live, rtol=1e-5)


@pytest.mark.parametrize("index", range(len(cases.MASKED_DICE)), ids=lambda i: f"TEST_CASES[{i}]")
def test_masked_dice_loss_cases(index):
    """MONAI 1.5.0 tests/losses/test_masked_dice_loss.py, TestDiceLoss.test_shape, TEST_CASES[index].

    MONAI's MaskedLoss multiplies the *logits* and the target by the mask before the
    activation, so a masked pixel still counts, as p = sigmoid(0) = 0.5 against target 0.
    segfuse reproduces that when given input * mask and target * mask; its own
    ``ignore_index`` leaves masked pixels out instead (test below).
    """
    args, input, target, mask, expected = cases.MASKED_DICE[index]
    if mask is not None:
        input, target = input * mask, target * mask
    _check(_dice(*monai_config(args, input, target)), expected, rtol=1e-5)


def test_masked_dice_differs_from_ignore_index_by_design():
    """MONAI 1.5.0 test_masked_dice_loss.py TEST_CASES[0]: 0.5 counts the masked pixels as
    p = 0.5 false positives; segfuse's ignore_index removes them: Dice over the two unmasked
    pixels (targets 1, 1; logits -1, 1) is 1 - (2 * 1 + s) / (1 + 2 + s) = 1/3."""
    args, input, target, mask, expected = cases.MASKED_DICE[0]
    ignored = torch.where(mask > 0, target, 255.0)
    ours = SF.dice_loss(input, ignored, mode="binary", ignore_index=255, smooth=1e-6)
    assert ours.item() == pytest.approx(1 / 3, abs=1e-5) and expected == 0.5
    visible = mask.bool()
    torch.testing.assert_close(ours, SF.dice_loss(input[visible], target[visible], mode="binary", smooth=1e-6))


# ---- test_focal_loss.py ------------------------------------------------------------------

FOCAL_INPUT = torch.tensor([[[[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]]]])
FOCAL_LABELS = torch.tensor([[[[0, 1], [2, 0]]]])
FOCAL_ONEHOT = F.one_hot(FOCAL_LABELS.squeeze(1)).permute(0, 3, 1, 2)


def test_focal_loss_cases_sigmoid():
    """MONAI 1.5.0 tests/losses/test_focal_loss.py TEST_CASES[0] ({"to_onehot_y": True}: 0.34959),
    TEST_CASES[1] (one-hot target: 0.34959), TEST_CASES[2] (include_background=False: 0.36498),
    TEST_CASES[3] (alpha=0.8: 0.08423), TEST_CASES[4] (reduction="none"). MONAI's default
    FocalLoss is the sigmoid focal loss per channel: segfuse's multilabel mode."""
    def close(actual, expected):
        np.testing.assert_allclose(actual.detach().numpy(), expected, atol=1e-4, rtol=1e-4)

    close(SF.focal_loss(FOCAL_INPUT, FOCAL_ONEHOT, "multilabel"), 0.34959)
    close(SF.focal_loss(FOCAL_INPUT, FOCAL_ONEHOT, "multilabel"), 0.34959)
    # include_background=False drops channel 0 (the channels are independent)
    close(SF.focal_loss(FOCAL_INPUT[:, 1:], FOCAL_ONEHOT[:, 1:], "multilabel"), 0.36498)
    close(SF.focal_loss(FOCAL_INPUT, FOCAL_ONEHOT, "multilabel", alpha=0.8), 0.08423)
    none = np.array([[[[0.02266, 0.70187], [0.37741, 0.17329]], [[0.70187, 0.02266], [0.37741, 0.17329]],
                      [[0.70187, 0.70187], [0.06757, 0.17329]]]])
    close(SF.focal_loss(FOCAL_INPUT, FOCAL_ONEHOT, "multilabel", reduction="none"), none)


def test_focal_loss_case_class_weight_is_a_per_channel_factor():
    """MONAI 1.5.0 test_focal_loss.py TEST_CASES[5] (weight=[0.5, 0.1, 0.2], reduction="none").
    segfuse's sigmoid focal loss has no per-channel weight: MONAI's equals segfuse's element
    losses times the channel's weight."""
    expected = np.array([[[[0.01133, 0.35093], [0.18871, 0.08664]], [[0.07019, 0.00227], [0.03774, 0.01733]],
                          [[0.14037, 0.14037], [0.01352, 0.03466]]]])
    weight = torch.tensor([0.5, 0.1, 0.2]).view(1, 3, 1, 1)
    actual = SF.focal_loss(FOCAL_INPUT, FOCAL_ONEHOT, "multilabel", reduction="none") * weight
    np.testing.assert_allclose(actual.numpy(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case, alpha, expected", [(6, None, 0.16276), (7, 0.8, 0.08138)])
def test_focal_loss_cases_softmax(case, alpha, expected):
    """MONAI 1.5.0 test_focal_loss.py TEST_CASES[6] ({"use_softmax": True}) and TEST_CASES[7]
    (alpha=0.8). Two conventions differ by design: MONAI's mean divides by N * C * S (every
    entry of the one-hot loss tensor), segfuse's by the N * S pixels, so ours is C = 3 times
    MONAI's; MONAI's float alpha becomes (1 - alpha, alpha, alpha, ...) per class."""
    alpha_vector = None if alpha is None else [1 - alpha] + [alpha] * 2
    for target in (FOCAL_LABELS, FOCAL_ONEHOT):  # class map (N, 1, H, W) and one-hot
        ours = SF.focal_loss(FOCAL_INPUT, target, alpha=alpha_vector)
        np.testing.assert_allclose(ours.item() / 3, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["test_consistency_with_cross_entropy_2d",
                                  "test_consistency_with_cross_entropy_2d_no_reduction",
                                  "test_consistency_with_cross_entropy_2d_onehot_label",
                                  "test_consistency_with_cross_entropy_classification",
                                  "test_consistency_with_cross_entropy_classification_01"])
def test_focal_loss_consistency_with_bce(name):
    """MONAI 1.5.0 test_focal_loss.py, the five consistency tests: gamma = 0 is BCE (not for
    gamma = 0.1). One seeded draw of MONAI's shapes instead of 100 random ones."""
    generator = torch.Generator().manual_seed(0)
    classification = "classification" in name
    shape = (128, 10) if classification else (128, 10, 8, 4)
    x = torch.rand(shape, generator=generator)
    if "onehot" in name or classification:
        labels = torch.randint(0, 10, (shape[0], 1, *shape[2:]), generator=generator)
        target = F.one_hot(labels[:, 0], 10).movedim(-1, 1).float()
    else:
        target = torch.randint(0, 2, shape, generator=generator).float()
    gamma = 0.1 if name.endswith("_01") else 0.0
    reduction = "none" if "no_reduction" in name else "mean"
    ours = SF.focal_loss(x, target, "multilabel", gamma=gamma, reduction=reduction)
    bce = F.binary_cross_entropy_with_logits(x, target, reduction=reduction)
    if gamma == 0:
        torch.testing.assert_close(ours, bce, atol=1e-6, rtol=1e-6)
    else:
        assert abs(ours.item() - bce.item()) > 1e-3


def _very_good(labels, num_classes, scale):
    dims = (0, labels.dim(), *range(1, labels.dim()))
    return scale * F.one_hot(labels, num_classes).permute(*dims).float() - scale / 2


@pytest.mark.parametrize("name, labels, num_classes, scale", [
    ("test_bin_seg_2d", torch.tensor([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]]), 2, 100.0),
    ("test_empty_class_2d", torch.zeros(1, 4, 4, dtype=torch.long), 2, 1000.0),
    ("test_multi_class_seg_2d", torch.tensor([[[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]]]), 6, 1000.0),
    ("test_bin_seg_3d", torch.tensor([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]] * 3).unsqueeze(0),
     2, 1000.0),
])
def test_focal_loss_very_good_predictions_are_near_zero(name, labels, num_classes, scale):
    """MONAI 1.5.0 test_focal_loss.py test_bin_seg_2d, test_empty_class_2d,
    test_multi_class_seg_2d, test_bin_seg_3d: both softmax and sigmoid, with and without
    alpha = 0.5, class map and one-hot: about 0 (places=3)."""
    logits = _very_good(labels, num_classes, scale)
    onehot = F.one_hot(labels, num_classes).movedim(-1, 1)
    softmax_alpha = [0.5] + [0.5] * (num_classes - 1)
    values = [SF.focal_loss(logits, labels.unsqueeze(1)), SF.focal_loss(logits, onehot),
              SF.focal_loss(logits, labels, alpha=softmax_alpha), SF.focal_loss(logits, onehot, "multilabel"),
              SF.focal_loss(logits, onehot, "multilabel", alpha=0.5)]
    for value in values:
        assert value.item() == pytest.approx(0.0, abs=5e-4)


def test_focal_loss_foreground():
    """MONAI 1.5.0 test_focal_loss.py test_foreground: 0.1116 with the background channel,
    0.1733 without (places=3); sigmoid focal, target and input (1, 2, 5, 5)."""
    background, foreground = torch.ones(1, 1, 5, 5), torch.zeros(1, 1, 5, 5)
    target = torch.cat((background, foreground), dim=1)
    input = torch.cat((background, foreground), dim=1)
    target[:, 0, 2, 2] = 0
    target[:, 1, 2, 2] = 1
    assert SF.focal_loss(input, target, "multilabel").item() == pytest.approx(0.1116, abs=5e-4)
    assert SF.focal_loss(input[:, 1:], target[:, 1:], "multilabel").item() == pytest.approx(0.1733, abs=5e-4)


def test_focal_loss_ill_shape_and_options():
    """MONAI 1.5.0 test_focal_loss.py test_ill_opts, test_ill_shape, test_ill_class_weight: bad
    reduction, target shape and per-class weights (alpha) are ValueErrors."""
    with pytest.raises(ValueError):
        SF.focal_loss(torch.ones(1, 2, 3), torch.ones(1, 2, 3), "multilabel", reduction="unknown")
    with pytest.raises(ValueError):
        SF.focal_loss(torch.ones(1, 2, 3), torch.ones(1, 3), "multilabel")
    with pytest.raises(ValueError):
        SF.focal_loss(torch.ones(1, 4, 3, 3), torch.ones(1, 3, 3, dtype=torch.long), alpha=[1.0, 1.0, 2.0])
    with pytest.raises(ValueError):
        SF.focal_loss(torch.ones(1, 4, 3, 3), torch.ones(1, 3, 3, dtype=torch.long), alpha=[1.0, 1.0, -1.0, 1.0])


# ---- test_dice_ce_loss.py ----------------------------------------------------------------

DICE_CE_X = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
DICE_CE_X100 = torch.tensor([[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
DICE_CE_Y = torch.tensor([[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]])


@pytest.mark.parametrize("case, input, target, dice_args, ce_weight, lambda_ce, expected", [
    (0, DICE_CE_X, DICE_CE_Y.long(), {}, None, 1.0, 0.3133),
    (1, DICE_CE_X, DICE_CE_X, {}, None, 1.0, 0.3133),
    (2, DICE_CE_X, DICE_CE_X.to(torch.uint8), {}, None, 1.0, 0.3133),
    (3, DICE_CE_X100, DICE_CE_Y.long(), {"include_background": False}, [1.0, 1.0], 1.0, 0.2088),
    (4, DICE_CE_X100, DICE_CE_Y.long(), {"include_background": False}, [1.0, 1.0], 2.0, 0.4176),
    (5, DICE_CE_X100, DICE_CE_Y.long(), {"include_background": False}, [0.0, 1.0], 1.0, 0.3133),
])
def test_dice_ce_loss_cases_without_activation(case, input, target, dice_args, ce_weight, lambda_ce, expected):
    """MONAI 1.5.0 tests/losses/test_dice_ce_loss.py TEST_CASES[0..5] (softmax=False).

    A documented difference: MONAI's DiceCELoss applies its activation (none here) to the
    Dice term only while CE takes log-softmax, two activations in one loss. segfuse's
    dice_ce_loss shares one softmax between its terms, so these cases are reproduced by
    segfuse's own terms: dice_loss(from_logits=False) + lambda_ce * cross_entropy. The
    one-shared-softmax loss gives a different (larger) value on the same input.
    """
    # MONAI gives Dice weight[1:] without the background; ours slices after weighting
    dice = SF.dice_loss(input, target, from_logits=False, per_image=True, class_weights=ce_weight,
                        normalize_weights=False, **dice_args)
    weight = None if ce_weight is None else torch.tensor(ce_weight)
    ce = SF.cross_entropy(input, target.float() if target.shape == input.shape else target, weight=weight)
    np.testing.assert_allclose((dice + lambda_ce * ce).item(), expected, atol=1e-4, rtol=1e-4)
    labels = target if target.shape != input.shape else target.argmax(1)
    shared = SF.dice_ce_loss(input, labels, 1.0, lambda_ce, class_weights=ce_weight, normalize_weights=False,
                             per_image=True, **dice_args)
    assert shared.item() > expected + 1e-3


def test_dice_ce_loss_case_sigmoid_with_pos_weight():
    """MONAI 1.5.0 test_dice_ce_loss.py TEST_CASES[6] ({"weight": [0.5], "sigmoid": True}: 1.445239):
    binary Dice on the sigmoid plus BCE with pos_weight 0.5 (MONAI passes ``weight`` to BCE
    as ``pos_weight``), one sigmoid pass for both terms."""
    input = torch.tensor([[[0.8, 0.6, 0.0]], [[0.0, 0.0, 0.9]]])
    target = torch.tensor([[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]])
    ours = SF.dice_ce_loss(input, target, mode="binary", pos_weight=[0.5], per_image=True)
    np.testing.assert_allclose(ours.item(), 1.445239, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, input, target", [
    ("test_ill_shape", torch.ones((1, 2, 3)), torch.ones((1, 2, 5))),
    ("test_ill_shape2", torch.ones((1, 2, 3)), torch.ones((1, 1, 2, 3))),
    ("test_ill_shape3", torch.ones((1, 3, 4, 4)), torch.ones((1, 2, 4, 4))),
])
def test_dice_ce_loss_ill_shapes(name, input, target):
    """MONAI 1.5.0 test_dice_ce_loss.py test_ill_shape, test_ill_shape2, test_ill_shape3."""
    with pytest.raises(ValueError):
        SF.dice_ce_loss(input, target)


# ---- test_dice_focal_loss.py -------------------------------------------------------------

@pytest.mark.parametrize("lambda_focal, alpha", [(0.5, None), (1.0, None), (1.5, None), (0.5, 0.25)])
def test_dice_focal_loss_equals_monai(lambda_focal, alpha):
    """MONAI 1.5.0 tests/losses/test_dice_focal_loss.py test_result_onehot_target_include_bg
    (reduction="mean", weight=None, lambda_focal 0.5 / 1.0 / 1.5) and test_with_alpha
    ("mean_None_0.5_0.25"): MONAI's cases compare DiceFocalLoss with its own DiceLoss + focal
    on random data; here MONAI's DiceFocalLoss is the oracle on the same draw: sigmoid, one-hot
    integer labels (3, 3, 5, 5), gamma 1."""
    generator = torch.Generator().manual_seed(0)
    label = torch.randint(0, 2, (3, 3, 5, 5), generator=generator)
    pred = torch.randn(3, 3, 5, 5, generator=generator)
    expected = monai_losses.DiceFocalLoss(gamma=1.0, lambda_focal=lambda_focal, alpha=alpha, sigmoid=True,
                                          include_background=True, to_onehot_y=False)(pred, label)
    # MONAI's DiceLoss inside runs without activation when sigmoid is not set; its cases do
    # not set it, so the same case without sigmoid is checked through the terms below
    ours = SF.dice_focal_loss(pred, label, 1.0, lambda_focal, gamma=1.0, alpha=alpha, mode="multilabel",
                              per_image=True)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    raw = monai_losses.DiceFocalLoss(gamma=1.0, lambda_focal=lambda_focal, alpha=alpha)(pred, label)
    terms = SF.dice_loss(pred, label, mode="multilabel", from_logits=False, per_image=True) + lambda_focal * \
        SF.focal_loss(pred, label, "multilabel", alpha=alpha, gamma=1.0)
    torch.testing.assert_close(terms, raw, rtol=1e-5, atol=1e-6)

"""segmentation_models.pytorch's own loss test cases, ported.

Peer: smp tests/test_losses.py at commit 5006616357631a48c7c8e11977cf5abb00803590
(0.5.1.dev0; its losses are byte-identical to the 0.6.0 release). Each test names the smp
test function (and the parametrize row where there is one).

smp's conventions, and segfuse configured to them: smp's Dice / Jaccard / Tversky set the
loss of a class absent from the target to 0 and still divide by the class count
(``skip_absent=True``), use no smoothing by default (``smooth=0``) and average over
classes only, the batch pooled (``per_image=False``). When smp is installed
(``pip install --no-deps segmentation-models-pytorch==0.6.0``) its losses are also run as a
live oracle; importing them needs no encoder, so the package's own ``__init__`` (which
imports timm and torchvision) is bypassed.
"""

import importlib
import importlib.machinery
import importlib.util
import pathlib
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import segfuse
import segfuse.functional as SF

SMP = "smp tests/test_losses.py @ 5006616"


def smp_losses():
    """smp's losses package without the model zoo, or skip."""
    if "segmentation_models_pytorch.losses" in sys.modules:
        return sys.modules["segmentation_models_pytorch.losses"]
    spec = importlib.util.find_spec("segmentation_models_pytorch")
    if spec is None:
        pytest.skip("segmentation-models-pytorch is not installed (pip install --no-deps segmentation-models-pytorch)")
    package = types.ModuleType("segmentation_models_pytorch")
    package.__path__ = [str(pathlib.Path(spec.submodule_search_locations[0]))]
    package.__spec__ = importlib.machinery.ModuleSpec("segmentation_models_pytorch", None, is_package=True)
    sys.modules["segmentation_models_pytorch"] = package
    return importlib.import_module("segmentation_models_pytorch.losses")


SMP_DICE = dict(smooth=0.0, skip_absent=True)


def _score(fn, y_pred, y_true, **kwargs):
    """smp's soft_*_score of flat vectors: 1 - our loss on probabilities (binary mode)."""
    y_pred = torch.tensor(y_pred, dtype=torch.float32)
    y_true = torch.tensor(y_true, dtype=torch.float32)
    if y_pred.dim() == 1:
        y_pred, y_true = y_pred.view(1, 1, -1), y_true.view(1, 1, -1)
        return 1 - fn(y_pred, y_true, mode="binary", from_logits=False, smooth=0.0, **kwargs)
    # dims=[1]: one score per row, averaged: rows are the channels of one image
    return 1 - fn(y_pred.unsqueeze(0), y_true.unsqueeze(0), mode="multilabel", from_logits=False, smooth=0.0,
                  **kwargs)


@pytest.mark.parametrize("y_true, y_pred, expected", [
    ([1, 1, 1, 1], [1, 1, 1, 1], 1.0), ([0, 1, 1, 0], [0, 1, 1, 0], 1.0), ([1, 1, 1, 1], [1, 1, 0, 0], 0.5)])
def test_soft_jaccard_score(y_true, y_pred, expected):
    """smp test_soft_jaccard_score (3 rows, eps=1e-5)."""
    assert _score(SF.jaccard_loss, y_pred, y_true).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("y_true, y_pred, expected", [
    ([[1, 1, 0, 0], [0, 0, 1, 1]], [[1, 1, 0, 0], [0, 0, 1, 1]], 1.0),
    ([[1, 1, 0, 0], [0, 0, 1, 1]], [[0, 0, 1, 0], [0, 1, 0, 0]], 0.0),
    ([[1, 1, 0, 0], [0, 0, 0, 1]], [[1, 1, 0, 0], [0, 0, 0, 0]], 0.5)])
def test_soft_jaccard_score_2(y_true, y_pred, expected):
    """smp test_soft_jaccard_score_2 (3 rows, dims=[1], mean over rows)."""
    assert _score(SF.jaccard_loss, y_pred, y_true).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("y_true, y_pred, expected", [
    ([1, 1, 1, 1], [1, 1, 1, 1], 1.0), ([0, 1, 1, 0], [0, 1, 1, 0], 1.0), ([1, 1, 1, 1], [1, 1, 0, 0], 2.0 / 3.0)])
def test_soft_dice_score(y_true, y_pred, expected):
    """smp test_soft_dice_score (3 rows)."""
    assert _score(SF.dice_loss, y_pred, y_true).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("y_true, y_pred, expected, alpha, beta", [
    ([1, 1, 1, 1], [1, 1, 1, 1], 1.0, 0.5, 0.5), ([0, 1, 1, 0], [0, 1, 1, 0], 1.0, 0.5, 0.5),
    ([1, 1, 1, 1], [1, 1, 0, 0], 2.0 / 3.0, 0.5, 0.5)])
def test_soft_tversky_score(y_true, y_pred, expected, alpha, beta):
    """smp test_soft_tversky_score (3 rows)."""
    score = _score(lambda *a, **k: SF.tversky_loss(*a, alpha=alpha, beta=beta, **k), y_pred, y_true)
    assert score.item() == pytest.approx(expected, abs=1e-5)


BINARY_CASES = [  # (y_pred, y_true, expected loss): smp's six sub-cases, in order
    ([1.0, 1.0, 1.0], [1, 1, 1], 0.0),
    ([1.0, 0.0, 1.0], [1, 0, 1], 0.0),
    ([0.0, 0.0, 0.0], [0, 0, 0], 0.0),
    ([1.0, 1.0, 1.0], [0, 0, 0], 0.0),  # "worst case": 0, because the absent class is zeroed
    ([1.0, 0.0, 1.0], [0, 1, 0], 1.0),
    ([0.0, 0.0, 0.0], [1, 1, 1], 1.0),
]


@pytest.mark.parametrize("name, loss", [
    ("test_dice_loss_binary", SF.dice_loss),
    ("test_tversky_loss_binary", lambda *a, **k: SF.tversky_loss(*a, alpha=0.5, beta=0.5, **k)),
    ("test_binary_jaccard_loss", SF.jaccard_loss),
])
def test_binary_losses(name, loss):
    """smp test_dice_loss_binary, test_tversky_loss_binary, test_binary_jaccard_loss (6 sub-cases
    each, from_logits=False); the fourth ("worst case", nothing true and everything
    predicted) is 0 only because smp zeroes classes absent from the target: without
    skip_absent segfuse gives 1 there, which is the loss of that prediction."""
    for y_pred, y_true, expected in BINARY_CASES:
        y_pred = torch.tensor(y_pred).view(1, 1, -1)
        y_true = torch.tensor(y_true).view(1, 1, -1)
        actual = loss(y_pred, y_true, mode="binary", from_logits=False, **SMP_DICE)
        assert actual.item() == pytest.approx(expected, abs=1e-5), (y_pred, y_true)
    worst = loss(torch.ones(1, 1, 3), torch.zeros(1, 1, 3, dtype=torch.long), mode="binary", from_logits=False,
                 smooth=0.0)
    assert worst.item() == pytest.approx(1.0)


def test_multiclass_jaccard_loss():
    """smp test_multiclass_jaccard_loss: ideal 0, worst 1, and 1 - 1/3 (from_logits=False)."""
    for y_pred, y_true, expected in [
        ([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]], [[0, 0, 1, 1]], 0.0),
        ([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]], [[1, 1, 0, 0]], 1.0),
        ([[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]], [[1, 1, 0, 0]], 1.0 - 1.0 / 3.0),
    ]:
        actual = SF.jaccard_loss(torch.tensor(y_pred), torch.tensor(y_true), from_logits=False, **SMP_DICE)
        assert actual.item() == pytest.approx(expected, abs=1e-5)


def test_multilabel_jaccard_loss():
    """smp test_multilabel_jaccard_loss: ideal 0, worst 1, and 1 - 1/3 (from_logits=False)."""
    ideal = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    for y_pred, y_true, expected in [
        (ideal, ideal, 0.0),
        (ideal, 1 - ideal, 1.0),
        (torch.tensor([[[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]]),
         torch.tensor([[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]]), 1.0 - 1.0 / 3.0),
    ]:
        actual = SF.jaccard_loss(y_pred, y_true, mode="multilabel", from_logits=False, **SMP_DICE)
        assert actual.item() == pytest.approx(expected, abs=1e-5)


def test_soft_ce_loss():
    """smp test_soft_ce_loss: SoftCrossEntropyLoss(smooth_factor=0.1, ignore_index=-100) = 1.0125.

    smp's label smoothing is torch's; its mean divides by every pixel, the ignored one
    included (4), where segfuse (and torch) divide by the valid pixels (3): a documented
    difference. segfuse's sum over the 4 pixels reproduces smp's number."""
    y_pred = torch.tensor([[+9, -9, -9, -9], [-9, +9, -9, -9], [-9, -9, +9, -9], [-9, -9, -9, +9]]).float()
    y_true = torch.tensor([0, 1, -100, 3]).long()
    total = SF.cross_entropy(y_pred, y_true, ignore_index=-100, label_smoothing=0.1, reduction="sum")
    assert (total / 4).item() == pytest.approx(1.0125, abs=1e-4)
    mean = SF.cross_entropy(y_pred, y_true, ignore_index=-100, label_smoothing=0.1)
    assert mean.item() == pytest.approx(total.item() / 3)


def test_soft_bce_loss():
    """smp test_soft_bce_loss: SoftBCEWithLogitsLoss(smooth_factor=0.1, ignore_index=-100) = 0.7201.

    smp's smoothed target (1 - y) s + y (1 - s) is segfuse's label_smoothing = 2 s (eps / 2
    toward each side); smp's mean divides by all 5 entries, segfuse's by the 4 valid ones."""
    y_pred = torch.tensor([-9, 9, 1, 9, -9]).float()
    y_true = torch.tensor([0, 1, -100, 1, 0]).long()
    mean = SF.dice_ce_loss(y_pred, y_true, 0.0, 1.0, mode="binary", ignore_index=-100, label_smoothing=0.2)
    assert (mean * 4 / 5).item() == pytest.approx(0.7201, abs=1e-4)


def test_focal_loss_from_logits_false_multiclass():
    """smp test_focal_loss_from_logits_false_multiclass: logits and their softmax probabilities
    give close losses (smp: within 0.2); segfuse's softmax focal loss gives the same value."""
    logits = torch.tensor([[0.0, 10.0, 0.0], [10.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    target = torch.tensor([1, 0, 2])
    from_logits = SF.focal_loss(logits, target)
    from_probs = SF.focal_loss(torch.softmax(logits, 1), target, from_logits=False)
    assert torch.isfinite(from_probs) and torch.isfinite(from_logits)
    torch.testing.assert_close(from_logits, from_probs, rtol=1e-5, atol=1e-7)


def test_focal_loss_with_logits():
    """smp test_focal_loss_with_logits: a good binary prediction has a lower loss."""
    target = torch.tensor([1, 0, 1])
    good = SF.focal_loss(torch.tensor([10, -10, 10]).float(), target, "binary", alpha=0.25)
    bad = SF.focal_loss(torch.tensor([-1, 2, 0]).float(), target, "binary", alpha=0.25)
    assert good < bad


def test_softmax_focal_loss_with_logits():
    """smp test_softmax_focal_loss_with_logits: a good softmax prediction has a lower loss."""
    target = torch.tensor([1, 0, 2])
    good = SF.focal_loss(torch.tensor([[0, 10, 0], [10, 0, 0], [0, 0, 10]]).float(), target)
    bad = SF.focal_loss(torch.tensor([[0, -10, 0], [0, 10, 0], [0, 0, 10]]).float(), target)
    assert good < bad


def _random(mode):
    torch.manual_seed(0)
    y_pred = torch.randn(2, 3, 4, 4)
    y_true = torch.randint(0, 3, (2, 4, 4)) if mode == "multiclass" else torch.randint(0, 2, (2, 3, 4, 4)).float()
    return y_pred, y_true


SMP_CLASSES = {"DiceLoss": SF.dice_loss, "JaccardLoss": SF.jaccard_loss, "TverskyLoss": SF.tversky_loss}


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_class_weights_uniform_equivalent_to_no_weights(mode):
    """smp test_class_weights_uniform_equivalent_to_no_weights_multiclass and _multilabel."""
    y_pred, y_true = _random(mode)
    for name, fn in SMP_CLASSES.items():
        plain = fn(y_pred, y_true, mode=mode, **SMP_DICE)
        uniform = fn(y_pred, y_true, mode=mode, class_weights=[1.0, 1.0, 1.0], **SMP_DICE)
        assert torch.allclose(plain, uniform, atol=1e-5), name


def test_class_weights_nonuniform_changes_loss_multiclass():
    """smp test_class_weights_nonuniform_changes_loss_multiclass."""
    y_pred, y_true = _random("multiclass")
    for name, fn in SMP_CLASSES.items():
        plain = fn(y_pred, y_true, **SMP_DICE)
        weighted = fn(y_pred, y_true, class_weights=[1.0, 2.0, 0.5], **SMP_DICE)
        assert not torch.allclose(plain, weighted, atol=1e-6), name


def test_class_weights_scale_invariant_multiclass():
    """smp test_class_weights_scale_invariant_multiclass (segfuse's default normalize_weights)."""
    y_pred, y_true = _random("multiclass")
    for name, fn in SMP_CLASSES.items():
        small = fn(y_pred, y_true, class_weights=[1.0, 2.0, 0.5], **SMP_DICE)
        large = fn(y_pred, y_true, class_weights=[10.0, 20.0, 5.0], **SMP_DICE)
        assert torch.allclose(small, large, atol=1e-5), name


def test_class_weights_binary_mode_raises():
    """smp test_class_weights_binary_mode_raises: binary mode has one class, two weights are an error."""
    for loss in (segfuse.DiceLoss, segfuse.JaccardLoss, segfuse.TverskyLoss):
        with pytest.raises(ValueError, match="binary mode has one class"):
            loss(mode="binary", class_weights=[1.0, 2.0])


def test_focal_class_weights_uniform_and_scale():
    """smp test_focal_class_weights_uniform_equivalent_to_no_weights and
    test_focal_class_weights_scale_invariant. smp's multiclass focal loss is one sigmoid
    focal loss per class, weighted by normalised class weights. segfuse's multiclass focal
    loss is the softmax one, and its per-class weights are alpha: uniform alpha = 1 equals no
    alpha, and (a documented difference) alpha is not normalised, so scaling it scales the
    loss, as alpha does in Lin et al."""
    y_pred, y_true = _random("multiclass")
    plain = SF.focal_loss(y_pred, y_true)
    torch.testing.assert_close(SF.focal_loss(y_pred, y_true, alpha=[1.0, 1.0, 1.0]), plain)
    small = SF.focal_loss(y_pred, y_true, alpha=[0.1, 0.2, 0.05])
    torch.testing.assert_close(SF.focal_loss(y_pred, y_true, alpha=[1.0, 2.0, 0.5]), small * 10)
    # smp's one-vs-rest sigmoid focal loss is segfuse's multilabel focal loss on the one-hot
    onehot = F.one_hot(y_true, 3).movedim(-1, 1)
    smp = smp_losses_or_none()
    if smp is not None:
        expected = smp.FocalLoss("multiclass")(y_pred, y_true)
        torch.testing.assert_close(SF.focal_loss(y_pred, onehot, "multilabel", alpha=None), expected)


def smp_losses_or_none():
    try:
        return smp_losses()
    except pytest.skip.Exception:
        return None


@pytest.mark.parametrize("loss_name, fn", [("DiceLoss", SF.dice_loss), ("JaccardLoss", SF.jaccard_loss),
                                           ("TverskyLoss", SF.tversky_loss)])
@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_skip_absent_equals_smp(loss_name, fn, mode):
    """Issue 10: on a 2 x 4 x 8 x 8 batch with an absent class smp's DiceLoss gives 0.5483
    (segfuse's old skip_absent gave 0.7310). skip_absent=True is smp's aggregation, with and
    without class weights; smp is the live oracle."""
    smp = smp_losses()
    torch.manual_seed(0)
    y_pred = torch.randn(2, 4, 8, 8)
    y_true = torch.randint(0, 3, (2, 8, 8))  # class 3 absent
    if mode == "multilabel":
        y_true = F.one_hot(y_true, 4).movedim(-1, 1).float()
    weights = [1.0, 2.0, 0.5, 3.0]
    for class_weights in (None, weights):
        expected = getattr(smp, loss_name)(mode, class_weights=class_weights)(y_pred, y_true)
        actual = fn(y_pred, y_true, mode=mode, class_weights=class_weights, **SMP_DICE)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    if loss_name == "DiceLoss" and mode == "multiclass":
        plain = smp.DiceLoss(mode)(y_pred, y_true)
        assert plain.item() == pytest.approx(0.5483, abs=1e-4)
        assert fn(y_pred, y_true, **SMP_DICE).item() == pytest.approx(0.5483, abs=1e-4)
        assert fn(y_pred, y_true, smooth=0.0, skip_absent="drop").item() == pytest.approx(0.7310, abs=1e-4)

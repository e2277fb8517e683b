"""Focal loss: softmax (gamma 0 = CE), sigmoid (torchvision's formula, MONAI), gamma < 1."""

import pytest
import torch
import torch.nn.functional as F

import segfuse
import segfuse.functional as SF
from tests.losses.helpers import make_inputs


def torchvision_sigmoid_focal(inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss, re-derived (torchvision is not installable here)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss.mean()


@pytest.mark.parametrize("alpha", [None, 0.25, 0.8])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_sigmoid_focal_equals_torchvision_formula(alpha, gamma, mode):
    logits, target = make_inputs(mode, n=2, c=3)
    expected = torchvision_sigmoid_focal(logits, target.double(), alpha=-1 if alpha is None else alpha, gamma=gamma)
    torch.testing.assert_close(SF.focal_loss(logits, target, mode, alpha=alpha, gamma=gamma), expected)


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_sigmoid_focal_equals_monai(alpha):
    from monai.losses import FocalLoss

    logits, target = make_inputs("multilabel", n=2, c=3)
    expected = FocalLoss(use_softmax=False, gamma=2.0, alpha=alpha)(logits, target.double())
    # MONAI returns float32 whatever the input: agreement to float32 precision.
    assert expected.dtype == torch.float32
    torch.testing.assert_close(SF.focal_loss(logits, target, "multilabel", alpha=alpha).float(), expected)


def test_convention_focal_gamma_zero_is_cross_entropy_exactly():
    logits, labels = make_inputs("multiclass", n=2, c=5, ignore_index=255)
    ours = SF.focal_loss(logits, labels, gamma=0.0, ignore_index=255)
    assert torch.equal(ours, SF.cross_entropy(logits, labels, ignore_index=255))
    torch.testing.assert_close(ours, F.cross_entropy(logits, labels, ignore_index=255), rtol=1e-14, atol=0)


def test_convention_focal_alpha_mean_divides_by_the_pixel_count():
    logits, labels = make_inputs("multiclass", n=2, c=3, spatial=(4, 5, 3))
    alpha = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    log_p = torch.log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).squeeze(1)
    expected = (-alpha[labels] * (1 - log_p.exp()) ** 1.5 * log_p).mean()
    torch.testing.assert_close(SF.focal_loss(logits, labels, alpha=alpha.tolist(), gamma=1.5), expected)
    torch.testing.assert_close(segfuse.FocalLoss(alpha=alpha.tolist(), gamma=1.5)(logits, labels), expected)


@pytest.mark.parametrize("mode", ["multiclass", "binary"])
@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9])
def test_gamma_below_one_with_saturated_logits_has_finite_gradients(mode, gamma):
    logits, target = make_inputs(mode, n=2, c=3, dtype=torch.float32)
    logits = (torch.sign(logits) * 80.0).requires_grad_(True)
    if mode == "multiclass":
        target = logits.argmax(1)  # confidently right: p_y == 1 exactly in float32
    else:
        target = (logits > 0).long()
    loss = SF.focal_loss(logits, target, mode, gamma=gamma)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("alpha", [None, [0.2, 0.5, 0.3]])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_focal_with_a_onehot_target_equals_the_class_map(alpha, gamma):
    """Issue 10: one-hot multiclass targets were rejected."""
    logits, labels = make_inputs("multiclass", n=2, c=3)
    onehot = F.one_hot(labels, 3).movedim(-1, 1)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(SF.focal_loss(logits, onehot, alpha=alpha, gamma=gamma, reduction=reduction),
                                   SF.focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction=reduction))


def test_convention_softmax_focal_with_a_soft_target():
    """A soft target g: per pixel -sum_c alpha_c g_c (1 - p_c)^gamma log p_c, mean over pixels;
    with gamma = 0 and no alpha it is torch's cross-entropy with probability targets."""
    logits, _ = make_inputs("multiclass", n=2, c=4, spatial=(3, 5))
    generator = torch.Generator().manual_seed(4)
    soft = torch.softmax(torch.randn(logits.shape, generator=generator, dtype=torch.float64), 1)
    alpha = torch.tensor([0.1, 0.4, 0.3, 0.2], dtype=torch.float64).view(1, 4, 1, 1)
    log_p = torch.log_softmax(logits, 1)
    expected = (-(alpha * soft * (1 - log_p.exp()) ** 1.5 * log_p).sum(1)).mean()
    torch.testing.assert_close(SF.focal_loss(logits, soft, alpha=alpha.flatten().tolist(), gamma=1.5), expected)
    torch.testing.assert_close(SF.focal_loss(logits, soft, gamma=0.0), F.cross_entropy(logits, soft))
    monai = pytest.importorskip("monai.losses")
    # MONAI's softmax focal mean divides by N * C * S: ours is C times larger
    expected = monai.FocalLoss(use_softmax=True, gamma=2.0)(logits, soft)
    torch.testing.assert_close(SF.focal_loss(logits, soft, gamma=2.0).float(), expected * 4)

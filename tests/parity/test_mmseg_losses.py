"""mmsegmentation's loss test cases that assert numbers, ported.

Peer: open-mmlab/mmsegmentation tests/test_models/test_losses/ (1.x):
test_ce_loss.py at commit 03e7ac0c61400104202a3e62f30d8c5fe1598d8f and test_focal_loss.py
at commit 05f6697ac5a0b6cf2be9682103318176d384b682. Its test_dice_loss.py,
test_tversky_loss.py and test_lovasz_loss.py only build and call mmseg's losses (no value
is asserted), so they have nothing to port.

mmseg's conventions: CrossEntropyLoss divides the summed (weighted) losses by every pixel,
ignored ones included, unless ``avg_non_ignore=True`` (then by the valid pixels, still not
by the summed class weights); segfuse and torch divide by the summed weights of the valid
pixels, so the tests reproduce mmseg from segfuse's ``reduction="sum"``. mmseg's
FocalLoss is the sigmoid focal loss on the one-hot target, its mean over every entry
(N * C * S): segfuse's multilabel focal loss.
"""

import pytest
import torch
import torch.nn.functional as F

import segfuse.functional as SF


@pytest.mark.parametrize("use_sigmoid", [True, False])
def test_ce_loss_simple_case(use_sigmoid):
    """mmseg test_ce_loss, "simple case": logits [[100, -100]], label 1: CE 200, BCE 100."""
    pred = torch.Tensor([[100, -100]])
    label = torch.Tensor([1]).long()
    if use_sigmoid:  # mmseg expands the label to a one-hot over the two channels
        assert torch.allclose(SF.focal_loss(pred, F.one_hot(label, 2).float(), "multilabel", gamma=0.0),
                              torch.tensor(100.0))
        assert torch.allclose(SF.binary_cross_entropy_with_logits(pred, F.one_hot(label, 2).float()),
                              torch.tensor(100.0))
    else:
        assert torch.allclose(SF.cross_entropy(pred, label), torch.tensor(200.0))


def test_ce_loss_class_weight_divides_by_the_pixel_count():
    """mmseg test_ce_loss, class weights [0.8, 0.2] (from file): 40. A documented difference:
    mmseg divides w_y nll = 0.2 * 200 by the one pixel; torch and segfuse by the summed
    weight 0.2, giving 200. segfuse's sum over the pixel count reproduces mmseg."""
    pred = torch.Tensor([[100, -100]])
    label = torch.Tensor([1]).long()
    weight = torch.tensor([0.8, 0.2])
    assert torch.allclose(SF.cross_entropy(pred, label, weight=weight, reduction="sum") / label.numel(),
                          torch.tensor(40.0))
    assert torch.allclose(SF.cross_entropy(pred, label, weight=weight), torch.tensor(200.0))
    assert torch.allclose(SF.cross_entropy(pred, label), torch.tensor(200.0))


@pytest.mark.parametrize("avg_non_ignore", [True, False])
def test_ce_loss_complicated_case(avg_non_ignore):
    """mmseg test_ce_loss, "complicated case": (2, 21, 8, 8) logits 0.5, labels 1 with pixel
    (0, 0) ignored (255). avg_non_ignore=True is torch's mean over the valid pixels (segfuse's
    default); False divides the sum by every pixel."""
    pred = torch.full(size=(2, 21, 8, 8), fill_value=0.5)
    label = torch.ones(2, 8, 8).long()
    label[:, 0, 0] = 255
    if avg_non_ignore:
        expected = F.cross_entropy(pred, label, reduction="mean", ignore_index=255)
        actual = SF.cross_entropy(pred, label, ignore_index=255)
    else:
        expected = F.cross_entropy(pred, label, reduction="sum", ignore_index=255) / label.numel()
        actual = SF.cross_entropy(pred, label, ignore_index=255, reduction="sum") / label.numel()
    assert torch.allclose(actual, expected)


@pytest.mark.parametrize("avg_non_ignore", [True, False])
def test_ce_loss_ignore_index_and_class_weight(avg_non_ignore):
    """mmseg test_ce_loss, "ignore index and class weight in 5-way classification": mmseg
    divides the weighted sum by the valid pixel count (avg_non_ignore) or by every pixel,
    never by the summed weights; segfuse's weighted sum reproduces both."""
    generator = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 5, 10, generator=generator)
    label = torch.randint(0, 5, (2, 10), generator=generator)
    weight = torch.rand(5, generator=generator)
    weight /= weight.sum()
    label[0, [1, 2, 5, 7]] = 10
    label[1, [0, 5, 8, 9]] = 10
    total = SF.cross_entropy(pred, label, weight=weight, ignore_index=10, reduction="sum")
    count = label[label != 10].numel() if avg_non_ignore else label.numel()
    expected = F.cross_entropy(pred, label, ignore_index=10, reduction="sum", weight=weight) / count
    assert torch.allclose(total / count, expected)


# mmseg test_focal_loss.py test_same: fake_pred, fake_target and its one-hot copy, verbatim
FOCAL_PRED = torch.tensor([[[[0.1998772621, 0.3659250736], [0.9128918052, 0.2723454833]],
                            [[0.1373604536, 0.2495964766], [0.9785252810, 0.5094971061]],
                            [[0.2959728837, 0.8378278613], [0.5674484372, 0.3124643564]]],
                           [[[0.2381041050, 0.8065491915], [0.2052971125, 0.9496635199]],
                            [[0.2494341135, 0.9726386070], [0.9316667318, 0.2813754082]],
                            [[0.2399672866, 0.3493354321], [0.9550838470, 0.8279340863]]]])
FOCAL_TARGET = torch.tensor([[[2, 2], [1, 2]], [[0, 1], [2, 0]]])
FOCAL_ONE_HOT = torch.tensor([[[[0, 0], [0, 0]], [[0, 0], [1, 0]], [[1, 1], [0, 1]]],
                              [[[1, 0], [0, 1]], [[0, 1], [0, 0]], [[0, 0], [1, 0]]]])
CLASS_WEIGHT = [0.052917540073394775, 0.27414458990097046, 0.5211336612701416]


@pytest.mark.parametrize("reduction, class_weight, expected", [
    ("mean", None, 0.15395577251911163),
    ("sum", None, 3.6949386596679688),
    ("mean", CLASS_WEIGHT, 0.039807554334402084),
    ("sum", CLASS_WEIGHT, 0.9553812742233276),
])
def test_focal_loss_same(reduction, class_weight, expected):
    """mmseg test_focal_loss.py test_same, the gpu_results of weight=None (16 identical
    values each: class map or one-hot target, ignore_index 255 or 4, alpha 0.4 as a float or
    a list): sigmoid focal, gamma 2, alpha 0.4. mmseg's class_weight scales each channel;
    segfuse's sigmoid focal loss has none, so the weighted rows multiply its element losses."""
    for target in (F.one_hot(FOCAL_TARGET, 3).permute(0, 3, 1, 2), FOCAL_ONE_HOT):
        for ignore_index in (255, 4):
            element = SF.focal_loss(FOCAL_PRED, target, "multilabel", alpha=0.4, gamma=2.0, reduction="none",
                                    ignore_index=ignore_index)
            if class_weight is not None:
                element = element * torch.tensor(class_weight).view(1, 3, 1, 1)
            value = element.mean() if reduction == "mean" else element.sum()
            assert torch.allclose(value, torch.tensor(expected), rtol=1e-5, atol=1e-8)
            if class_weight is None:
                direct = SF.focal_loss(FOCAL_PRED, target, "multilabel", alpha=0.4, reduction=reduction,
                                       ignore_index=ignore_index)
                assert torch.allclose(direct, torch.tensor(expected), rtol=1e-5, atol=1e-8)


def test_focal_loss_ignore_index():
    """mmseg test_focal_loss.py test_ignore_index: ignored pixels (a label inside or outside the
    C classes) have zero loss in every channel; the class map and its one-hot agree."""
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 4, 5, 6, generator=generator)
    target = torch.randint(0, 4, (3, 5, 6), generator=generator)
    target[0, 1, 2] = target[2, 4, 5] = 255
    onehot = F.one_hot(target.clamp_max(3), 4).permute(0, 3, 1, 2)
    onehot = torch.where((target == 255).unsqueeze(1), 255, onehot)
    loss = SF.focal_loss(pred, onehot, "multilabel", alpha=0.5, reduction="none", ignore_index=255)
    assert loss.shape == pred.shape
    assert torch.all(loss[0, :, 1, 2] == 0) and torch.all(loss[2, :, 4, 5] == 0)
    assert torch.all(loss[(target != 255).unsqueeze(1).expand_as(loss)] > 0)


def test_focal_loss_forward_with_different_shape_of_target():
    """mmseg test_forward_with_different_shape_of_target: a class map and its one-hot give the
    same (softmax) focal loss in segfuse, as they give the same sigmoid one in mmseg."""
    generator = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 4, 5, 6, generator=generator)
    target = torch.randint(0, 4, (3, 5, 6), generator=generator)
    onehot = F.one_hot(target, num_classes=4).permute(0, 3, 1, 2)
    assert torch.allclose(SF.focal_loss(pred, target), SF.focal_loss(pred, onehot))

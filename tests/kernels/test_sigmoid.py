"""Fused sigmoid kernels (segfuse.kernels.sigmoid) against the torch path: statistics
(_stats.dense_statistics), BCE (F.binary_cross_entropy_with_logits) and sigmoid focal
(segfuse.losses.focal), values and gradients, Triton interpreter."""

import pytest
import torch
import torch.nn.functional as F

from segfuse import _stats, kernels
from segfuse.losses.focal import _sigmoid_focal
from tests.kernels.helpers import DTYPES, assert_grads, assert_values, make_logits, upstream_like, weighted_sum

pytestmark = pytest.mark.usefixtures("interpreted_kernels")

SHAPES = [(2, 1, 13), (2, 3, 7, 9), (1, 4, 33, 17), (2, 2, 32, 32), (2, 2, 5, 6, 7), (1, 1, 70, 64)]


def _target(shape, dtype, ignore_index, seed=5):
    generator = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        target = torch.rand(shape, generator=generator)
    else:
        target = torch.randint(0, 2, shape, generator=generator)
    if ignore_index is not None:
        target[torch.rand(shape, generator=generator) < 0.3] = ignore_index
    return target.to(dtype)


def _reference(logits, target, ignore_index, per_image, focal_gamma, focal_alpha):
    logits = logits.float()  # one cast: the gradient is rounded to the input dtype once, as in the kernel
    valid = None if ignore_index is None else target != ignore_index
    clean = target.float() if valid is None else torch.where(valid, target.float(), 0)
    stats = _stats.dense_statistics(torch.sigmoid(logits), clean, valid=valid, per_image=per_image)
    bce = F.binary_cross_entropy_with_logits(logits, clean, reduction="none")
    bce = bce if valid is None else bce * valid
    focal = _sigmoid_focal(logits, target, focal_alpha, focal_gamma, ignore_index, "none", True)
    count = torch.ones_like(bce) if valid is None else valid.float()

    def reduce(values):
        return values.flatten(1).sum(1) if per_image else values.sum()

    return stats, reduce(bce), reduce(focal), reduce(count)


def _compare(shape, dtype, target_dtype, ignore_index, per_image, focal_gamma, focal_alpha, seed=0):
    logits = make_logits(shape, dtype, scale=4.0, seed=seed)
    target = _target(shape, target_dtype, ignore_index)
    assert kernels.fused_binary_available(logits, target)
    fused = kernels.fused_binary_terms(logits, target, ignore_index=ignore_index, per_image=per_image,
                                       want_bce=True, focal_gamma=focal_gamma, focal_alpha=focal_alpha)
    stats, bce, focal, count = _reference(logits, target, ignore_index, per_image, focal_gamma, focal_alpha)
    expected = {"tp": stats.tp, "ps": stats.ps, "gs": stats.gs, "bce": bce, "focal": focal, "count": count}
    actual = {"tp": fused.stats.tp, "ps": fused.stats.ps, "gs": fused.stats.gs, "bce": fused.bce_sum,
              "focal": fused.focal_sum, "count": fused.count}
    for name in expected:
        assert_values(actual[name], expected[name].float(), dtype, name)
    names = ["tp", "ps", "bce", "focal"]
    upstream = [upstream_like(expected[name], seed + i) for i, name in enumerate(names)]
    grad_fused, = torch.autograd.grad(weighted_sum([actual[n] for n in names], upstream), logits)
    grad_reference, = torch.autograd.grad(weighted_sum([expected[n] for n in names], upstream), logits)
    assert_grads(grad_fused, grad_reference, dtype)
    return logits, target


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_soft_target_matches_torch_path(shape, dtype):
    _compare(shape, dtype, torch.float32, None, False, 2.0, 0.25)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("target_dtype, ignore_index", [(torch.uint8, 255), (torch.int64, -1), (torch.float16, 2),
                                                        (torch.int8, -1)])
@pytest.mark.parametrize("per_image, gamma, alpha", [(True, 0.5, None), (False, 0.0, 0.75), (True, 3.0, 0.25)])
def test_ignore_and_options_match_torch_path(dtype, target_dtype, ignore_index, per_image, gamma, alpha):
    _compare((2, 3, 9, 11), dtype, target_dtype, ignore_index, per_image, gamma, alpha, seed=4)


def test_statistics_helper_and_bool_target():
    logits = make_logits((2, 1, 9, 13), torch.float32)
    target = _target((2, 1, 9, 13), torch.int64, None).bool()
    stats = kernels.fused_binary_statistics(logits, target)
    expected = _stats.dense_statistics(torch.sigmoid(logits), target.float())
    for actual, reference in zip(stats, expected):
        assert_values(actual, reference, torch.float32)


@pytest.mark.parametrize("per_image", [False, True])
def test_all_ignored_gives_zero_and_zero_gradient(per_image):
    logits = make_logits((2, 2, 7, 5), torch.bfloat16)
    target = torch.full((2, 2, 7, 5), 255, dtype=torch.uint8)
    fused = kernels.fused_binary_terms(logits, target, ignore_index=255, per_image=per_image, want_bce=True,
                                       focal_gamma=2.0, focal_alpha=0.25)
    for value in (*fused.stats, fused.bce_sum, fused.focal_sum, fused.count):
        assert torch.count_nonzero(value) == 0
    loss = fused.stats.tp.sum() + 2 * fused.stats.ps.sum() + fused.bce_sum.sum() + fused.focal_sum.sum()
    grad, = torch.autograd.grad(loss, logits)
    assert grad.dtype == torch.bfloat16 and torch.count_nonzero(grad) == 0


def test_saturated_logits_with_gamma_below_one_are_finite():
    logits = make_logits((1, 2, 8, 9), torch.float32, scale=80.0)
    target = _target((1, 2, 8, 9), torch.float32, None).round()
    fused = kernels.fused_binary_terms(logits, target, want_stats=False, focal_gamma=0.2)
    grad, = torch.autograd.grad(fused.focal_sum * 1.5, logits)
    assert torch.isfinite(fused.focal_sum) and torch.isfinite(grad).all()

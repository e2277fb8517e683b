"""Fused multiclass kernels (segfuse.kernels.multiclass) against the torch path
(segfuse._stats.multiclass_terms_reference): values and gradients, Triton interpreter."""

import pytest
import torch

from segfuse import _stats, kernels
from tests.kernels.helpers import (
    DTYPES, assert_grads, assert_values, make_labels, make_logits, upstream_like, weighted_sum,
)

pytestmark = pytest.mark.usefixtures("interpreted_kernels")

# (N, C, *S): odd and aligned sizes, 1D / 2D / 3D, C from 1 to 150.
SHAPES = [
    (2, 1, 13),
    (2, 5, 7, 9),
    (3, 21, 33, 17),
    (2, 8, 32, 32),
    (1, 150, 5, 7),
    (2, 4, 5, 6, 7),
    (2, 3, 64, 70),
]

# Option sets: (ignore_index, label dtype, per_image, want_stats, want_ce, class weights,
# focal gamma, focal alpha).
OPTIONS = {
    "dice_ce": dict(ignore_index=None, label_dtype=torch.int64, per_image=False, want_stats=True, want_ce=True,
                    weighted=False, focal_gamma=None, alpha=False),
    "ignore_uint8_weighted_per_image_focal": dict(ignore_index=255, label_dtype=torch.uint8, per_image=True,
                                                  want_stats=True, want_ce=True, weighted=True, focal_gamma=2.0,
                                                  alpha=True),
    "ignore_negative_gamma_below_one": dict(ignore_index=-100, label_dtype=torch.int64, per_image=False,
                                            want_stats=True, want_ce=False, weighted=False, focal_gamma=0.5,
                                            alpha=False),
    "int16_gamma_zero_alpha_no_stats": dict(ignore_index=-1, label_dtype=torch.int16, per_image=True,
                                            want_stats=False, want_ce=True, weighted=False, focal_gamma=0.0,
                                            alpha=True),
    "int32_stats_only": dict(ignore_index=None, label_dtype=torch.int32, per_image=False, want_stats=True,
                             want_ce=False, weighted=False, focal_gamma=None, alpha=False),
}


def _call_both(logits, labels, options):
    c = logits.shape[1]
    generator = torch.Generator().manual_seed(7)
    kwargs = dict(
        ignore_index=options["ignore_index"], per_image=options["per_image"], want_stats=options["want_stats"],
        want_ce=options["want_ce"], focal_gamma=options["focal_gamma"],
        ce_weight=torch.rand(c, generator=generator) + 0.1 if options["weighted"] else None,
        focal_alpha=torch.rand(c, generator=generator) if options["alpha"] else None,
    )
    assert kernels.fused_multiclass_available(logits)
    fused = kernels.fused_multiclass_terms(logits, labels, **kwargs)
    reference = _stats.multiclass_terms_reference(logits, labels, **kwargs)
    return fused, reference


def _outputs(terms, options):
    """The requested fields (the others are None in the fused path)."""
    stats = terms.stats if options["want_stats"] else (None, None, None)
    ce = (terms.ce_sum, terms.ce_weight) if options["want_ce"] else (None, None)
    focal = terms.focal_sum if options["focal_gamma"] is not None else None
    return {"tp": stats[0], "ps": stats[1], "gs": stats[2], "ce_sum": ce[0], "ce_weight": ce[1],
            "focal_sum": focal, "count": terms.count}


def _compare(logits, labels, options, dtype, seed=0):
    fused, reference = _call_both(logits, labels, options)
    fused_out, reference_out = _outputs(fused, options), _outputs(reference, options)
    assert (fused.stats is None) != options["want_stats"]
    assert (fused.ce_sum is None) != options["want_ce"]
    assert (fused.focal_sum is None) == (options["focal_gamma"] is None)
    for name, expected in reference_out.items():
        actual = fused_out[name]
        if expected is not None:
            assert_values(actual, expected, dtype, name)
    differentiable = ["tp", "ps", "ce_sum", "focal_sum"]
    upstream = [None if reference_out[k] is None else upstream_like(reference_out[k], seed + i)
                for i, k in enumerate(differentiable)]
    if all(u is None for u in upstream):
        return fused, reference
    grad_fused, = torch.autograd.grad(weighted_sum([fused_out[k] for k in differentiable], upstream), logits)
    grad_reference, = torch.autograd.grad(weighted_sum([reference_out[k] for k in differentiable], upstream), logits)
    assert_grads(grad_fused, grad_reference, dtype)
    return fused, reference


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dice_ce_terms_match_torch_path(shape, dtype):
    options = OPTIONS["dice_ce"]
    logits = make_logits(shape, dtype)
    labels = make_labels((shape[0], *shape[2:]), shape[1], options["label_dtype"])
    _compare(logits, labels, options, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", [k for k in OPTIONS if k != "dice_ce"])
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (1, 150, 5, 7), (2, 4, 5, 6, 7)],
                         ids=lambda s: "x".join(map(str, s)))
def test_options_match_torch_path(shape, name, dtype):
    options = OPTIONS[name]
    logits = make_logits(shape, dtype, seed=3)
    labels = make_labels((shape[0], *shape[2:]), shape[1], options["label_dtype"], options["ignore_index"])
    _compare(logits, labels, options, dtype, seed=11)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("per_image", [False, True])
def test_all_ignored_gives_zero_sums_and_zero_gradient(dtype, per_image):
    options = dict(OPTIONS["ignore_uint8_weighted_per_image_focal"], per_image=per_image)
    logits = make_logits((2, 6, 9, 11), dtype)
    labels = torch.full((2, 9, 11), 255, dtype=torch.uint8)
    _compare(logits, labels, options, dtype)
    fused = kernels.fused_multiclass_terms(logits, labels, ignore_index=255, per_image=per_image, want_ce=True,
                                           ce_weight=torch.rand(6), focal_gamma=2.0, focal_alpha=torch.rand(6))
    assert torch.all(fused.count == 0) and torch.all(fused.ce_weight == 0)
    assert torch.all(fused.stats.tp == 0) and torch.all(fused.stats.ps == 0)
    loss = fused.stats.tp.sum() + fused.stats.ps.sum() + fused.ce_sum.sum() + fused.focal_sum.sum()
    grad, = torch.autograd.grad(loss, logits)
    assert torch.count_nonzero(grad) == 0


def test_ignored_pixels_get_exactly_zero_gradient():
    logits = make_logits((2, 5, 13, 11), torch.float32)
    labels = make_labels((2, 13, 11), 5, torch.int64, ignore_index=-100, ignored_fraction=0.5)
    terms = kernels.fused_multiclass_terms(logits, labels, ignore_index=-100, want_ce=True, focal_gamma=2.0)
    loss = terms.stats.tp.sum() * 0.3 + terms.stats.ps.sum() * 1.1 + terms.ce_sum + terms.focal_sum
    grad, = torch.autograd.grad(loss, logits)
    ignored = (labels == -100).unsqueeze(1).expand_as(grad)
    assert torch.count_nonzero(grad[ignored]) == 0
    assert torch.count_nonzero(grad[~ignored]) > 0


def test_uint8_labels_with_negative_ignore_index_ignore_nothing():
    """-1 does not wrap to 255 for uint8 labels (segfuse._validate.representable_ignore_index)."""
    logits = make_logits((2, 4, 9, 7), torch.float32)
    labels = make_labels((2, 9, 7), 4, torch.uint8)
    _compare(logits, labels, dict(OPTIONS["dice_ce"], ignore_index=-1), torch.float32)
    terms = kernels.fused_multiclass_terms(logits, labels, ignore_index=-1, want_ce=True)
    assert terms.count.item() == labels.numel()


def test_saturated_logits_with_gamma_below_one_are_finite():
    logits = (make_logits((2, 3, 8, 9), torch.float32, scale=60.0)).detach().requires_grad_()
    labels = make_labels((2, 8, 9), 3)
    terms = kernels.fused_multiclass_terms(logits, labels, want_stats=False, focal_gamma=0.3)
    grad, = torch.autograd.grad(terms.focal_sum * 2.5, logits)
    assert torch.isfinite(terms.focal_sum) and torch.isfinite(grad).all()
    reference = _stats.multiclass_terms_reference(logits, labels, want_stats=False, focal_gamma=0.3)
    grad_reference, = torch.autograd.grad(reference.focal_sum * 2.5, logits)
    torch.testing.assert_close(terms.focal_sum, reference.focal_sum, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(grad, grad_reference, atol=1e-4, rtol=1e-3)


def test_non_contiguous_logits_and_caller_tensors_untouched():
    base = make_logits((2, 9, 10, 5), torch.float32).detach()
    logits = base.permute(0, 1, 3, 2).requires_grad_()  # non-contiguous view
    before = base.clone()
    labels = make_labels((2, 5, 10), 9)
    _compare(logits, labels, OPTIONS["dice_ce"], torch.float32)
    assert torch.equal(base, before)

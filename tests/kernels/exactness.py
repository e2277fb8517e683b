"""Checks strong enough to convict a kernel, on any device: float64 references compared
by relative error, integer outputs (gs, count, confusion counts) exact, every output
poisoned with NaN before the call, and a second run bit-equal to the first.

test_cuda.py runs them at full size on a GPU (the benchmarked configuration included);
test_exactness.py runs the same checks on tiny shapes under Triton's interpreter.
"""

from __future__ import annotations

import os
from typing import Optional

import torch

import segfuse.functional as SF
from segfuse import _stats, kernels
from segfuse.kernels import _launch

# ||fused - reference|| / ||reference|| against float64 on the same (rounded) inputs: only
# float32 arithmetic differs for the sums; gradients are also rounded to their dtype.
VALUE_RTOL = 1e-5
GRAD_RTOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
LOSS_RTOL = 1e-5


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64 (inf if actual has a NaN; the
    absolute error when the reference is 0)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} vs {tuple(expected.shape)}"
    if not torch.isfinite(actual).all():
        return float("inf")
    scale = float(torch.linalg.vector_norm(expected))
    error = float(torch.linalg.vector_norm(actual - expected))
    return error / scale if scale > 0 else error


def random_logits(shape, dtype, device, seed, scale=3.0, channels_last=False) -> torch.Tensor:
    generator = torch.Generator(device=device).manual_seed(seed)
    logits = (torch.randn(shape, generator=generator, device=device) * scale).to(dtype)
    if channels_last:
        logits = logits.to(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    return logits.requires_grad_()


def random_labels(shape, num_classes, dtype, device, seed, ignore_index=None, ignored=0.2, background=None):
    """Labels in [0, C); ``background`` puts that fraction on class 0 (skewed labels)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    labels = torch.randint(0, num_classes, shape, generator=generator, device=device)
    if background:
        labels[torch.rand(shape, generator=generator, device=device) < background] = 0
    if ignore_index is not None:
        labels[torch.rand(shape, generator=generator, device=device) < ignored] = ignore_index
    return labels.to(dtype)


def exact_counts(labels: torch.Tensor, num_classes: int, ignore_index: Optional[int], per_image: bool):
    """(gs (N, C) or (C,), count (N,) or 0-d), int64, straight from the labels."""
    n = labels.shape[0]
    flat = labels.reshape(n, -1).long()
    ignore = _launch.kernel_ignore_index(ignore_index, labels.dtype)
    valid = torch.ones_like(flat, dtype=torch.bool) if ignore is None else labels.reshape(n, -1) != ignore
    bins = flat.clamp(0, num_classes - 1) + torch.arange(n, device=labels.device).unsqueeze(1) * num_classes
    gs = torch.bincount(bins[valid], minlength=n * num_classes).view(n, num_classes)
    count = valid.sum(1)
    return (gs, count) if per_image else (gs.sum(0), count.sum())


def _upstream(reference: dict, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(value.shape, generator=generator, dtype=torch.float64) * 1.7 + 0.3).to(value.device)
            for name, value in reference.items()}


def _terms_dict(terms) -> dict:
    out = {"count": terms.count}
    if terms.stats is not None:
        out.update(tp=terms.stats.tp, ps=terms.stats.ps, gs=terms.stats.gs)
    if terms.ce_sum is not None:
        out.update(ce_sum=terms.ce_sum, ce_weight=terms.ce_weight)
    if terms.focal_sum is not None:
        out["focal_sum"] = terms.focal_sum
    return out


DIFFERENTIABLE = ("tp", "ps", "ce_sum", "focal_sum")


def run_multiclass_terms(logits, labels, kwargs, upstream) -> dict:
    """The fused terms and dL/dlogits for sum(upstream * term), outputs poisoned first."""
    with _launch.poisoned_outputs():
        out = _terms_dict(kernels.fused_multiclass_terms(logits, labels, **kwargs))
        loss = sum((out[k].double() * upstream[k]).sum() for k in DIFFERENTIABLE if k in out)
        out["grad"], = torch.autograd.grad(loss, logits)
    return out


def reference_multiclass_terms(logits, labels, kwargs, upstream=None, seed=0):
    """(float64 torch-path terms + gradient, the upstream gradients used)."""
    x = logits.detach().double().requires_grad_()
    kwargs64 = {k: (v.double() if torch.is_tensor(v) else v) for k, v in kwargs.items()}
    ref = _terms_dict(_stats.multiclass_terms_reference(x, labels, **kwargs64))
    upstream = upstream or _upstream({k: ref[k] for k in DIFFERENTIABLE if k in ref}, seed)
    loss = sum((ref[k] * upstream[k]).sum() for k in DIFFERENTIABLE if k in ref)
    ref["grad"], = torch.autograd.grad(loss, x)
    return ref, upstream


def check_multiclass_terms(logits, labels, kwargs, seed=0) -> dict:
    """Fused terms vs float64 (relative errors returned), gs / count exact, bit-equal rerun;
    raises AssertionError with the offending output named."""
    reference, upstream = reference_multiclass_terms(logits, labels, kwargs, seed=seed)
    first = run_multiclass_terms(logits, labels, kwargs, upstream)
    second = run_multiclass_terms(logits, labels, kwargs, upstream)
    for name in first:
        assert torch.equal(first[name], second[name]), f"{name}: a second run differs bit for bit"
    assert first["grad"].dtype == logits.dtype and first["grad"].shape == logits.shape
    gs, count = exact_counts(labels, logits.shape[1], kwargs.get("ignore_index"), kwargs.get("per_image", False))
    assert torch.equal(first["count"], count.to(torch.float32)), "count is not exact"
    if "gs" in first:
        assert torch.equal(first["gs"], gs.to(torch.float32)), "gs is not exact"
    errors = {}
    for name in reference:
        errors[name] = relative_error(first[name], reference[name])
        limit = GRAD_RTOL[logits.dtype] if name == "grad" else VALUE_RTOL
        assert errors[name] <= limit, f"{name}: relative error {errors[name]:.3g} > {limit:g}"
    return errors


LOSSES = {
    "dice_ce": lambda x, y, **kw: SF.dice_ce_loss(x, y, 0.7, 1.3, **kw),
    "dice_focal": lambda x, y, **kw: SF.dice_focal_loss(x, y, 1.0, 2.0, gamma=2.0, **kw),
}


def fused_loss_call(name, logits, labels, ignore_index=None, per_image=False, class_weights=None,
                    include_background=True, skip_absent=False, log_loss=False):
    """The fused twin of LOSSES[name] (what the losses' dispatch calls)."""
    weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
    overlap = kernels.OverlapTerm(2.0, 1.0, 1.0, 1e-5, 1.0, log_loss, include_background, skip_absent, weights)
    if name == "dice_ce":
        return kernels.fused_multiclass_loss(logits, labels, ignore_index=ignore_index, per_image=per_image,
                                             overlap=overlap, overlap_weight=0.7, ce_weight=1.3,
                                             ce_class_weights=None if weights is None else weights.to(logits.device))
    return kernels.fused_multiclass_loss(logits, labels, ignore_index=ignore_index, per_image=per_image,
                                         overlap=overlap, overlap_weight=1.0, focal_weight=2.0, focal_gamma=2.0)


def check_fused_loss(name, logits, labels, upstream=1.7, **options) -> dict:
    """The fused loss and its gradient vs the float64 torch-path loss, poisoned, bit-equal."""
    x = logits.detach().double().requires_grad_()
    previous = os.environ.get("SEGFUSE_DISABLE_KERNELS")
    os.environ["SEGFUSE_DISABLE_KERNELS"] = "1"
    try:
        reference = LOSSES[name](x, labels, **options)
    finally:
        if previous is None:
            del os.environ["SEGFUSE_DISABLE_KERNELS"]
        else:
            os.environ["SEGFUSE_DISABLE_KERNELS"] = previous
    reference_grad, = torch.autograd.grad(reference * upstream, x)
    runs = []
    for _ in range(2):
        with _launch.poisoned_outputs():
            loss = fused_loss_call(name, logits, labels, **options)
            grad, = torch.autograd.grad(loss * upstream, logits)
        runs.append((loss, grad))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1]), "a second run differs"
    loss, grad = runs[0]
    assert loss.dtype == torch.float32 and loss.dim() == 0 and grad.dtype == logits.dtype
    errors = {"loss": relative_error(loss, reference), "grad": relative_error(grad, reference_grad)}
    assert errors["loss"] <= LOSS_RTOL, f"loss: relative error {errors['loss']:.3g}"
    assert errors["grad"] <= GRAD_RTOL[logits.dtype], f"grad: relative error {errors['grad']:.3g}"
    return errors


def reference_confusion(scores_or_map, target, num_classes, ignore_index=None) -> torch.Tensor:
    pred = scores_or_map.argmax(1) if scores_or_map.dtype.is_floating_point else scores_or_map
    truth, predicted = target.reshape(-1).long(), pred.reshape(-1).long()
    ignore = _launch.kernel_ignore_index(ignore_index, target.dtype)
    if ignore is not None:
        keep = target.reshape(-1) != ignore
        truth, predicted = truth[keep], predicted[keep]
    return torch.bincount(truth * num_classes + predicted, minlength=num_classes**2).view(num_classes, num_classes)


def check_confusion(scores_or_map, target, num_classes, ignore_index=None) -> None:
    """Exact counts against torch.bincount of the argmax, poisoned, bit-equal rerun."""
    runs = []
    for _ in range(2):
        with _launch.poisoned_outputs():
            runs.append(kernels.fused_confusion_matrix(scores_or_map, target, num_classes, ignore_index))
    assert torch.equal(runs[0], runs[1]), "a second run differs"
    expected = reference_confusion(scores_or_map, target, num_classes, ignore_index)
    assert runs[0].dtype == torch.int64 and torch.equal(runs[0], expected), "confusion counts differ from bincount"


def random_binary_target(shape, dtype, device, seed, ignore_index=None, channels_last=False):
    generator = torch.Generator(device=device).manual_seed(seed)
    if dtype.is_floating_point:
        target = torch.rand(shape, generator=generator, device=device)
    else:
        target = torch.randint(0, 2, shape, generator=generator, device=device)
    if ignore_index is not None:
        target[torch.rand(shape, generator=generator, device=device) < 0.2] = ignore_index
    target = target.to(dtype)
    if channels_last:
        target = target.to(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    return target


def reference_binary_terms(logits, target, ignore_index, per_image, focal_gamma, focal_alpha):
    """float64 (tp, ps, gs, bce_sum, focal_sum, count) of the sigmoid terms, as a dict."""
    from segfuse.losses.focal import _sigmoid_focal

    x = logits.detach().double().requires_grad_()
    ignore = _launch.kernel_ignore_index(ignore_index, target.dtype)
    valid = None if ignore is None else target != ignore
    clean = target.double() if valid is None else torch.where(valid, target.double(), 0)
    stats = _stats.dense_statistics(torch.sigmoid(x), clean, valid=valid, per_image=per_image)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, clean, reduction="none")
    bce = bce if valid is None else bce * valid
    focal = _sigmoid_focal(x, target, focal_alpha, focal_gamma, ignore_index, "none", True)
    count = torch.ones_like(bce) if valid is None else valid.double()

    def reduce(values):
        return values.flatten(1).sum(1) if per_image else values.sum()

    return x, {"tp": stats.tp, "ps": stats.ps, "gs": stats.gs, "bce_sum": reduce(bce), "focal_sum": reduce(focal),
               "count": reduce(count)}


def check_binary_terms(logits, target, ignore_index=None, per_image=False, focal_gamma=2.0, focal_alpha=0.25,
                       seed=0) -> dict:
    """Fused sigmoid terms vs float64, count exact, poisoned, bit-equal rerun."""
    x, reference = reference_binary_terms(logits, target, ignore_index, per_image, focal_gamma, focal_alpha)
    names = ("tp", "ps", "bce_sum", "focal_sum")
    upstream = _upstream({k: reference[k] for k in names}, seed)
    reference["grad"], = torch.autograd.grad(sum((reference[k] * upstream[k]).sum() for k in names), x)
    runs = []
    for _ in range(2):
        with _launch.poisoned_outputs():
            terms = kernels.fused_binary_terms(logits, target, ignore_index=ignore_index, per_image=per_image,
                                               want_bce=True, focal_gamma=focal_gamma, focal_alpha=focal_alpha)
            out = {"tp": terms.stats.tp, "ps": terms.stats.ps, "gs": terms.stats.gs, "bce_sum": terms.bce_sum,
                   "focal_sum": terms.focal_sum, "count": terms.count}
            out["grad"], = torch.autograd.grad(sum((out[k].double() * upstream[k]).sum() for k in names), logits)
        runs.append(out)
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), f"{name}: a second run differs bit for bit"
    out = runs[0]
    assert torch.equal(out["count"], reference["count"].float()), "count is not exact"
    if not target.dtype.is_floating_point:
        assert torch.equal(out["gs"], reference["gs"].float()), "gs is not exact"
    errors = {}
    for name in reference:
        errors[name] = relative_error(out[name], reference[name])
        limit = GRAD_RTOL[logits.dtype] if name == "grad" else VALUE_RTOL
        assert errors[name] <= limit, f"{name}: relative error {errors[name]:.3g} > {limit:g}"
    assert out["grad"].stride() == logits.stride() or not _launch.spatial_stride(logits, 2), "gradient layout"
    return errors


def check_fused_binary_loss(logits, target, upstream=1.3, ignore_index=None, per_image=False,
                            include_background=True) -> dict:
    """Fused multilabel DiceCE (Dice + BCE) vs the float64 torch-path dice_ce_loss."""
    x = logits.detach().double().requires_grad_()
    reference = SF.dice_ce_loss(x, target, 0.6, 1.4, mode="multilabel", ignore_index=ignore_index,
                                per_image=per_image, include_background=include_background)
    reference_grad, = torch.autograd.grad(reference * upstream, x)
    overlap = kernels.OverlapTerm(2.0, 1.0, 1.0, 1e-5, 1.0, False, include_background, False)
    runs = []
    for _ in range(2):
        with _launch.poisoned_outputs():
            loss = kernels.fused_binary_loss(logits, target, ignore_index=ignore_index, per_image=per_image,
                                             overlap=overlap, overlap_weight=0.6, bce_weight=1.4)
            grad, = torch.autograd.grad(loss * upstream, logits)
        runs.append((loss, grad))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1]), "a second run differs"
    errors = {"loss": relative_error(runs[0][0], reference), "grad": relative_error(runs[0][1], reference_grad)}
    assert errors["loss"] <= LOSS_RTOL, f"loss: relative error {errors['loss']:.3g}"
    assert errors["grad"] <= GRAD_RTOL[logits.dtype], f"grad: relative error {errors['grad']:.3g}"
    return errors

"""The convicting checks of tests/kernels/exactness.py on tiny shapes under Triton's
interpreter: float64 references, exact gs / count / confusion counts, poisoned outputs,
bit-equal reruns, channels-last logits, non-contiguous labels, the int64 index path and
the fused losses. test_cuda.py runs the same checks at full size on a GPU."""

import pytest
import torch

from segfuse import kernels
from segfuse.kernels import _launch
from tests.kernels import exactness as X

pytestmark = pytest.mark.usefixtures("interpreted_kernels")
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _kwargs(c, device="cpu", ignore_index=None, per_image=False, weighted=False, focal_gamma=None, alpha=False):
    generator = torch.Generator().manual_seed(c)
    return dict(ignore_index=ignore_index, per_image=per_image, want_ce=True,
                ce_weight=(torch.rand(c, generator=generator) + 0.1).to(device) if weighted else None,
                focal_gamma=focal_gamma, focal_alpha=torch.rand(c, generator=generator).to(device) if alpha else None)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape, label_dtype, options", [
    ((2, 21, 17, 13), torch.int64, dict()),                                        # the benchmark's form
    ((2, 5, 9, 11), torch.uint8, dict(ignore_index=255, per_image=True, weighted=True, focal_gamma=2.0, alpha=True)),
    ((1, 150, 5, 7), torch.int16, dict(ignore_index=-1, focal_gamma=0.5)),
    ((2, 3, 4, 5, 6), torch.int32, dict(per_image=True, focal_gamma=0.0, alpha=True)),
    ((3, 1, 37), torch.int64, dict(ignore_index=-100)),
], ids=["dice_ce_c21", "uint8_ignore_focal_per_image", "c150_int16_gamma_half", "3d_gamma0", "c1_1d"])
def test_terms_match_float64_with_exact_counts(shape, label_dtype, options, dtype):
    logits = X.random_logits(shape, dtype, "cpu", seed=1)
    labels = X.random_labels((shape[0], *shape[2:]), shape[1], label_dtype, "cpu", seed=2,
                             ignore_index=options.get("ignore_index"))
    X.check_multiclass_terms(logits, labels, _kwargs(shape[1], **options), seed=3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_channels_last_logits_are_read_in_place(dtype):
    logits = X.random_logits((2, 6, 9, 7), dtype, "cpu", seed=4, channels_last=True)
    assert _launch.class_layout(logits).tensor is logits  # no copy
    labels = X.random_labels((2, 9, 7), 6, torch.int64, "cpu", seed=5, ignore_index=255)
    X.check_multiclass_terms(logits, labels, _kwargs(6, ignore_index=255, focal_gamma=2.0), seed=6)
    terms = kernels.fused_multiclass_terms(logits, labels, ignore_index=255, want_ce=True)
    grad, = torch.autograd.grad(terms.ce_sum + terms.stats.ps.sum(), logits)
    assert grad.stride() == logits.stride()  # the gradient keeps the channels-last layout


def test_channels_last_3d_logits():
    logits = X.random_logits((2, 4, 5, 6, 7), torch.float32, "cpu", seed=7, channels_last=True)
    labels = X.random_labels((2, 5, 6, 7), 4, torch.uint8, "cpu", seed=8)
    X.check_multiclass_terms(logits, labels, _kwargs(4, per_image=True), seed=9)


def test_non_contiguous_labels():
    logits = X.random_logits((2, 5, 8, 9), torch.float32, "cpu", seed=10)
    wide = X.random_labels((2, 8, 18), 5, torch.int64, "cpu", seed=11, ignore_index=-1)
    strided = wide[..., ::2]  # strides collapse: read in place
    assert not strided.is_contiguous() and _launch.pixel_layout(strided).tensor is strided
    X.check_multiclass_terms(logits, strided, _kwargs(5, ignore_index=-1), seed=12)
    transposed = X.random_labels((2, 9, 8), 5, torch.uint8, "cpu", seed=13).transpose(1, 2)  # copied
    X.check_multiclass_terms(logits, transposed, _kwargs(5, per_image=True), seed=14)


def test_int64_index_path(monkeypatch):
    """The offsets used past 2^31 elements per image (test_cuda.py runs a real such case)."""
    monkeypatch.setattr(_launch, "needs_int64", lambda *spans: True)
    logits = X.random_logits((2, 7, 6, 5), torch.bfloat16, "cpu", seed=15)
    labels = X.random_labels((2, 6, 5), 7, torch.uint8, "cpu", seed=16, ignore_index=255)
    X.check_multiclass_terms(logits, labels, _kwargs(7, ignore_index=255, focal_gamma=2.0), seed=17)
    X.check_confusion(logits.detach(), labels, 7, 255)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name, options", [
    ("dice_ce", dict()),
    ("dice_ce", dict(ignore_index=255, per_image=True, class_weights=[0.5, 1.0, 2.0, 0.1, 1.5],
                     include_background=False, skip_absent="drop")),
    ("dice_ce", dict(ignore_index=255, log_loss=True)),
    ("dice_focal", dict(ignore_index=255, per_image=True)),
], ids=["dice_ce", "dice_ce_weighted_per_image", "dice_ce_log", "dice_focal"])
def test_fused_losses_match_float64_torch_path(name, options, dtype):
    logits = X.random_logits((2, 5, 9, 11), dtype, "cpu", seed=18)
    labels = X.random_labels((2, 9, 11), 5, torch.uint8, "cpu", seed=19, ignore_index=options.get("ignore_index"))
    labels[1] = torch.where(labels[1] == 3, 0, labels[1])  # class 3 absent from image 1
    X.check_fused_loss(name, logits, labels, **options)


@pytest.mark.parametrize("num_classes, background, label_dtype", [
    (3, None, torch.uint8), (21, None, torch.int64), (21, 0.9, torch.int64), (64, 0.9, torch.int16),
    (150, 0.9, torch.int64), (300, None, torch.int32),
])
def test_confusion_from_scores_is_exact(num_classes, background, label_dtype):
    scores = X.random_logits((2, num_classes, 11, 9), torch.float32, "cpu", seed=num_classes).detach()
    scores[:, :, 0, :3] = 0.25  # ties: the first maximum wins
    scores[0, 2 % num_classes, 1, 1] = float("nan")  # a NaN wins, as in torch.argmax
    labels = X.random_labels((2, 11, 9), num_classes, label_dtype, "cpu", seed=20, ignore_index=255 if
                             label_dtype != torch.int16 else -1, background=background)
    X.check_confusion(scores, labels, num_classes, 255 if label_dtype != torch.int16 else -1)


@pytest.mark.parametrize("num_classes, background", [(19, None), (19, 0.9), (1024, 0.9)])
def test_confusion_from_class_maps_is_exact(num_classes, background):
    pred = X.random_labels((3, 40, 21), num_classes, torch.int64, "cpu", seed=21, background=background)
    truth = X.random_labels((3, 40, 21), num_classes, torch.int64, "cpu", seed=22, ignore_index=-1,
                            background=background)
    X.check_confusion(pred, truth[:, :, :], num_classes, -1)
    X.check_confusion(pred.to(torch.int16), truth.transpose(1, 2).contiguous().transpose(1, 2), num_classes, -1)


def test_a_dropped_tile_is_caught():
    """The checks convict a kernel that skips one tile (the review's example)."""
    logits = X.random_logits((1, 4, 64, 64), torch.float32, "cpu", seed=23)
    labels = X.random_labels((1, 64, 64), 4, torch.int64, "cpu", seed=24)
    reference, upstream = X.reference_multiclass_terms(logits, labels, _kwargs(4), seed=25)
    full = X.run_multiclass_terms(logits, labels, _kwargs(4), upstream)
    short = X.run_multiclass_terms(logits[:, :, :, 2:].detach().requires_grad_(), labels[:, :, 2:], _kwargs(4),
                                   upstream)  # 128 pixels fewer
    gs, _ = X.exact_counts(labels, 4, None, False)
    assert torch.equal(full["gs"], gs.float()) and not torch.equal(short["gs"], gs.float())
    assert X.relative_error(full["ps"], reference["ps"]) <= X.VALUE_RTOL < X.relative_error(short["ps"],
                                                                                              reference["ps"])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape, target_dtype, ignore_index, per_image, channels_last", [
    ((2, 1, 9, 13), torch.uint8, 255, False, False),
    ((2, 3, 7, 9), torch.float32, None, True, True),
    ((2, 20, 5, 6), torch.int64, -1, True, False),   # two class blocks of 16
    ((1, 2, 4, 5, 6), torch.bool, None, False, True),
])
def test_binary_terms_match_float64(shape, target_dtype, ignore_index, per_image, channels_last, dtype):
    logits = X.random_logits(shape, dtype, "cpu", seed=26, channels_last=channels_last)
    target = X.random_binary_target(shape, target_dtype, "cpu", seed=27, ignore_index=ignore_index,
                                    channels_last=channels_last)
    if channels_last:
        assert _launch.class_layout(logits).tensor is logits
    X.check_binary_terms(logits, target, ignore_index, per_image, focal_gamma=2.0, focal_alpha=0.25)


def test_binary_terms_with_many_classes_have_a_capped_finish():
    logits = X.random_logits((1, 1000, 3), torch.float32, "cpu", seed=28)
    target = X.random_binary_target((1, 1000, 3), torch.uint8, "cpu", seed=29)
    X.check_binary_terms(logits, target, per_image=True, focal_gamma=0.5, focal_alpha=None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("ignore_index, per_image, include_background", [(None, False, True), (255, True, False)])
def test_fused_binary_loss_matches_float64_torch_path(ignore_index, per_image, include_background, dtype):
    logits = X.random_logits((2, 3, 8, 9), dtype, "cpu", seed=30)
    target = X.random_binary_target((2, 3, 8, 9), torch.uint8, "cpu", seed=31, ignore_index=ignore_index)
    X.check_fused_binary_loss(logits, target, ignore_index=ignore_index, per_image=per_image,
                              include_background=include_background)


@pytest.mark.parametrize("num_classes", [21, 300])
def test_confusion_from_channels_last_scores(num_classes):
    scores = X.random_logits((2, num_classes, 7, 9), torch.float32, "cpu", seed=32, channels_last=True).detach()
    assert _launch.class_layout(scores).tensor is scores
    labels = X.random_labels((2, 7, 9), num_classes, torch.int64, "cpu", seed=33, ignore_index=255, background=0.9)
    X.check_confusion(scores, labels, num_classes, 255)


def test_fused_losses_trace_under_torch_compile():
    """The custom ops' fake kernels and autograd registration: fullgraph, no graph break."""
    logits = X.random_logits((2, 5, 6, 7), torch.float32, "cpu", seed=34)
    labels = X.random_labels((2, 6, 7), 5, torch.int64, "cpu", seed=35, ignore_index=255)
    target = X.random_binary_target((2, 5, 6, 7), torch.uint8, "cpu", seed=36)
    overlap = kernels.OverlapTerm(2.0, 1.0, 1.0)

    def both(x):
        return (kernels.fused_multiclass_loss(x, labels, ignore_index=255, overlap=overlap, ce_weight=1.0)
                + kernels.fused_binary_loss(x, target, overlap=overlap, bce_weight=0.5))

    compiled = torch.compile(both, backend="aot_eager", fullgraph=True)
    value = compiled(logits)
    grad, = torch.autograd.grad(value, logits)
    eager = both(logits)
    eager_grad, = torch.autograd.grad(eager, logits)
    assert torch.equal(value, eager) and torch.equal(grad, eager_grad)



def _overlap_reference(stats, term: kernels.OverlapTerm):
    """float64 overlap loss of (C,) or (N, C) statistics written from the formula (the same
    convention as segfuse.losses, independently of it)."""
    tp, ps, gs = stats
    s_nr = term.smooth if term.smooth_nr is None else term.smooth_nr
    s_dr = term.smooth if term.smooth_dr is None else term.smooth_dr
    den = (term.tp_weight - term.fp_weight - term.fn_weight) * tp + term.fp_weight * ps + term.fn_weight * gs + s_dr
    score = torch.where(den == 0, 1.0, (term.tp_weight * tp + s_nr) / torch.where(den == 0, 1.0, den))
    tiny = torch.finfo(score.dtype).tiny
    loss = -torch.log(score.clamp_min(tiny)) if term.log_loss else 1 - score
    if term.gamma == 0:
        loss = torch.where(torch.isnan(loss), loss, 1.0)
    elif term.gamma != 1:
        loss = torch.where(loss <= 0, 0.0, loss.clamp_min(tiny) ** term.gamma)
    weights = torch.ones(tp.shape[-1], dtype=tp.dtype) if term.class_weights is None else \
        torch.as_tensor(term.class_weights, dtype=tp.dtype)
    first = 0 if term.include_background else 1
    loss, gs, weights = loss[..., first:], gs[..., first:], weights[first:]
    if term.skip_absent in (True, "zero"):
        loss = torch.where(gs > 0, loss, 0.0)
    kept = (gs > 0).to(loss.dtype) if term.skip_absent == "drop" else torch.ones_like(loss)
    weighted = kept * weights
    den = (weighted if term.normalize_weights else kept).sum()
    return torch.where(den != 0, (loss * weighted).sum() / torch.where(den != 0, den, 1.0), 0.0)


@pytest.mark.parametrize("term", [
    kernels.OverlapTerm(1.0, 0.3, 0.7, smooth=0.0, gamma=0.75, skip_absent=True, class_weights=[1, 2, 3, 4, 5],
                        normalize_weights=False),                              # focal Tversky, smp's "zero"
    kernels.OverlapTerm(2.0, 1.0, 1.0, smooth_nr=0.0, smooth_dr=1e-3, log_loss=True, skip_absent="drop",
                        include_background=False),                             # MONAI's smooth_nr / smooth_dr
    kernels.OverlapTerm(1.0, 1.0, 1.0, smooth=1.0, gamma=0.0),                # Jaccard, gamma 0
    kernels.OverlapTerm(5.0, 1.0, 4.0, smooth=1e-5, gamma=2.0, class_weights=[0.5, 1, 1, 1, 3]),  # F-beta, beta 2
], ids=["tversky_zero", "dice_log_drop", "jaccard_gamma0", "fbeta"])
@pytest.mark.parametrize("per_image", [False, True])
def test_fused_overlap_options_match_the_formula(term, per_image):
    logits = X.random_logits((2, 5, 7, 8), torch.float32, "cpu", seed=37)
    labels = X.random_labels((2, 7, 8), 5, torch.int64, "cpu", seed=38, ignore_index=255)
    labels[labels == 2] = 3  # class 2 absent everywhere
    x = logits.detach().double().requires_grad_()
    terms = X._stats.multiclass_terms_reference(x, labels, ignore_index=255, per_image=per_image, want_ce=True)
    ce = terms.ce_sum.sum() / terms.ce_weight.sum()
    reference = 0.8 * _overlap_reference(terms.stats, term) + 0.4 * ce
    reference_grad, = torch.autograd.grad(reference * 1.5, x)
    with _launch.poisoned_outputs():
        loss = kernels.fused_multiclass_loss(logits, labels, ignore_index=255, per_image=per_image, overlap=term,
                                             overlap_weight=0.8, ce_weight=0.4)
        grad, = torch.autograd.grad(loss * 1.5, logits)
    assert X.relative_error(loss, reference) <= X.LOSS_RTOL
    assert X.relative_error(grad, reference_grad) <= X.GRAD_RTOL[torch.float32]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_give_nan_never_a_perfect_score(bad):
    """Issue 11: NaN / Inf logits gave a loss of 0; the fused losses give NaN, like torch's."""
    logits = X.random_logits((1, 3, 4, 4), torch.float32, "cpu", seed=39).detach()
    logits[0, 1, 2, 2] = bad
    labels = X.random_labels((1, 4, 4), 3, torch.int64, "cpu", seed=40)
    target = X.random_binary_target((1, 3, 4, 4), torch.uint8, "cpu", seed=41)
    for term in (kernels.OverlapTerm(2.0, 1.0, 1.0), kernels.OverlapTerm(1.0, 0.5, 0.5, gamma=0.5, log_loss=True),
                 kernels.OverlapTerm(2.0, 1.0, 1.0, gamma=0.0, skip_absent="drop")):
        assert torch.isnan(kernels.fused_multiclass_loss(logits, labels, overlap=term))  # softmax(inf) is NaN too
        if bad != bad:  # sigmoid(inf) = 1 is finite, as in torch; a NaN logit must show
            assert torch.isnan(kernels.fused_binary_loss(logits, target, overlap=term))


def test_unknown_skip_absent_is_a_clear_error():
    with pytest.raises(ValueError, match="skip_absent must be False, True, 'zero' or 'drop'"):
        kernels.fused_multiclass_loss(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long),
                                      overlap=kernels.OverlapTerm(2.0, 1.0, 1.0, skip_absent="sometimes"))


def test_dice_ce_forward_and_backward_are_three_launches_and_one_autograd_node():
    """Issue 9's eager overhead: the fused DiceCE is the streaming kernel + the finish, then
    one backward kernel; autograd sees one node between the loss and the logits."""
    logits = X.random_logits((2, 5, 6, 7), torch.float32, "cpu", seed=42)
    labels = X.random_labels((2, 6, 7), 5, torch.int64, "cpu", seed=43, ignore_index=255)
    launched = []

    def count(kernel, grid, args, kwargs):
        launched.append(_launch.kernel_name(kernel))
        return kernel[grid](*args, **kwargs)

    with _launch.launch_hook(count):
        loss = kernels.fused_multiclass_loss(logits, labels, ignore_index=255,
                                             overlap=kernels.OverlapTerm(2.0, 1.0, 1.0), ce_weight=1.0)
        assert launched == ["_multiclass_forward_kernel", "_multiclass_loss_finish_kernel"]
        node = loss.grad_fn
        assert [type(n).__name__ for n, _ in node.next_functions if n is not None] == ["AccumulateGrad"]
        loss.backward()
    assert launched[2:] == ["_multiclass_backward_kernel"] and torch.isfinite(logits.grad).all()

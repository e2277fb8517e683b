"""The compiled kernels on a CUDA device, checked hard enough to convict (tests/kernels/
exactness.py): float64 references by relative error, gs / count / confusion counts exact,
outputs poisoned with NaN before every call, a second run bit-equal, the benchmarked
configuration at full size, a case past 2^31 elements, channels-last logits,
non-contiguous labels. Skipped without CUDA (test_exactness.py runs the same checks on
tiny shapes under the interpreter).

SEGFUSE_TEST_SEED offsets every seed (benchmarks/device_check.py passes a fresh one, so
each GPU run draws new inputs); the default 0 keeps runs reproducible.
SEGFUSE_TEST_DEVICE=cpu (with TRITON_INTERPRET=1 SEGFUSE_FORCE_KERNELS=1) dry-runs this
file on shrunken shapes under the interpreter (benchmarks/device_check.py --smoke), so
that the test code itself is exercised before a GPU session spends time on it.
"""

import os

import pytest
import torch

import segfuse
from segfuse import _stats, kernels
from segfuse.kernels import _launch
from tests.kernels import exactness as X

DEVICE = os.environ.get("SEGFUSE_TEST_DEVICE", "cuda")
DRY_RUN = DEVICE == "cpu"
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not DRY_RUN and not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(DRY_RUN and not kernels.fused_multiclass_available(torch.zeros(1, 2, 2)),
                       reason="a CPU dry run needs TRITON_INTERPRET=1 SEGFUSE_FORCE_KERNELS=1"),
    pytest.mark.skipif(not kernels.triton_available(), reason="needs triton"),
]
SEED = int(os.environ.get("SEGFUSE_TEST_SEED", "0"))
needs_gpu = pytest.mark.skipif(DRY_RUN, reason="GPU only (not in the CPU dry run)")


def size(shape):
    """The shape itself on a GPU; batch <= 2 and spatial sizes / 16 in the CPU dry run."""
    if not DRY_RUN:
        return tuple(shape)
    return (min(shape[0], 2), shape[1], *(max(3, d // 16) for d in shape[2:]))


BENCHMARKED = size((16, 21, 512, 512))  # SPEC section 7's configuration: fp32 logits, int64 labels


def _kwargs(c, ignore_index=None, per_image=False, weighted=False, focal_gamma=None, alpha=False, seed=0):
    generator = torch.Generator(device=DEVICE).manual_seed(SEED + seed)
    return dict(ignore_index=ignore_index, per_image=per_image, want_ce=True,
                ce_weight=torch.rand(c, generator=generator, device=DEVICE) + 0.1 if weighted else None,
                focal_gamma=focal_gamma,
                focal_alpha=torch.rand(c, generator=generator, device=DEVICE) if alpha else None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_benchmarked_configuration_at_full_size(dtype):
    logits = X.random_logits(BENCHMARKED, dtype, DEVICE, seed=SEED + 1)
    labels = X.random_labels((BENCHMARKED[0], *BENCHMARKED[2:]), 21, torch.int64, DEVICE, seed=SEED + 2)
    errors = X.check_multiclass_terms(logits, labels, _kwargs(21), seed=SEED + 3)
    assert set(errors) >= {"tp", "ps", "ce_sum", "grad"}
    X.check_fused_loss("dice_ce", logits, labels)


# (shape, dtype, label dtype, options, layout): a covering design of the matrix,
# each case varying several factors so that the compiled variants stay few.
MATRIX = [
    ((4, 1, 1001), torch.float32, torch.int64, dict(), ""),
    ((3, 2, 97, 89), torch.float16, torch.uint8, dict(ignore_index=255, per_image=True), ""),
    ((2, 3, 33, 35, 7), torch.bfloat16, torch.int16, dict(ignore_index=-1, focal_gamma=0.5, alpha=True), ""),
    ((8, 21, 129, 127), torch.float32, torch.int64, dict(ignore_index=255, weighted=True, per_image=True),
     "channels_last"),
    ((4, 21, 130, 66), torch.bfloat16, torch.uint8, dict(focal_gamma=2.0, alpha=True), "strided_labels"),
    ((4, 21, 250, 250), torch.float16, torch.int64, dict(focal_gamma=0.0, alpha=True), ""),
    ((2, 150, 128, 100), torch.bfloat16, torch.int64, dict(ignore_index=255, weighted=True), ""),
    ((2, 150, 64, 48), torch.float32, torch.uint8, dict(focal_gamma=2.0, alpha=True, per_image=True),
     "channels_last"),
    ((2, 256, 33, 31), torch.float16, torch.int16, dict(ignore_index=-1), "transposed_labels"),
    ((1, 256, 40, 40), torch.float32, torch.int64, dict(focal_gamma=0.5), ""),
]


@pytest.mark.parametrize("shape, dtype, label_dtype, options, layout", MATRIX,
                         ids=[f"C{m[0][1]}-{str(m[1])[6:]}-{str(m[2])[6:]}-{m[4] or 'contiguous'}" for m in MATRIX])
def test_multiclass_matrix(shape, dtype, label_dtype, options, layout):
    shape = size(shape)
    logits = X.random_logits(shape, dtype, DEVICE, seed=SEED + 4, channels_last=layout == "channels_last")
    label_shape = (shape[0], *shape[2:])
    if layout == "strided_labels":
        wide = X.random_labels((*label_shape[:-1], 2 * label_shape[-1]), shape[1], label_dtype, DEVICE,
                               seed=SEED + 5, ignore_index=options.get("ignore_index"))
        labels = wide[..., ::2]
    elif layout == "transposed_labels":
        labels = X.random_labels((label_shape[0], label_shape[2], label_shape[1]), shape[1], label_dtype, DEVICE,
                                 seed=SEED + 5, ignore_index=options.get("ignore_index")).transpose(1, 2)
    else:
        labels = X.random_labels(label_shape, shape[1], label_dtype, DEVICE, seed=SEED + 5,
                                 ignore_index=options.get("ignore_index"))
    X.check_multiclass_terms(logits, labels, _kwargs(shape[1], seed=6, **options), seed=SEED + 7)


@pytest.mark.parametrize("name, shape, dtype, options", [
    ("dice_ce", (4, 21, 256, 250), torch.float32, dict(ignore_index=255)),
    ("dice_ce", (2, 150, 96, 80), torch.bfloat16,
     dict(ignore_index=255, per_image=True, include_background=False, skip_absent="drop", log_loss=True)),
    ("dice_focal", (2, 3, 40, 40, 24), torch.float16, dict(per_image=True)),
])
def test_fused_losses(name, shape, dtype, options):
    shape = size(shape)
    logits = X.random_logits(shape, dtype, DEVICE, seed=SEED + 8)
    labels = X.random_labels((shape[0], *shape[2:]), shape[1], torch.uint8, DEVICE, seed=SEED + 9,
                             ignore_index=options.get("ignore_index"))
    X.check_fused_loss(name, logits, labels, **options)


@pytest.mark.parametrize("shape, dtype, target_dtype, ignore_index, per_image, channels_last", [
    ((8, 1, 256, 250), torch.float32, torch.uint8, 255, False, False),
    ((4, 3, 128, 130), torch.bfloat16, torch.float32, None, True, True),
    ((2, 80, 64, 60), torch.float16, torch.int64, -1, True, False),
])
def test_sigmoid(shape, dtype, target_dtype, ignore_index, per_image, channels_last):
    shape = size(shape)
    logits = X.random_logits(shape, dtype, DEVICE, seed=SEED + 10, channels_last=channels_last)
    target = X.random_binary_target(shape, target_dtype, DEVICE, seed=SEED + 11, ignore_index=ignore_index,
                                    channels_last=channels_last)
    X.check_binary_terms(logits, target, ignore_index, per_image, focal_gamma=2.0, focal_alpha=0.25, seed=SEED)
    X.check_fused_binary_loss(logits, target, ignore_index=ignore_index, per_image=per_image)


@pytest.mark.parametrize("num_classes, background, label_dtype", [
    (1, None, torch.uint8), (2, None, torch.int64), (21, None, torch.uint8), (21, 0.9, torch.int64),
    (64, 0.9, torch.int16), (150, 0.9, torch.int64), (256, None, torch.int64), (1024, 0.9, torch.int32),
])
def test_confusion_is_exact(num_classes, background, label_dtype):
    spatial = size((1, 1, 256, 256) if num_classes <= 256 else (1, 1, 64, 64))[2:]
    scores = X.random_logits((4, num_classes, *spatial), torch.float32, DEVICE, seed=SEED + 12).detach()
    ignore = -1 if label_dtype == torch.int16 else 255
    labels = X.random_labels((4, *spatial), num_classes, label_dtype, DEVICE, seed=SEED + 13, ignore_index=ignore,
                             ignored=0.05, background=background)
    X.check_confusion(scores, labels, num_classes, ignore)
    predicted = scores.argmax(1)
    if background:  # a model that mostly predicts the background where it is: same-address contention
        predicted = torch.where(labels.long() == 0, 0, predicted)
    X.check_confusion(predicted.to(label_dtype), labels, num_classes, ignore)


def test_benchmarked_confusion_at_full_size():
    scores = X.random_logits(BENCHMARKED, torch.float32, DEVICE, seed=SEED + 14).detach()
    labels = X.random_labels((BENCHMARKED[0], *BENCHMARKED[2:]), 21, torch.int64, DEVICE, seed=SEED + 15)
    X.check_confusion(scores, labels, 21)


@needs_gpu
def test_past_two_to_the_31_elements():
    """1 x 3 x (2^30 + 3) bf16 logits (3.2e9 elements, 6.4 GB): int64 offsets inside an image."""
    check_past_int32(2**30 + 3, DEVICE, 2**27)


def check_past_int32(s, device, chunk_size):
    """Terms and gradient of (1, 3, s) bf16 logits against a float64 reference summed chunk by
    chunk (the statistics are sums over pixels; the gradient is pixelwise given the global
    upstream gradients); gs and count exact."""
    generator = torch.Generator(device=device).manual_seed(SEED + 16)
    logits = (torch.randn((1, 3, s), generator=generator, device=device) * 3).to(torch.bfloat16).requires_grad_()
    labels = torch.randint(0, 3, (1, s), generator=generator, device=device, dtype=torch.uint8)
    labels[:, ::7] = 255
    upstream = {"tp": torch.tensor([0.3, -1.2, 0.7], device=device, dtype=torch.float64),
                "ps": torch.tensor([1.1, 0.4, -0.5], device=device, dtype=torch.float64),
                "ce_sum": torch.tensor(0.9, device=device, dtype=torch.float64)}
    kwargs = dict(ignore_index=255, want_ce=True)
    fused = X.run_multiclass_terms(logits, labels, kwargs, upstream)
    totals = {name: 0.0 for name in ("tp", "ps", "ce_sum")}
    grad_error = grad_norm = 0.0
    for start in range(0, s, chunk_size):
        chunk = slice(start, min(start + chunk_size, s))
        x = logits.detach()[:, :, chunk].double().requires_grad_()
        ref = _stats.multiclass_terms_reference(x, labels[:, chunk], **kwargs)
        values = {"tp": ref.stats.tp, "ps": ref.stats.ps, "ce_sum": ref.ce_sum}
        for name in totals:
            totals[name] = totals[name] + values[name].detach()
        grad, = torch.autograd.grad(sum((values[k] * upstream[k]).sum() for k in values), x)
        grad_error += float(torch.linalg.vector_norm(fused["grad"][:, :, chunk].double() - grad)) ** 2
        grad_norm += float(torch.linalg.vector_norm(grad)) ** 2
    for name, total in totals.items():
        assert X.relative_error(fused[name], total) <= X.VALUE_RTOL, name
    gs, count = X.exact_counts(labels, 3, 255, False)
    assert torch.equal(fused["gs"], gs.float()) and torch.equal(fused["count"], count.float())
    assert (grad_error / grad_norm) ** 0.5 <= X.GRAD_RTOL[torch.bfloat16]


@pytest.mark.skipif(not DRY_RUN, reason="the CPU dry run's stand-in for the case past 2^31 elements")
def test_past_int32_check_itself(monkeypatch):
    monkeypatch.setattr(_launch, "needs_int64", lambda *spans: True)
    check_past_int32(5000, DEVICE, 1024)


@needs_gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_a_tensor_on_a_non_current_gpu():
    logits = X.random_logits((2, 5, 64, 64), torch.float32, "cuda:1", seed=SEED + 17)
    labels = X.random_labels((2, 64, 64), 5, torch.int64, "cuda:1", seed=SEED + 18)
    with torch.cuda.device(0):
        on_other = kernels.fused_multiclass_terms(logits, labels, want_ce=True)
    with torch.cuda.device(1):
        on_current = kernels.fused_multiclass_terms(logits, labels, want_ce=True)
    assert on_other.stats.tp.device == logits.device
    assert torch.equal(on_other.stats.tp, on_current.stats.tp) and torch.equal(on_other.ce_sum, on_current.ce_sum)


@needs_gpu
def test_model_with_dice_ce_loss_compiles_without_graph_breaks_in_the_loss():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 5, 1)).cuda()
    loss_fn = segfuse.DiceCELoss(ignore_index=255, validate_args=False)
    images = torch.randn(2, 3, 64, 64, device=DEVICE)
    labels = torch.randint(0, 5, (2, 64, 64), device=DEVICE)
    labels[:, :4] = 255
    explanation = torch._dynamo.explain(loss_fn)(model(images), labels)
    assert explanation.graph_break_count == 0, explanation.break_reasons

    @torch.compile(fullgraph=True)
    def step(images, labels):
        return loss_fn(model(images), labels)

    loss = step(images, labels)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    eager = loss_fn(model(images), labels)
    eager.backward()
    torch.testing.assert_close(loss, eager, atol=1e-5, rtol=1e-5)
    for grad, expected in zip(grads, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-4)

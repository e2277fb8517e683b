"""The compiled kernels on a CUDA device at full size against the torch path, and
torch.compile of a model whose loss is DiceCELoss. Skipped without CUDA."""

import pytest
import torch

import segfuse
from segfuse import _stats, kernels
from tests.kernels.helpers import DTYPES, assert_grads, assert_values, make_labels, upstream_like, weighted_sum

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not kernels.triton_available(), reason="needs triton"),
]


def _cuda_logits(shape, dtype, seed=0):
    generator = torch.Generator(device="cuda").manual_seed(seed)
    return (torch.randn(shape, generator=generator, device="cuda") * 3).to(dtype).requires_grad_()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape, label_dtype, ignore_index, per_image, focal_gamma", [
    ((16, 21, 512, 512), torch.int64, 255, False, None),
    ((2, 4, 128, 128, 128), torch.uint8, 255, True, 2.0),
    ((4, 150, 257, 255), torch.int16, -1, False, 0.5),
    ((3, 1, 1001), torch.int32, None, True, 0.0),
])
def test_multiclass_full_size(shape, label_dtype, ignore_index, per_image, focal_gamma, dtype):
    logits = _cuda_logits(shape, dtype)
    labels = make_labels((shape[0], *shape[2:]), shape[1], label_dtype, ignore_index, ignored_fraction=0.1).cuda()
    weight = torch.rand(shape[1], device="cuda") + 0.1
    kwargs = dict(ignore_index=ignore_index, per_image=per_image, want_ce=True, ce_weight=weight,
                  focal_gamma=focal_gamma, focal_alpha=None if focal_gamma is None else torch.rand(shape[1], device="cuda"))
    assert kernels.fused_multiclass_available(logits)
    fused = kernels.fused_multiclass_terms(logits, labels, **kwargs)
    reference = _stats.multiclass_terms_reference(logits, labels, **kwargs)
    names = ["tp", "ps", "ce_sum"] + ([] if focal_gamma is None else ["focal_sum"])

    def pick(terms):
        return {"tp": terms.stats.tp, "ps": terms.stats.ps, "gs": terms.stats.gs, "ce_sum": terms.ce_sum,
                "ce_weight": terms.ce_weight, "focal_sum": terms.focal_sum, "count": terms.count}

    actual, expected = pick(fused), pick(reference)
    for name in ("tp", "ps", "gs", "ce_sum", "ce_weight", "count") + (() if focal_gamma is None else ("focal_sum",)):
        assert_values(actual[name], expected[name], dtype, name)
    upstream = [upstream_like(expected[name], i).cuda() for i, name in enumerate(names)]
    grad, = torch.autograd.grad(weighted_sum([actual[n] for n in names], upstream), logits)
    grad_reference, = torch.autograd.grad(weighted_sum([expected[n] for n in names], upstream), logits)
    assert_grads(grad, grad_reference, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sigmoid_full_size(dtype):
    logits = _cuda_logits((8, 3, 256, 256), dtype)
    target = (torch.rand(8, 3, 256, 256, device="cuda") > 0.5).to(torch.uint8)
    target[:, :, :10] = 255
    fused = kernels.fused_binary_terms(logits, target, ignore_index=255, per_image=True, want_bce=True)
    valid = target != 255
    clean = torch.where(valid, target.float(), 0)
    x = logits.float()
    reference = _stats.dense_statistics(torch.sigmoid(x), clean, valid=valid, per_image=True)
    bce = (torch.nn.functional.binary_cross_entropy_with_logits(x, clean, reduction="none") * valid).flatten(1).sum(1)
    for actual, expected, name in [(fused.stats.tp, reference.tp, "tp"), (fused.stats.ps, reference.ps, "ps"),
                                   (fused.stats.gs, reference.gs, "gs"), (fused.bce_sum, bce, "bce")]:
        assert_values(actual, expected, dtype, name)
    upstream = [upstream_like(v, i).cuda() for i, v in enumerate((reference.tp, reference.ps, bce))]
    grad, = torch.autograd.grad(weighted_sum([fused.stats.tp, fused.stats.ps, fused.bce_sum], upstream), logits)
    grad_reference, = torch.autograd.grad(weighted_sum([reference.tp, reference.ps, bce], upstream), logits)
    assert_grads(grad, grad_reference, dtype)


@pytest.mark.parametrize("num_classes", [2, 21, 150])
def test_confusion_full_size(num_classes):
    scores = torch.randn(16, num_classes, 512, 512 if num_classes < 150 else 128, device="cuda")
    target = torch.randint(0, num_classes, (scores.shape[0], *scores.shape[2:]), device="cuda", dtype=torch.uint8)
    target[:, :7] = 255
    counts = kernels.fused_confusion_matrix(scores, target, num_classes, 255)
    keep = target != 255
    expected = torch.bincount(target[keep].long() * num_classes + scores.argmax(1)[keep],
                              minlength=num_classes**2).view(num_classes, num_classes)
    assert torch.equal(counts, expected)


def test_model_with_dice_ce_loss_compiles_without_graph_breaks_in_the_loss():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 5, 1)).cuda()
    loss_fn = segfuse.DiceCELoss(ignore_index=255, validate_args=False)
    images = torch.randn(2, 3, 64, 64, device="cuda")
    labels = torch.randint(0, 5, (2, 64, 64), device="cuda")
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

"""torch.compile(fullgraph=True) of every loss with validate_args=False (issue 11).

Before the fix, CrossEntropyLoss and DiceCELoss failed with "data-dependent expression"
(a bincount and a per-call value check) and DiceCELoss(validate_args=False) with
"duplicate tensor input" (one tensor passed twice to the autograd Function).

Three levels, cheapest first: every loss traces into one graph (dynamo, no graph break);
every loss through AOT autograd in one graph equals eager in value and gradient; and the
inductor backend compiles one loss of each code path (softmax statistics with CE, torch's
cross-entropy, the composed focal path, the sigmoid path, the sort of Lovasz, generalized
Dice) to code whose value and gradient equal eager. Each loss gets its own inductor
graph: with torch 2.13's CPU inductor, fusing about eleven of these losses into one graph
miscompiles some gradients (correct with max_fusion_size=1, with aot_eager and with
aot_eager_decomp_partition), a fusion bug outside segfuse.
"""

import pytest
import torch

import segfuse

OPTIONS = dict(ignore_index=255, validate_args=False)


def _losses():
    return {
        "CrossEntropyLoss": segfuse.CrossEntropyLoss(weight=[1.0, 2.0, 0.5, 1.0], **OPTIONS),
        "DiceLoss": segfuse.DiceLoss(**OPTIONS),
        "DiceLoss_options": segfuse.DiceLoss(skip_absent=True, label_smoothing=0.1, smooth_nr=0.0, **OPTIONS),
        "DiceLoss_pooled": segfuse.DiceLoss(pooling="class", per_image=True, **OPTIONS),
        "FBetaLoss": segfuse.FBetaLoss(beta=2.0, class_weights=[1.0, 2.0, 1.0, 1.0], **OPTIONS),
        "TverskyLoss": segfuse.TverskyLoss(0.3, 0.7, 0.75, **OPTIONS),
        "JaccardLoss": segfuse.JaccardLoss(squared=True, **OPTIONS),
        "GeneralizedDiceLoss": segfuse.GeneralizedDiceLoss(**OPTIONS),
        "FocalLoss": segfuse.FocalLoss(alpha=[0.1, 0.2, 0.3, 0.4], **OPTIONS),
        "LovaszLoss": segfuse.LovaszLoss(**OPTIONS),
        "DiceCELoss": segfuse.DiceCELoss(class_weights=[1.0, 2.0, 0.5, 1.0], **OPTIONS),
        "DiceCELoss_unweighted": segfuse.DiceCELoss(**OPTIONS),
        "DiceFocalLoss": segfuse.DiceFocalLoss(**OPTIONS),
        "DiceLoss_multilabel": segfuse.DiceLoss(mode="multilabel", **OPTIONS),
        "DiceCELoss_multilabel": segfuse.DiceCELoss(mode="multilabel", **OPTIONS),
        "FocalLoss_binary": segfuse.FocalLoss(mode="binary", alpha=0.25, **OPTIONS),
        "BCEWithLogitsLoss": segfuse.BCEWithLogitsLoss(**OPTIONS),
        "WeightedSum": sum([segfuse.CrossEntropyLoss(**OPTIONS), 0.5 * segfuse.DiceLoss(**OPTIONS)]),
    }


SIGMOID = {"DiceLoss_multilabel", "DiceCELoss_multilabel", "FocalLoss_binary", "BCEWithLogitsLoss"}
INDUCTOR = ["DiceCELoss", "CrossEntropyLoss", "DiceFocalLoss", "DiceLoss_multilabel", "LovaszLoss",
            "GeneralizedDiceLoss"]


def _inputs(name):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 5, generator=generator).requires_grad_(True)
    if name == "FocalLoss_binary":
        logits = logits[:, :1].detach().requires_grad_(True)
    if name in SIGMOID:
        target = torch.randint(0, 2, logits.shape, generator=generator, dtype=torch.uint8)
    else:
        target = torch.randint(0, 4, (2, 6, 5), generator=generator)
    target[0, 0] = 255
    return logits, target


def _value_and_grad(fn, logits, target):
    value = fn(logits, target)
    grad, = torch.autograd.grad(value * 1.7, logits)
    return value, grad


@pytest.mark.parametrize("name", sorted(_losses()))
def test_every_loss_traces_into_one_graph(name):
    torch._dynamo.reset()
    loss = _losses()[name]
    logits, target = _inputs(name)
    explanation = torch._dynamo.explain(loss)(logits, target)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_every_loss_through_aot_autograd_equals_eager():
    torch._dynamo.reset()
    losses = _losses()
    for name, loss in losses.items():
        logits, target = _inputs(name)
        compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
        value, grad = _value_and_grad(compiled, logits, target)
        expected, expected_grad = _value_and_grad(loss, logits, target)
        torch.testing.assert_close(value, expected, msg=name)
        torch.testing.assert_close(grad, expected_grad, msg=name)


@pytest.mark.parametrize("name", INDUCTOR)
def test_inductor_compiles_each_code_path(name):
    torch._dynamo.reset()
    loss = _losses()[name]
    logits, target = _inputs(name)
    compiled = torch.compile(loss, backend="inductor", fullgraph=True)
    value, grad = _value_and_grad(compiled, logits, target)
    expected, expected_grad = _value_and_grad(loss, logits, target)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)

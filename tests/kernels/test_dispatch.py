"""Dispatch (segfuse.kernels): when the kernels serve a call, and the whole loss pipeline
through them (interpreter) against SEGFUSE_DISABLE_KERNELS=1, also under torch.compile."""

import pytest
import torch

import segfuse
from segfuse import functional as SF
from segfuse import kernels
from tests.kernels.helpers import assert_grads, make_labels, make_logits


def test_cpu_tensors_take_the_torch_path_unless_forced(monkeypatch):
    monkeypatch.delenv("SEGFUSE_FORCE_KERNELS", raising=False)
    logits = torch.randn(2, 3, 4, 4)
    assert not kernels.fused_multiclass_available(logits)
    assert not kernels.fused_binary_available(logits)
    assert not kernels.fused_confusion_available(logits, torch.zeros(2, 4, 4, dtype=torch.long), 3)


def test_forcing_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("SEGFUSE_FORCE_KERNELS", "1")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not kernels.fused_multiclass_available(torch.randn(2, 3, 4, 4))


@pytest.mark.usefixtures("interpreted_kernels")
def test_unsupported_options_and_inputs_take_the_torch_path(monkeypatch):
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    assert kernels.fused_multiclass_available(logits)
    assert not kernels.fused_multiclass_available(logits, squared=True)
    assert not kernels.fused_multiclass_available(logits, from_logits=False)
    assert not kernels.fused_multiclass_available(logits.double())
    assert not kernels.fused_multiclass_available(torch.randn(1, kernels.MAX_FUSED_CLASSES + 1, 2))
    assert not kernels.fused_multiclass_available(torch.randn(0, 3, 4))
    assert not kernels.fused_binary_available(logits, squared=True)
    assert not kernels.fused_binary_available(logits, from_logits=False)
    assert not kernels.fused_binary_available(logits, torch.zeros(2, 3, 4, 5))
    assert kernels.fused_confusion_available(logits, labels, 3)
    assert kernels.fused_confusion_available(labels, labels, 3)
    assert not kernels.fused_confusion_available(logits, labels, 4)
    assert not kernels.fused_confusion_available(labels.float(), labels, 3)
    monkeypatch.setenv("SEGFUSE_DISABLE_KERNELS", "1")
    assert not kernels.fused_multiclass_available(logits)
    assert not kernels.fused_binary_available(logits)
    assert not kernels.fused_confusion_available(logits, labels, 3)


def test_available_does_not_import_the_kernel_modules():
    """The checks are cheap (no Triton import, no kernel definition, no device work)."""
    import os
    import subprocess
    import sys

    code = ("import sys, torch, segfuse.kernels as k; x = torch.randn(2, 3, 4);"
            "assert k.fused_multiclass_available(x) and k.fused_binary_available(x);"
            "assert k.fused_confusion_available(x, torch.zeros(2, 4, dtype=torch.long), 3);"
            "assert not [m for m in sys.modules if m.startswith(('segfuse.kernels.multiclass', 'triton'))]")
    env = dict(os.environ, SEGFUSE_FORCE_KERNELS="1", TRITON_INTERPRET="1", SEGFUSE_DISABLE_KERNELS="0")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


LOSS_CASES = {
    "dice_ce": lambda x, y: SF.dice_ce_loss(x, y, ignore_index=255, class_weights=[0.5, 1.0, 2.0, 1.5, 1.0]),
    "dice_ce_per_image": lambda x, y: SF.dice_ce_loss(x, y, 0.7, 1.3, ignore_index=255, per_image=True,
                                                      log_loss=True),
    "dice_focal": lambda x, y: SF.dice_focal_loss(x, y, gamma=2.0, alpha=[0.1, 0.2, 0.3, 0.2, 0.2],
                                                  ignore_index=255),
    "focal_gamma_half": lambda x, y: SF.focal_loss(x, y, gamma=0.5, ignore_index=255),
    "dice_skip_absent": lambda x, y: SF.dice_loss(x, y, ignore_index=255, skip_absent=True),
    "cross_entropy": lambda x, y: SF.cross_entropy(x, y, ignore_index=255),
}


def _assert_kernels_match_torch_path(loss_fn, logits, target, dtype, torch_path):
    """Value and gradient (upstream 3.0) through the kernels equal the torch path's."""
    fused = loss_fn(logits, target)
    grad_fused, = torch.autograd.grad(fused * 3.0, logits)
    with torch_path():
        reference = loss_fn(logits, target)
        grad_reference, = torch.autograd.grad(reference * 3.0, logits)
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
    assert_grads(grad_fused, grad_reference, dtype)


SIGMOID_CASES = {
    "dice_binary": lambda x, t: SF.dice_loss(x, t, mode="multilabel", ignore_index=255, per_image=True),
    "dice_ce_multilabel": lambda x, t: SF.dice_ce_loss(x, t, 0.6, 1.4, mode="multilabel", ignore_index=255),
    "dice_focal_multilabel": lambda x, t: SF.dice_focal_loss(x, t, mode="multilabel", gamma=1.5, alpha=0.25,
                                                             ignore_index=255),
}


@pytest.mark.usefixtures("interpreted_kernels")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(SIGMOID_CASES))
def test_sigmoid_losses_through_kernels_match_torch_path(name, dtype, torch_path):
    loss_fn = SIGMOID_CASES[name]
    logits = make_logits((2, 3, 11, 9), dtype)
    generator = torch.Generator().manual_seed(5)
    target = torch.randint(0, 2, (2, 3, 11, 9), generator=generator, dtype=torch.uint8)
    target[torch.rand(target.shape, generator=generator) < 0.2] = 255
    _assert_kernels_match_torch_path(loss_fn, logits, target, dtype, torch_path)


@pytest.mark.usefixtures("interpreted_kernels")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(LOSS_CASES))
def test_losses_through_kernels_match_torch_path(name, dtype, torch_path):
    loss_fn = LOSS_CASES[name]
    logits = make_logits((2, 5, 11, 9), dtype)
    labels = make_labels((2, 11, 9), 5, torch.uint8, ignore_index=255)
    _assert_kernels_match_torch_path(loss_fn, logits, labels, dtype, torch_path)


@pytest.mark.usefixtures("interpreted_kernels")
def test_dice_ce_module_compiles_without_graph_breaks(torch_path):
    loss = segfuse.DiceCELoss(ignore_index=255, validate_args=False)
    logits = make_logits((2, 4, 9, 7), torch.float32)
    labels = make_labels((2, 9, 7), 4, torch.int64, ignore_index=255)
    explanation = torch._dynamo.explain(loss)(logits, labels)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    value = compiled(logits, labels)
    grad, = torch.autograd.grad(value * 0.5, logits)
    with torch_path():
        reference = loss(logits, labels)
        grad_reference, = torch.autograd.grad(reference * 0.5, logits)
    torch.testing.assert_close(value, reference, atol=1e-5, rtol=1e-5)
    assert_grads(grad, grad_reference, torch.float32)


@pytest.mark.usefixtures("interpreted_kernels")
def test_custom_ops_pass_opcheck():
    from segfuse.kernels import confusion, multiclass, sigmoid

    logits = make_logits((2, 3, 5, 4), torch.float32)
    labels = make_labels((2, 5, 4), 3, torch.uint8, ignore_index=255)
    weight, alpha = torch.rand(3), torch.rand(3)
    torch.library.opcheck(multiclass.multiclass_forward, (logits, labels, weight, alpha, 255, True, True, True, 2.0),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    target = torch.rand(2, 3, 5, 4)
    torch.library.opcheck(sigmoid.sigmoid_forward, (logits, target, None, False, True, True, 2.0, 0.25),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    torch.library.opcheck(confusion.confusion_matrix, (logits.detach(), labels, 3, 255),
                          test_utils=("test_schema", "test_faketensor"))


def test_losses_choose_no_kernel_themselves():
    """One dispatch point: only segfuse._stats.loss_terms chooses between kernels and torch."""
    import inspect

    from segfuse import _stats
    from segfuse.losses import _common, compound, cross_entropy, focal, lovasz, overlap

    for module in (_common, compound, cross_entropy, focal, lovasz, overlap):
        source = inspect.getsource(module)
        assert "kernels" not in source, f"{module.__name__} refers to segfuse.kernels"
    dispatch = inspect.getsource(_stats.loss_terms) + inspect.getsource(_stats._class_map_terms) + \
        inspect.getsource(_stats._sigmoid_terms)
    for name in ("fused_multiclass_available", "fused_multiclass_terms", "fused_binary_available",
                 "fused_binary_terms"):
        assert name in dispatch


def _count_kernel_calls(monkeypatch):
    calls = {"multiclass": 0, "binary": 0}
    for kind, name in (("multiclass", "fused_multiclass_terms"), ("binary", "fused_binary_terms")):
        original = getattr(kernels, name)

        def counted(*args, _original=original, _kind=kind, **kwargs):
            calls[_kind] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(kernels, name, counted)
    return calls


DISPATCH_CASES = {
    # name: (loss, target kind, expected kernel calls (multiclass, binary))
    "dice_ce_one_pass": (lambda x, t: SF.dice_ce_loss(x, t, ignore_index=255, label_smoothing=0.0), "labels", (1, 0)),
    "dice_label_smoothing_on_kernel_sums": (lambda x, t: SF.dice_loss(x, t, ignore_index=255, label_smoothing=0.2,
                                                                       per_image=True), "labels", (1, 0)),
    "jaccard_label_smoothing_batch": (lambda x, t: SF.jaccard_loss(x, t, ignore_index=255, label_smoothing=0.3),
                                      "labels", (1, 0)),
    "ce_label_smoothing_torch": (lambda x, t: SF.dice_ce_loss(x, t, ignore_index=255, label_smoothing=0.1),
                                 "labels", (0, 0)),
    "soft_label_smoothing_torch": (lambda x, t: SF.jaccard_loss(x, t, ignore_index=255, label_smoothing=0.1,
                                                                soft_label=True), "labels", (0, 0)),
    "focal": (lambda x, t: SF.focal_loss(x, t, gamma=1.5, ignore_index=255), "labels", (1, 0)),
    "cross_entropy": (lambda x, t: SF.cross_entropy(x, t, ignore_index=255), "labels", (1, 0)),
    "dice_ce_multilabel": (lambda x, t: SF.dice_ce_loss(x, t, mode="multilabel", ignore_index=255), "dense", (0, 1)),
    "dice_focal_multilabel": (lambda x, t: SF.dice_focal_loss(x, t, mode="multilabel", alpha=0.25, ignore_index=255),
                              "dense", (0, 1)),
    "pos_weight_torch": (lambda x, t: SF.dice_ce_loss(x, t, mode="multilabel", ignore_index=255,
                                                      pos_weight=[1.0, 2.0, 0.5]), "dense", (0, 0)),
    "multilabel_smoothing_torch": (lambda x, t: SF.dice_loss(x, t, mode="multilabel", ignore_index=255,
                                                             label_smoothing=0.1), "dense", (0, 0)),
}


@pytest.mark.usefixtures("interpreted_kernels")
@pytest.mark.parametrize("name", list(DISPATCH_CASES))
def test_dispatch_point_serves_each_request_and_matches_the_torch_path(name, monkeypatch, torch_path):
    loss_fn, kind, expected_calls = DISPATCH_CASES[name]
    if kind == "labels":
        logits = make_logits((2, 3, 7, 6), torch.float32)
        target = make_labels((2, 7, 6), 3, torch.uint8, ignore_index=255)
    else:
        logits = make_logits((2, 3, 7, 6), torch.float32)
        generator = torch.Generator().manual_seed(2)
        target = torch.randint(0, 2, (2, 3, 7, 6), generator=generator, dtype=torch.uint8)
        target[torch.rand(target.shape, generator=generator) < 0.2] = 255
    calls = _count_kernel_calls(monkeypatch)
    _assert_kernels_match_torch_path(loss_fn, logits, target, torch.float32, torch_path)
    assert (calls["multiclass"], calls["binary"]) == expected_calls

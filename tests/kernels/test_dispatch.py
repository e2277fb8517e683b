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


def _assert_kernels_match_torch_path(loss_fn, logits, target, dtype, torch_path):
    """Value and gradient (upstream 3.0, or 0.5 to 3 over the entries of a non-scalar loss)
    through the kernels equal the torch path's."""
    fused = loss_fn(logits, target)
    upstream = torch.linspace(0.5, 3.0, fused.numel()).view(fused.shape) if fused.dim() else 3.0
    grad_fused, = torch.autograd.grad((fused * upstream).sum(), logits)
    with torch_path():
        reference = loss_fn(logits, target)
        grad_reference, = torch.autograd.grad((reference * upstream).sum(), logits)
    assert fused.dtype == reference.dtype
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
    assert_grads(grad_fused, grad_reference, dtype)


def _count_kernel_calls(monkeypatch):
    """Calls of each fused entry point: the per-pass terms and the whole losses."""
    names = {"multiclass terms": "fused_multiclass_terms", "multiclass loss": "fused_multiclass_loss",
             "binary terms": "fused_binary_terms", "binary loss": "fused_binary_loss"}
    calls = dict.fromkeys(names, 0)
    for kind, name in names.items():
        original = getattr(kernels, name)

        def counted(*args, _original=original, _kind=kind, **kwargs):
            calls[_kind] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(kernels, name, counted)
    return calls


def _class_map_inputs(shape, dtype, singleton=False, ignore_index=255):
    logits = make_logits(shape, dtype)
    labels = make_labels((shape[0], *shape[2:]), shape[1], torch.uint8, ignore_index=ignore_index)
    labels[1] = torch.where(labels[1] == 1, 0, labels[1])  # class 1 absent from image 1
    labels = torch.where(labels == shape[1] - 1, 0, labels)  # the last class absent from the batch
    return logits, labels.unsqueeze(1) if singleton else labels


def _dense_inputs(shape, dtype, soft=False):
    logits = make_logits(shape, dtype)
    generator = torch.Generator().manual_seed(2)
    if soft:
        return logits, torch.rand(shape, generator=generator)
    target = torch.randint(0, 2, shape, generator=generator, dtype=torch.uint8)
    target[torch.rand(shape, generator=generator) < 0.2] = 255
    return logits, target


WEIGHTS5 = [0.5, 1.0, 2.0, 0.1, 1.5]
# Every loss configuration the fused losses serve: name -> (loss, inputs, entry point).
WIRED_CASES = {
    "DiceCELoss_weighted": (segfuse.DiceCELoss(ignore_index=255, class_weights=WEIGHTS5), "map", "multiclass loss"),
    "dice_ce_per_image_log_drop": (lambda x, y: SF.dice_ce_loss(
        x, y, 0.7, 1.3, ignore_index=255, per_image=True, log_loss=True, include_background=False,
        skip_absent="drop"), "map", "multiclass loss"),
    "dice_ce_monai_weights": (lambda x, y: SF.dice_ce_loss(
        x, y, ignore_index=255, class_weights=WEIGHTS5, normalize_weights=False, smooth_nr=0.0, smooth_dr=1e-6,
        per_image=True), "map", "multiclass loss"),
    "dice_ce_singleton_map_1d": (lambda x, y: SF.dice_ce_loss(x, y, ignore_index=255), "map1d", "multiclass loss"),
    "DiceFocalLoss_alpha": (segfuse.DiceFocalLoss(gamma=2.0, alpha=[0.1, 0.2, 0.3, 0.2, 0.2], ignore_index=255,
                                                  skip_absent=True), "map", "multiclass loss"),
    "dice_focal_gamma_half_per_image": (lambda x, y: SF.dice_focal_loss(
        x, y, 0.4, 2.0, gamma=0.5, alpha=0.25, ignore_index=255, per_image=True, class_weights=WEIGHTS5),
        "map", "multiclass loss"),
    "DiceLoss_zero": (segfuse.DiceLoss(ignore_index=255, skip_absent="zero"), "map", "multiclass loss"),
    "dice_soft_label_unsmoothed": (lambda x, y: SF.dice_loss(x, y, ignore_index=255, soft_label=True),
                                   "map", "multiclass loss"),
    "FBetaLoss_weighted": (segfuse.FBetaLoss(beta=2.0, ignore_index=255, class_weights=WEIGHTS5), "map",
                           "multiclass loss"),
    "TverskyLoss_focal_per_image": (segfuse.TverskyLoss(0.3, 0.7, 0.75, ignore_index=255, per_image=True), "map",
                                    "multiclass loss"),
    "tversky_gamma2_log": (lambda x, y: SF.tversky_loss(x, y, 0.6, 0.4, gamma=2.0, log_loss=True,
                                                        ignore_index=255), "map", "multiclass loss"),
    "JaccardLoss_no_background": (segfuse.JaccardLoss(ignore_index=255, smooth=0.0, include_background=False),
                                  "map", "multiclass loss"),
    "CrossEntropyLoss_weighted": (segfuse.CrossEntropyLoss(weight=WEIGHTS5, ignore_index=255), "map",
                                  "multiclass loss"),
    "cross_entropy_3d": (lambda x, y: SF.cross_entropy(x, y.long()), "map3d", "multiclass loss"),
    "FocalLoss_alpha": (segfuse.FocalLoss(alpha=[0.1, 0.2, 0.3, 0.2, 0.2], ignore_index=255), "map",
                        "multiclass loss"),
    "focal_gamma0_alpha": (lambda x, y: SF.focal_loss(x, y, gamma=0.0, alpha=0.3, ignore_index=255), "map",
                           "multiclass loss"),
    "dice_multilabel_per_image": (lambda x, t: SF.dice_loss(x, t, mode="multilabel", ignore_index=255,
                                                            per_image=True), "dense", "binary loss"),
    "dice_binary": (lambda x, t: SF.dice_loss(x, t[:, 0], mode="binary", ignore_index=255,
                                              include_background=False), "binary", "binary loss"),
    "DiceCELoss_multilabel": (segfuse.DiceCELoss(0.6, 1.4, mode="multilabel", ignore_index=255,
                                                 include_background=False), "dense", "binary loss"),
    "DiceFocalLoss_multilabel": (segfuse.DiceFocalLoss(mode="multilabel", gamma=1.5, alpha=0.25, ignore_index=255,
                                                       class_weights=[1.0, 2.0, 0.5]), "dense", "binary loss"),
    "FocalLoss_binary": (segfuse.FocalLoss(mode="binary", alpha=0.25, ignore_index=255), "binary", "binary loss"),
    "focal_multilabel_gamma_half": (lambda x, t: SF.focal_loss(x, t, mode="multilabel", gamma=0.5,
                                                               ignore_index=255), "dense", "binary loss"),
    "BCEWithLogitsLoss": (segfuse.BCEWithLogitsLoss(ignore_index=255), "dense", "binary loss"),
    "tversky_multilabel_soft_target": (lambda x, t: SF.tversky_loss(x, t, 0.3, 0.7, mode="multilabel"), "soft",
                                       "binary loss"),
}
INPUTS = {
    "map": lambda dtype: _class_map_inputs((2, 5, 11, 9), dtype),
    "map1d": lambda dtype: _class_map_inputs((3, 3, 37), dtype, singleton=True),
    "map3d": lambda dtype: _class_map_inputs((2, 4, 5, 6, 7), dtype, ignore_index=None),
    "dense": lambda dtype: _dense_inputs((2, 3, 11, 9), dtype),
    "binary": lambda dtype: _dense_inputs((2, 1, 11, 9), dtype),
    "soft": lambda dtype: _dense_inputs((2, 3, 7, 5), dtype, soft=True),
}


@pytest.mark.usefixtures("interpreted_kernels")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(WIRED_CASES))
def test_every_served_loss_takes_one_fused_call_and_matches_the_torch_path(name, dtype, monkeypatch, torch_path):
    """Each loss the fused losses serve: one call of the fused entry point (no per-pass
    terms), and the value and gradient (upstream 3.0) of SEGFUSE_DISABLE_KERNELS=1."""
    loss_fn, inputs, entry = WIRED_CASES[name]
    logits, target = INPUTS[inputs](dtype)
    calls = _count_kernel_calls(monkeypatch)
    _assert_kernels_match_torch_path(loss_fn, logits, target, dtype, torch_path)
    assert calls == {**dict.fromkeys(calls, 0), entry: 1}, calls


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
    overlap = (2.0, 1.0, 1.0, 1e-5, 1e-5, 1.0, False, True, 1, True)
    torch.library.opcheck(multiclass.multiclass_loss, (logits, labels, weight, weight, alpha, 255, True, True,
                                                       *overlap, 0.7, 1.3, 0.5, 2.0),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    torch.library.opcheck(sigmoid.sigmoid_loss, (logits, target, weight, None, False, True, *overlap, 0.7, 1.3, 0.5,
                                                 2.0, 0.25),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


@pytest.mark.usefixtures("interpreted_kernels")
def test_weights_that_require_grad_take_the_torch_path_and_get_their_gradient(monkeypatch, torch_path):
    """The fused op gives no gradient to weights: a learned term weight or class weight
    keeps the per-pass path (kernel sums), whose autograd reaches it."""
    logits, labels = _class_map_inputs((2, 5, 7, 6), torch.float32)
    dice_weight = torch.tensor(0.6, requires_grad=True)
    class_weights = torch.tensor(WEIGHTS5, requires_grad=True)
    calls = _count_kernel_calls(monkeypatch)
    for loss_fn, weight in ((lambda: SF.dice_ce_loss(logits, labels, dice_weight, ignore_index=255), dice_weight),
                            (lambda: SF.dice_loss(logits, labels, class_weights=class_weights, ignore_index=255),
                             class_weights)):
        grads = torch.autograd.grad(loss_fn() * 3.0, (logits, weight))
        with torch_path():
            expected = torch.autograd.grad(loss_fn() * 3.0, (logits, weight))
        for actual, reference in zip(grads, expected):
            torch.testing.assert_close(actual, reference, atol=1e-6, rtol=1e-5)
        assert grads[1].abs().sum() > 0
    assert calls == {**dict.fromkeys(calls, 0), "multiclass terms": 2}, calls


COMPILED_CASES = {
    "DiceCELoss": (segfuse.DiceCELoss(class_weights=[1.0, 2.0, 0.5, 1.0], ignore_index=255, validate_args=False),
                   "segfuse.multiclass_loss"),
    "DiceFocalLoss": (segfuse.DiceFocalLoss(alpha=0.25, ignore_index=255, per_image=True, validate_args=False),
                      "segfuse.multiclass_loss"),
    "TverskyLoss": (segfuse.TverskyLoss(0.3, 0.7, 0.75, ignore_index=255, skip_absent="drop", validate_args=False),
                    "segfuse.multiclass_loss"),
    "CrossEntropyLoss": (segfuse.CrossEntropyLoss(weight=[1.0, 2.0, 0.5, 1.0], ignore_index=255,
                                                  validate_args=False), "segfuse.multiclass_loss"),
    "FocalLoss": (segfuse.FocalLoss(alpha=[0.1, 0.2, 0.3, 0.4], ignore_index=255, validate_args=False),
                  "segfuse.multiclass_loss"),
    "DiceCELoss_multilabel": (segfuse.DiceCELoss(mode="multilabel", ignore_index=255, validate_args=False),
                              "segfuse.sigmoid_loss"),
    "BCEWithLogitsLoss": (segfuse.BCEWithLogitsLoss(ignore_index=255, validate_args=False), "segfuse.sigmoid_loss"),
}


@pytest.mark.usefixtures("interpreted_kernels")
@pytest.mark.parametrize("name", list(COMPILED_CASES))
def test_served_losses_compile_into_one_graph_around_the_fused_op(name):
    """torch.compile(fullgraph=True) with validate_args=False traces the fused path: the
    custom op is in the one graph, and AOT autograd (fake tensors, the registered
    backward) gives the eager fused value and gradient."""
    torch._dynamo.reset()
    loss, op = COMPILED_CASES[name]
    logits = make_logits((2, 4, 6, 5), torch.float32)
    if "multilabel" in name or "BCE" in name:
        target = torch.randint(0, 2, (2, 4, 6, 5), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
        target[0, 0] = 255
    else:
        target = make_labels((2, 6, 5), 4, torch.int64, ignore_index=255)
    graph_ops = []

    def recording_backend(graph_module, example_inputs):
        graph_ops.extend(str(node.target) for node in graph_module.graph.nodes if node.op == "call_function")
        return torch._dynamo.lookup_backend("aot_eager")(graph_module, example_inputs)

    compiled = torch.compile(loss, backend=recording_backend, fullgraph=True)
    value = compiled(logits, target)
    grad, = torch.autograd.grad(value * 1.7, logits)
    eager = loss(logits, target)
    eager_grad, = torch.autograd.grad(eager * 1.7, logits)
    assert [target for target in graph_ops if target.startswith("segfuse.")] == [op], graph_ops
    torch.testing.assert_close(value, eager, atol=0, rtol=0)
    torch.testing.assert_close(grad, eager_grad, atol=0, rtol=0)


def test_losses_choose_no_kernel_themselves():
    """One dispatch point: only segfuse._stats.loss_terms and fused_loss choose between
    the kernels and torch."""
    import inspect

    from segfuse import _stats
    from segfuse.losses import _common, compound, cross_entropy, focal, lovasz, overlap

    for module in (_common, compound, cross_entropy, focal, lovasz, overlap):
        source = inspect.getsource(module)
        assert "kernels" not in source, f"{module.__name__} refers to segfuse.kernels"
    dispatch = inspect.getsource(_stats.loss_terms) + inspect.getsource(_stats._class_map_terms) + \
        inspect.getsource(_stats._sigmoid_terms) + inspect.getsource(_stats.fused_loss)
    for name in ("fused_multiclass_available", "fused_multiclass_terms", "fused_binary_available",
                 "fused_binary_terms", "fused_multiclass_loss", "fused_binary_loss"):
        assert name in dispatch


DISPATCH_CASES = {
    # name: (loss, target kind, expected calls (multiclass terms, multiclass loss, binary terms, binary loss))
    "dice_ce_whole_loss": (lambda x, t: SF.dice_ce_loss(x, t, ignore_index=255), "labels", (0, 1, 0, 0)),
    "dice_label_smoothing_on_kernel_sums": (lambda x, t: SF.dice_loss(x, t, ignore_index=255, label_smoothing=0.2,
                                                                       per_image=True), "labels", (1, 0, 0, 0)),
    "jaccard_label_smoothing_batch": (lambda x, t: SF.jaccard_loss(x, t, ignore_index=255, label_smoothing=0.3),
                                      "labels", (1, 0, 0, 0)),
    "dice_pooled_classes_on_kernel_sums": (lambda x, t: SF.dice_loss(x, t, ignore_index=255, pooling="class"),
                                           "labels", (1, 0, 0, 0)),
    "dice_ce_pooled_classes_on_kernel_sums": (lambda x, t: SF.dice_ce_loss(x, t, ignore_index=255, pooling="class",
                                                                           per_image=True), "labels", (1, 0, 0, 0)),
    "dice_reduction_none_on_kernel_sums": (lambda x, t: SF.dice_loss(x, t, ignore_index=255, reduction="none"),
                                           "labels", (1, 0, 0, 0)),
    "ce_sum_on_kernel_sums": (lambda x, t: SF.cross_entropy(x, t, ignore_index=255, reduction="sum"), "labels",
                              (1, 0, 0, 0)),
    "focal_sum_on_kernel_sums": (lambda x, t: SF.focal_loss(x, t, gamma=1.5, ignore_index=255, reduction="sum"),
                                 "labels", (1, 0, 0, 0)),
    "ce_label_smoothing_torch": (lambda x, t: SF.dice_ce_loss(x, t, ignore_index=255, label_smoothing=0.1),
                                 "labels", (0, 0, 0, 0)),
    "soft_label_smoothing_torch": (lambda x, t: SF.jaccard_loss(x, t, ignore_index=255, label_smoothing=0.1,
                                                                soft_label=True), "labels", (0, 0, 0, 0)),
    "squared_torch": (lambda x, t: SF.dice_loss(x, t, ignore_index=255, squared=True), "labels", (0, 0, 0, 0)),
    "focal": (lambda x, t: SF.focal_loss(x, t, gamma=1.5, ignore_index=255), "labels", (0, 1, 0, 0)),
    "cross_entropy": (lambda x, t: SF.cross_entropy(x, t, ignore_index=255), "labels", (0, 1, 0, 0)),
    "dice_ce_multilabel": (lambda x, t: SF.dice_ce_loss(x, t, mode="multilabel", ignore_index=255), "dense",
                           (0, 0, 0, 1)),
    "dice_focal_multilabel": (lambda x, t: SF.dice_focal_loss(x, t, mode="multilabel", alpha=0.25, ignore_index=255),
                              "dense", (0, 0, 0, 1)),
    "dice_multilabel_pooled_on_kernel_sums": (lambda x, t: SF.dice_loss(x, t, mode="multilabel", ignore_index=255,
                                                                        pooling="class"), "dense", (0, 0, 1, 0)),
    "pos_weight_torch": (lambda x, t: SF.dice_ce_loss(x, t, mode="multilabel", ignore_index=255,
                                                      pos_weight=[1.0, 2.0, 0.5]), "dense", (0, 0, 0, 0)),
    "bce_pos_weight_torch": (lambda x, t: SF.binary_cross_entropy_with_logits(
        x, t, pos_weight=torch.tensor([1.0, 2.0, 0.5]).view(3, 1, 1), ignore_index=255), "dense", (0, 0, 0, 0)),
    "bce_sum_torch": (lambda x, t: SF.binary_cross_entropy_with_logits(x, t, ignore_index=255, reduction="sum"),
                      "dense", (0, 0, 0, 0)),
    "multilabel_smoothing_torch": (lambda x, t: SF.dice_loss(x, t, mode="multilabel", ignore_index=255,
                                                             label_smoothing=0.1), "dense", (0, 0, 0, 0)),
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
    assert tuple(calls.values()) == expected_calls, calls

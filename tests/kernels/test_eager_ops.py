"""The eager work around the fused losses (issue 9: "DiceCE forward + backward is a
handful of launches"), counted on CPU through Triton's interpreter so that a regression
shows in CI: every tensor op dispatched (a TorchDispatchMode), every Triton launch and
every autograd node of DiceCELoss's forward + backward.

Around the custom ops only ops that launch nothing on a GPU may run (views, empty
allocations, metadata); inside them, the launchers only allocate and take views.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import segfuse
from segfuse.kernels import _launch
from tests.kernels.helpers import make_labels, make_logits

pytestmark = pytest.mark.usefixtures("interpreted_kernels")

# aten ops that launch no device kernel: views, metadata and uninitialised allocations.
NO_LAUNCH = {"aten.new_empty.default", "aten.empty.memory_format", "aten.empty_like.default",
             "aten.select.int", "aten.view.default", "aten._unsafe_view.default", "aten.alias.default",
             "aten.detach.default", "aten.slice.Tensor", "aten.as_strided.default", "aten.unsqueeze.default",
             "aten.squeeze.dim", "aten.expand.default"}


class OpLog(TorchDispatchMode):
    """Records each op dispatched outside custom ops (a custom op is one entry; what runs
    inside it is not dispatched to this mode)."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.fixture
def launches(monkeypatch):
    names = []
    real_launch = _launch.launch

    def counted(kernel, grid, *args, **kwargs):
        names.append(_launch.kernel_name(kernel))
        return real_launch(kernel, grid, *args, **kwargs)

    monkeypatch.setattr(_launch, "launch", counted)
    return names


def _autograd_nodes(loss):
    """The autograd nodes between the loss and the leaf (AccumulateGrad not counted)."""
    nodes, stack, seen = [], [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ != "AccumulateGrad":
            nodes.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return nodes


@pytest.mark.parametrize("options", [dict(), dict(ignore_index=255, per_image=True, class_weights=[1.0, 2.0, 0.5, 1.0])],
                         ids=["default", "ignore_per_image_weighted"])
def test_dice_ce_forward_backward_is_three_launches_and_one_autograd_node(options, launches):
    loss_fn = segfuse.DiceCELoss(validate_args=False, **options)
    logits = make_logits((2, 4, 9, 7), torch.float32)
    labels = make_labels((2, 9, 7), 4, torch.int64, ignore_index=options.get("ignore_index"))
    upstream = torch.tensor(1.7)
    log = OpLog()
    with log:
        loss = loss_fn(logits, labels)
        nodes = _autograd_nodes(loss)
        loss.backward(upstream)
    assert launches == ["_multiclass_forward_kernel", "_multiclass_loss_finish_kernel", "_multiclass_backward_kernel"]
    custom = [op for op in log.ops if op.startswith("segfuse.")]
    assert custom == ["segfuse.multiclass_loss.default", "segfuse.multiclass_loss_backward.default"]
    around = [op for op in log.ops if not op.startswith("segfuse.") and op not in NO_LAUNCH]
    # the class-weight list becomes one tensor (one host-to-device copy on CUDA), shared by both terms
    assert around == (["aten.lift_fresh.default"] if "class_weights" in options else []), log.ops
    assert nodes == ["GeneratedBackwardFor_segfuse_multiclass_loss_defaultBackward"]
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_validation_adds_one_reduction_and_its_sync():
    """validate_args=True (the default) checks the label range: one aminmax and its host sync."""
    loss_fn = segfuse.DiceCELoss()
    logits = make_logits((2, 4, 9, 7), torch.float32)
    labels = make_labels((2, 9, 7), 4, torch.int64)
    log = OpLog()
    with log:
        loss_fn(logits, labels)
    around = [op for op in log.ops if not op.startswith("segfuse.") and op not in NO_LAUNCH]
    assert around == ["aten.aminmax.default", "aten._local_scalar_dense.default", "aten._local_scalar_dense.default"]


def test_the_launchers_only_allocate_and_take_views():
    """Inside the custom ops (launches replaced by a recorder): no op beside the kernels."""
    from segfuse.kernels import multiclass

    logits = make_logits((2, 4, 9, 7), torch.float32).detach()
    labels = make_labels((2, 9, 7), 4, torch.uint8, ignore_index=255)
    overlap = (2.0, 1.0, 1.0, 1e-5, 1e-5, 1.0, False, True, 0, True)
    kernels = []
    log = OpLog()
    with _launch.launch_hook(lambda kernel, grid, args, kwargs: kernels.append(_launch.kernel_name(kernel))), log:
        loss, coef, scale = multiclass.launch_loss_forward(logits, labels, None, None, None, 255, False, overlap,
                                                           1.0, 1.0, 0.0, None)
        multiclass.launch_backward(logits, labels, None, None, coef[0], coef[1], scale[1], None, 255, None,
                                   upstream=loss, stats_scale=scale[0])
    assert kernels == ["_multiclass_forward_kernel", "_multiclass_loss_finish_kernel", "_multiclass_backward_kernel"]
    assert [op for op in log.ops if op not in NO_LAUNCH] == [], log.ops

"""Small input checks shared by every public entry point.

Each helper raises ``ValueError`` or ``TypeError`` with a message that names the
argument, what was expected and what came. They are one-line calls at the top of a
function, before any math. Checks that need the tensor's values (label ranges) sync
with the device, so callers run them only when ``validate_args`` is true.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Iterable, Sequence

import torch

INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MODES = ("multiclass", "binary", "multilabel")
REDUCTIONS = ("mean", "sum", "none")


def check_choice(name: str, value, choices: Iterable) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value != value or (value < 0 if allow_zero else value <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")


def check_in_unit_interval(name: str, value: float, *, closed: bool = True) -> None:
    check_positive(name, value, allow_zero=True)
    if value > 1 or (not closed and value in (0, 1)):
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}")


def check_optional_positive(name: str, value, *, allow_zero: bool = True) -> None:
    """None, or a number as :func:`check_positive` accepts it."""
    if value is not None:
        check_positive(name, value, allow_zero=allow_zero)


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def check_num_classes(num_classes, *, minimum: int = 1) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < minimum:
        raise ValueError(f"num_classes must be >= {minimum}, got {num_classes}")


def check_tensor(name: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def check_float_tensor(name: str, value) -> None:
    check_tensor(name, value)
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (fp16, bf16, fp32, fp64), got {value.dtype}")


def check_label_tensor(name: str, value) -> None:
    check_tensor(name, value)
    if value.dtype not in INTEGER_DTYPES:
        raise TypeError(f"{name} must hold integer class labels (uint8, int8, int16, int32, int64), got {value.dtype}")


def check_min_dims(name: str, value: torch.Tensor, minimum: int, layout: str) -> None:
    if value.dim() < minimum:
        raise ValueError(f"{name} must have shape {layout} with at least {minimum} dims, got {tuple(value.shape)}")


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def representable_ignore_index(labels: torch.Tensor, ignore_index):
    """``ignore_index`` if a value of ``labels``' dtype can equal it, else None.

    Comparing a uint8 tensor with -1 would wrap -1 to 255; an ignore_index outside the
    dtype's range ignores nothing instead.
    """
    if ignore_index is None or labels.dtype == torch.bool:
        return None
    if labels.is_floating_point():
        return ignore_index
    info = torch.iinfo(labels.dtype)
    return ignore_index if info.min <= ignore_index <= info.max else None


def check_labels_in_range(name: str, labels: torch.Tensor, num_classes: int, ignore_index=None) -> None:
    """Every label is in [0, num_classes) or equals ``ignore_index`` (syncs with the device)."""
    if labels.numel() == 0:
        return
    ignore_index = representable_ignore_index(labels, ignore_index)
    checked = labels if ignore_index is None else labels.masked_fill(labels == ignore_index, 0)
    low, high = torch.aminmax(checked)
    if int(low) >= 0 and int(high) < num_classes:
        return
    bad = (checked < 0) | (checked >= num_classes)
    values = torch.unique(checked[bad])[:5].tolist()
    hint = "" if ignore_index is not None else " (set ignore_index to skip a label)"
    raise ValueError(
        f"{name} must hold labels in [0, {num_classes}) or ignore_index={ignore_index}, got {values}{hint}"
    )


def check_binary_values(name: str, target: torch.Tensor, ignore_index=None) -> None:
    """A binary / multilabel target is in [0, 1] (soft) or equals ``ignore_index``."""
    if target.numel() == 0:
        return
    bad = (target < 0) | (target > 1)
    ignore_index = representable_ignore_index(target, ignore_index)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bool(bad.any()):
        values = torch.unique(target[bad])[:5].tolist()
        raise ValueError(f"{name} must hold values in [0, 1] or ignore_index={ignore_index}, got {values}")


def check_class_vector(name: str, value, num_classes: int | None = None, *, values: bool = True) -> None:
    """A per-class sequence or 1-D tensor of non-negative numbers, of length num_classes.

    The values of a tensor are read (a device sync) only with ``values=True`` and outside
    ``torch.compile``; a Python sequence is checked in Python, so compiled losses keep one
    graph.
    """
    if value is None:
        return
    if isinstance(value, torch.Tensor):
        if value.dim() != 1:
            raise ValueError(f"{name} must be 1-D (one value per class), got shape {tuple(value.shape)}")
        count = value.numel()
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if not all(isinstance(v, Real) and not isinstance(v, bool) for v in value):
            raise (ValueError if any(isinstance(v, (Sequence, torch.Tensor)) for v in value) else TypeError)(
                f"{name} must be 1-D (one number per class), got {list(value)!r}")
        count = len(value)
    else:
        raise TypeError(f"{name} must be a sequence or 1-D tensor of per-class numbers, got {type(value).__name__}")
    if num_classes is not None and count != num_classes:
        raise ValueError(f"{name} must have {num_classes} entries (one per class), got {count}")
    if isinstance(value, torch.Tensor):
        if not values or torch.compiler.is_compiling() or value.is_meta:
            return
        numbers = value.detach().to("cpu", torch.float64).tolist()
    else:
        numbers = [float(v) for v in value]
    if any(not math.isfinite(v) or v < 0 for v in numbers):
        raise ValueError(f"{name} must hold finite values >= 0, got {numbers}")

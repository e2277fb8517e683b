"""Streaming semantic segmentation metrics: counts in, scores under a named convention out.

The functional :func:`semantic_metrics` and the stateful :class:`SemanticMetrics` chain
the same steps: counts (``confusion._confusion_update`` for class maps,
``confusion.mask_overlap_counts`` for one-hot masks), per-image statistics
(``scores.per_image_sums``) and scores (``scores.semantic_scores`` /
``scores.per_image_scores``). The class only keeps the counts between updates and sums
them across processes in ``compute()``.

Convention:
    ``convention="segfuse"`` (default) and ``per_image=False`` (default for every
    convention but ``"monai"``) score the dataset-level counts, as mmseg, detectron2 and
    torchmetrics' classification metrics do. ``per_image=True`` scores each item of the
    batch dim N as one image and averages (``per_image_average``: ``"class"``, ``"image"``
    or ``"pooled"``, by default the convention's). ``convention`` and ``zero_division``
    decide which scores are undefined and what they become (see
    :mod:`segfuse.metrics.scores`); ignored pixels follow :mod:`segfuse.metrics.confusion`.
    Targets are class maps ``(N, *S)`` or ``(N, 1, *S)``, or one-hot masks like ``pred``.
    Under torch.distributed, ``compute()`` all-reduces the int64 counts (exact) and the
    per-image sums. The state lives on ``device`` (default: the first input's device).
"""

from __future__ import annotations

from typing import Sequence

import torch

from segfuse._validate import check_num_classes
from segfuse.metrics._distributed import sum_across_processes
from segfuse.metrics.confusion import (
    OverlapCounts,
    _confusion_update,
    is_mask_input,
    mask_overlap_counts,
    overlap_counts,
)
from segfuse.metrics.scores import (
    CLASS_SCORES,
    DEFAULT_CONVENTION,
    IMAGE_SCORES,
    SemanticScores,
    check_score_args,
    per_image_scores,
    per_image_sums,
    resolve_per_image,
    semantic_scores,
)


def empty_per_image_sums(num_classes: int, device=None) -> dict[str, torch.Tensor]:
    """The zero state of :func:`~segfuse.metrics.scores.per_image_sums`."""
    scores, images = len(CLASS_SCORES), len(IMAGE_SCORES)
    return {
        "class_sums": torch.zeros(scores, num_classes, dtype=torch.float64, device=device),
        "class_counts": torch.zeros(scores, num_classes, dtype=torch.int64, device=device),
        "image_sums": torch.zeros(images, dtype=torch.float64, device=device),
        "image_counts": torch.zeros(images, dtype=torch.int64, device=device),
        "num_images": torch.zeros((), dtype=torch.int64, device=device),
    }


def _check_metric_args(num_classes, ignore_index, beta, zero_division, class_names, convention, per_image, average):
    check_num_classes(num_classes)
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    check_score_args(beta, zero_division, class_names, num_classes, convention)
    return resolve_per_image(convention, per_image, average)


def _count(pred, target, num_classes, ignore_index, per_image, validate_args):
    """``(confusion, None)`` for class maps, ``(None, OverlapCounts)`` for one-hot masks."""
    if not is_mask_input(pred, target, num_classes):
        return _confusion_update(pred, target, num_classes, ignore_index, per_image, validate_args), None
    if ignore_index is not None:
        raise ValueError(
            f"one-hot masks {tuple(target.shape)} have no ignored pixels; ignore_index applies to class maps, "
            f"got ignore_index={ignore_index}"
        )
    return None, mask_overlap_counts(pred, target, per_image, validate_args)


def semantic_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
    beta: float = 1.0,
    zero_division="nan",
    per_image: bool | None = None,
    class_names: Sequence[str] | None = None,
    convention: str = DEFAULT_CONVENTION,
    per_image_average: str | None = None,
) -> SemanticScores:
    """IoU, Dice, F-beta, precision, recall (per class and means), aAcc, mAcc, fwIoU of one batch.

    Args:
        pred: class map like ``target``, scores ``(N, C, *S)`` (argmax), or one-hot masks.
        target: integer class map ``(N, *S)`` or ``(N, 1, *S)``, labels in ``[0, C)`` or
            ``ignore_index``; or one-hot / multi-hot masks of ``pred``'s shape ``(N, C, *S)``.
        num_classes, ignore_index, beta, zero_division, per_image, class_names, convention,
            per_image_average: see :class:`SemanticMetrics`.

    Example:
        >>> semantic_metrics(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 0, 1]]), 2).miou
        tensor(0.5000, dtype=torch.float64)
    """
    per_image = _check_metric_args(
        num_classes, ignore_index, beta, zero_division, class_names, convention, per_image, per_image_average
    )
    confusion, counts = _count(pred, target, num_classes, ignore_index, per_image, validate_args=True)
    if not per_image:
        return semantic_scores(confusion if counts is None else counts, beta, zero_division, class_names, convention)
    counts = overlap_counts(confusion) if counts is None else counts
    sums = per_image_sums(counts, beta, zero_division, convention)
    total = None if confusion is None else confusion.sum(0)
    return per_image_scores(sums, total, beta, zero_division, class_names, convention, per_image_average)


class SemanticMetrics:
    """Streaming :func:`semantic_metrics`: ``update(pred, target)`` per batch, ``compute()``, ``reset()``.

    Args:
        num_classes: C.
        ignore_index: target label whose pixels are skipped, or None (labels outside
            ``[0, C)`` are then errors). Class maps only.
        beta: F-beta's beta (> 0).
        zero_division: ``"nan"``, 0 or 1 for undefined (0/0) scores.
        per_image: average per-image scores instead of scoring the summed counts; None (the
            default) is the convention's choice (True for ``"monai"``, else False).
        class_names: C names used by ``to_dict()`` and reports.
        validate_args: check label ranges on every update (a device sync).
        convention: ``"segfuse"`` (default), ``"mmseg"``, ``"detectron2"``,
            ``"torchmetrics"`` or ``"monai"``; see :mod:`segfuse.metrics.scores`.
        per_image_average: with per-image scores, ``"class"``, ``"image"`` or ``"pooled"``
            means; None is the convention's.
        device: where the state lives; None follows the first input.

    State: ``confusion`` int64 (C, C), ``mask_counts`` int64 (3, C) (one-hot updates), and
    with ``per_image`` the O(C) sums of :func:`~segfuse.metrics.scores.per_image_sums`.
    Never per-image lists. ``state_dict()`` / ``load_state_dict()`` save and restore it.

    Example:
        >>> metric = SemanticMetrics(num_classes=3, ignore_index=255)
        >>> metric.update(torch.tensor([[0, 2, 1]]), torch.tensor([[0, 2, 255]]))
        >>> metric.compute().miou
        tensor(1., dtype=torch.float64)
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        beta: float = 1.0,
        zero_division="nan",
        per_image: bool | None = None,
        class_names: Sequence[str] | None = None,
        validate_args: bool = True,
        convention: str = DEFAULT_CONVENTION,
        per_image_average: str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.per_image = _check_metric_args(
            num_classes, ignore_index, beta, zero_division, class_names, convention, per_image, per_image_average
        )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.beta = beta
        self.zero_division = zero_division
        self.class_names = list(class_names) if class_names is not None else None
        self.validate_args = validate_args
        self.convention = convention
        self.per_image_average = per_image_average
        self._device = None if device is None else torch.device(device)
        self.reset()

    @property
    def device(self) -> torch.device:
        """The device the state is on."""
        return self.confusion.device

    def reset(self) -> None:
        """Zero the state (on the state's device)."""
        device = self._device or (self.confusion.device if hasattr(self, "confusion") else None)
        size = self.num_classes
        self.confusion = torch.zeros(size, size, dtype=torch.int64, device=device)
        self.mask_counts = torch.zeros(3, size, dtype=torch.int64, device=device)
        self.sums = empty_per_image_sums(size, device) if self.per_image else {}

    def to(self, device: torch.device | str) -> "SemanticMetrics":
        """Move the state to ``device`` and keep it there; returns self."""
        self._device = torch.device(device)
        self._move_state(self._device)
        return self

    def _move_state(self, device: torch.device) -> None:
        self.confusion = self.confusion.to(device)
        self.mask_counts = self.mask_counts.to(device)
        self.sums = {name: value.to(device) for name, value in self.sums.items()}

    def _state_device(self, incoming: torch.Tensor) -> torch.device:
        """The device to accumulate on: the fixed one, else the input's (the state follows it)."""
        if self._device is None and self.confusion.device != incoming.device:
            self._move_state(incoming.device)
        return self.confusion.device

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: class maps (``pred`` like ``target`` or scores ``(N, C, *S)``), or one-hot masks."""
        confusion, counts = _count(
            pred, target, self.num_classes, self.ignore_index, self.per_image, self.validate_args
        )
        if confusion is not None:
            self.update_confusion(confusion)
        else:
            self._add_mask_counts(counts)

    def update_confusion(self, confusion: torch.Tensor) -> None:
        """Add precomputed counts: ``(C, C)`` (one image) or per-image ``(N, C, C)``, rows = truth."""
        size = self.num_classes
        if confusion.dim() not in (2, 3) or tuple(confusion.shape[-2:]) != (size, size):
            raise ValueError(f"confusion must have shape (C, C) or (N, C, C) with C={size}, got {tuple(confusion.shape)}")
        if confusion.dtype != torch.int64:
            raise TypeError(f"confusion must be int64 counts, got {confusion.dtype}")
        batch = confusion if confusion.dim() == 3 else confusion.unsqueeze(0)
        device = self._state_device(batch)
        self.confusion += batch.sum(0).to(device)
        if self.per_image:
            self._add_sums(overlap_counts(batch), device)

    def _add_mask_counts(self, counts: OverlapCounts) -> None:
        device = self._state_device(counts.tp)
        batch = counts if counts.tp.dim() == 2 else OverlapCounts(*(x.unsqueeze(0) for x in counts))
        self.mask_counts += torch.stack([x.sum(0) for x in batch]).to(device)
        if self.per_image:
            self._add_sums(batch, device)

    def _add_sums(self, counts: OverlapCounts, device: torch.device) -> None:
        new = per_image_sums(counts, self.beta, self.zero_division, self.convention)
        self.sums = {name: self.sums[name].to(device) + new[name].to(device) for name in new}

    def compute(self) -> SemanticScores:
        """Scores of everything added since the last ``reset()`` (summed over processes)."""
        confusion = sum_across_processes(self.confusion)
        mask_counts = sum_across_processes(self.mask_counts)
        from_masks = bool(mask_counts.any())
        matrix = None if from_masks else confusion
        if self.per_image:
            sums = {name: sum_across_processes(value) for name, value in self.sums.items()}
            return per_image_scores(
                sums, matrix, self.beta, self.zero_division, self.class_names, self.convention, self.per_image_average
            )
        if not from_masks:
            return semantic_scores(confusion, self.beta, self.zero_division, self.class_names, self.convention)
        counts = OverlapCounts(*(a + b for a, b in zip(overlap_counts(confusion), mask_counts)))
        return semantic_scores(counts, self.beta, self.zero_division, self.class_names, self.convention)

    # ---- saving and restoring ----------------------------------------------------------------

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state tensors (detached copies): ``confusion``, ``mask_counts`` and the per-image sums."""
        state = {"confusion": self.confusion, "mask_counts": self.mask_counts}
        state.update({f"sums.{name}": value for name, value in self.sums.items()})
        return {name: value.detach().clone() for name, value in state.items()}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Restore a :meth:`state_dict` made by a metric with the same settings (onto this state's device)."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise KeyError(
                f"state_dict must hold exactly {sorted(expected)} for these settings; missing {missing}, "
                f"unexpected {unexpected}"
            )
        for name, value in expected.items():
            given = state_dict[name]
            if not isinstance(given, torch.Tensor) or given.shape != value.shape or given.dtype != value.dtype:
                shape = tuple(given.shape) if isinstance(given, torch.Tensor) else type(given).__name__
                raise ValueError(
                    f"state_dict[{name!r}] must be a {value.dtype} tensor of shape {tuple(value.shape)}, got {shape}"
                    + (f" {given.dtype}" if isinstance(given, torch.Tensor) else "")
                )
        device = self.device
        self.confusion = state_dict["confusion"].detach().to(device, copy=True)
        self.mask_counts = state_dict["mask_counts"].detach().to(device, copy=True)
        self.sums = {name: state_dict[f"sums.{name}"].detach().to(device, copy=True) for name in self.sums}

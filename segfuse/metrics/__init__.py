"""Evaluation metrics: confusion-matrix scores, thresholded F-score, pixel PR curves and AP,
model comparison, boundary and surface distances.

The names are resolved lazily (PEP 562), so that ``import segfuse.metrics.scores`` and
``segfuse.metrics.cityscapes`` (numpy only) do not import torch; the first access to a
name imports its module.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "confusion": ("OverlapCounts", "confusion_matrix", "mask_overlap_counts", "per_image_confusion_matrix"),
    "fscore": ("fscore",),
    "pr_curve": ("BinaryPRCurve", "PRCurve", "average_precision", "precision_recall_curve"),
    "scores": ("CONVENTIONS", "DEFAULT_CONVENTION", "SemanticScores", "generalized_dice_score", "semantic_scores"),
    "semantic": ("SemanticMetrics", "semantic_metrics"),
    "compare": ("ModelComparison", "ScoreDelta", "compare_counts", "compare_models", "image_counts"),
    "boundary": (
        "BoundaryIoU", "BoundaryIoUSummary", "BoundaryStatistics", "boundary_iou", "boundary_iou_scores",
        "boundary_iou_statistics",
    ),
    "surface": (
        "SurfaceMetrics", "SurfaceScores", "SurfaceStatistics", "SurfaceSummary", "surface_metrics", "surface_scores",
        "surface_statistics",
    ),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'segfuse.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"segfuse.metrics.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

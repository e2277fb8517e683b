"""Evaluation metrics: confusion-matrix scores, thresholded F-score, pixel PR curves and AP."""

from segfuse.metrics.confusion import (
    OverlapCounts,
    confusion_matrix,
    mask_overlap_counts,
    per_image_confusion_matrix,
)
from segfuse.metrics.fscore import fscore
from segfuse.metrics.pr_curve import BinaryPRCurve, PRCurve, average_precision, precision_recall_curve
from segfuse.metrics.scores import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    SemanticScores,
    generalized_dice_score,
    semantic_scores,
)
from segfuse.metrics.semantic import SemanticMetrics, semantic_metrics

__all__ = [
    "BinaryPRCurve",
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "OverlapCounts",
    "PRCurve",
    "SemanticMetrics",
    "SemanticScores",
    "average_precision",
    "confusion_matrix",
    "fscore",
    "generalized_dice_score",
    "mask_overlap_counts",
    "per_image_confusion_matrix",
    "precision_recall_curve",
    "semantic_metrics",
    "semantic_scores",
]

from segfuse.metrics.compare import ModelComparison, ScoreDelta, compare_counts, compare_models, image_counts  # noqa: E402

__all__ += ["ModelComparison", "ScoreDelta", "compare_counts", "compare_models", "image_counts"]
# Boundary and surface-distance metrics (issue 13).
from segfuse.metrics.boundary import (  # noqa: E402
    BoundaryIoU,
    BoundaryIoUSummary,
    BoundaryStatistics,
    boundary_iou,
    boundary_iou_scores,
    boundary_iou_statistics,
)
from segfuse.metrics.surface import (  # noqa: E402
    SurfaceMetrics,
    SurfaceScores,
    SurfaceStatistics,
    SurfaceSummary,
    surface_metrics,
    surface_scores,
    surface_statistics,
)

__all__ += [
    "BoundaryIoU",
    "BoundaryIoUSummary",
    "BoundaryStatistics",
    "SurfaceMetrics",
    "SurfaceScores",
    "SurfaceStatistics",
    "SurfaceSummary",
    "boundary_iou",
    "boundary_iou_scores",
    "boundary_iou_statistics",
    "surface_metrics",
    "surface_scores",
    "surface_statistics",
]

"""Evaluation metrics: confusion-matrix scores, thresholded F-score, pixel PR curves and AP."""

from segfuse.metrics.confusion import confusion_matrix, per_image_confusion_matrix
from segfuse.metrics.fscore import fscore
from segfuse.metrics.pr_curve import BinaryPRCurve, PRCurve, average_precision, precision_recall_curve
from segfuse.metrics.scores import SemanticScores, semantic_scores
from segfuse.metrics.semantic import SemanticMetrics, semantic_metrics

__all__ = [
    "BinaryPRCurve",
    "PRCurve",
    "SemanticMetrics",
    "SemanticScores",
    "average_precision",
    "confusion_matrix",
    "fscore",
    "per_image_confusion_matrix",
    "precision_recall_curve",
    "semantic_metrics",
    "semantic_scores",
]

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

"""Boundary IoU and surface distances in ``segfuse eval`` (``--boundary``, ``--surface``).

Each worker turns its decoded, mapped pair into per-pair statistics with the library's
``surface_statistics`` / ``boundary_iou_statistics`` (:func:`pair_statistics`, numpy arrays
that travel back cheaply); the main process merges them with
``SurfaceMetrics.update_statistics`` / ``BoundaryIoU.update_statistics``
(:func:`summarize`). torch is imported only here, only when these metrics are asked for.

Convention:
    Maps are class indices after the label mapping; pixels whose truth is ignored belong to
    no class in both maps, and a prediction holding the ignore value (a miss) belongs to no
    class: its pixel is in no predicted mask. Spacing is ``--spacing`` when given, else the
    NIfTI headers' (which must agree), else 1 per axis (pixels). Surface metrics leave class
    0 out unless ``--include-background`` (MONAI's and DeepMind's default: class 0 is the
    background); Boundary IoU scores every class unless ``--no-include-background``. The
    percentile is 95 (HD95). Empty masks follow ``--surface-empty`` (default ``inf``, the
    library's): one side empty gives infinite distances and NSD 0, both empty NaN (left out
    of means); the report counts the cases per class. Per-class values are means over the
    images where they are defined; the boundary table also gives the dataset-level
    Boundary IoU (from the summed band counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from segfuse.cli.errors import InputError

PERCENTILES = (95.0,)
SURFACE_FIELDS = ("surface", "distance_sum", "hausdorff", "percentile", "within", "evaluated")
BOUNDARY_FIELDS = ("intersection", "gt_band", "pred_band", "evaluated")
DEFINITIONS = ("deepmind", "monai")


def parse_tolerances(text: str) -> tuple[float, ...]:
    """``"1,2.5"`` -> ``(1.0, 2.5)`` (``--surface``); InputError when malformed."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InputError(
            f"--surface takes NSD tolerances such as 1 or 1,2.5 (in the spacing's unit), got {text!r}") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise InputError(f"--surface tolerances must be numbers >= 0, got {text!r}")
    return values


def parse_empty(text: str):
    """``--surface-empty``: inf, nan, reference or a distance >= 0."""
    if text in ("inf", "nan", "reference"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"--surface-empty must be inf, nan, reference or a distance >= 0, got {text!r}")
    return value


@dataclass(frozen=True)
class DistanceOptions:
    """What to compute per pair: Boundary IoU (``boundary``) and / or surface distances (``tolerances``)."""

    boundary: bool = False
    boundary_width: float | None = None
    dilation_ratio: float = 0.02
    tolerances: tuple[float, ...] | None = None
    definition: str = "deepmind"
    empty: object = "inf"
    spacing: tuple[float, ...] | None = None
    include_background: bool | None = None

    @property
    def surface(self) -> bool:
        return self.tolerances is not None

    @property
    def surface_background(self) -> bool:
        return bool(self.include_background)

    @property
    def boundary_background(self) -> bool:
        return True if self.include_background is None else self.include_background

    def pair_spacing(self, gt_spacing, pred_spacing, dims: int, pair) -> tuple[float, ...] | None:
        """``--spacing``, else the files' (NIfTI headers, which must agree), else None (pixels)."""
        from segfuse.cli.io_volumes import Volume, pair_spacing

        shape = (1,) * dims  # pair_spacing reads the dims only
        return pair_spacing(Volume(np.zeros(shape), gt_spacing), Volume(np.zeros(shape), pred_spacing),
                            self.spacing, pair.gt, pair.pred)

    def describe(self) -> dict:
        """The settings, for metrics.json and the report."""
        described = {}
        if self.boundary:
            described["boundary"] = {
                "definition": "Boundary IoU (Cheng et al. 2021), per class and image",
                "boundary_width" if self.boundary_width is not None else "dilation_ratio":
                    self.boundary_width if self.boundary_width is not None else self.dilation_ratio,
                "include_background": self.boundary_background,
            }
        if self.surface:
            described["surface"] = {
                "definition": self.definition,
                "tolerances": list(self.tolerances),
                "percentile": PERCENTILES[0],
                "empty": self.empty,
                "include_background": self.surface_background,
            }
        if described:
            described["spacing"] = list(self.spacing) if self.spacing is not None else "from the NIfTI headers, else 1"
        return described


def _in_worker() -> bool:
    import multiprocessing

    return multiprocessing.current_process().name != "MainProcess"


def pair_statistics(gt: np.ndarray, pred: np.ndarray, num_classes: int, spacing, options: DistanceOptions) -> dict:
    """The pair's surface / boundary statistics as numpy arrays (``num_classes`` marks no class in both maps)."""
    import torch

    from segfuse.metrics.boundary import boundary_iou_statistics
    from segfuse.metrics.surface import surface_statistics

    if _in_worker():
        torch.set_num_threads(1)  # the workers already share the cores
    statistics = {}
    if options.surface:
        surface = surface_statistics(
            pred[None], gt[None], num_classes, spacing, options.definition, "euclidean", PERCENTILES,
            options.tolerances, options.surface_background, ignore_index=num_classes, validate_args=False,
        )
        statistics["surface"] = {name: getattr(surface, name).numpy() for name in SURFACE_FIELDS}
    if options.boundary:
        boundary = boundary_iou_statistics(
            pred[None], gt[None], num_classes, options.dilation_ratio, options.boundary_width, spacing,
            options.boundary_background, ignore_index=num_classes, validate_args=False,
        )
        statistics["boundary"] = {name: getattr(boundary, name).numpy() for name in BOUNDARY_FIELDS}
    statistics["spacing"] = None if spacing is None else tuple(float(s) for s in spacing)
    return statistics


@dataclass
class DistanceReport:
    """Merged results: per-class values ``(C,)``, means, per-image values ``(N, C)`` and empty counts.

    ``names`` lists the scores in order (``boundary_iou``, ``hd``, ``hd95``, ``assd``,
    ``msd_gt_to_pred``, ``msd_pred_to_gt``, ``nsd@t``...). ``empty`` holds per-class int
    counts ``images``, ``gt_empty``, ``pred_empty``, ``both_empty`` (surface metrics only).
    ``boundary_dataset`` is the Boundary IoU of the summed band counts ``(C,)`` and its mean.
    """

    options: DistanceOptions
    names: list[str]
    per_class: dict[str, np.ndarray]
    means: dict[str, float]
    per_image: dict[str, np.ndarray]
    empty: dict[str, np.ndarray] = field(default_factory=dict)
    boundary_dataset: np.ndarray | None = None
    boundary_dataset_mean: float = math.nan
    spacings: list[tuple[float, ...] | None] = field(default_factory=list)

    def unit(self) -> str:
        """What the distances are measured in: pixels, or the unit of the spacing used."""
        if all(spacing is None for spacing in self.spacings):
            return "pixels"
        return "the spacing's unit (--spacing)" if self.options.spacing is not None else "the NIfTI headers' unit"

    @property
    def surface_names(self) -> list[str]:
        return [name for name in self.names if name != "boundary_iou"]


def _surface(parts: list[dict], num_classes: int, options: DistanceOptions, names):
    import torch

    from segfuse.metrics.surface import SurfaceMetrics, SurfaceStatistics

    fields = {name: torch.cat([torch.from_numpy(part[name]) for part in parts]) for name in SURFACE_FIELDS[:-1]}
    statistics = SurfaceStatistics(**fields, evaluated=torch.from_numpy(parts[0]["evaluated"]), percentiles=PERCENTILES,
                                   tolerances=tuple(map(float, options.tolerances)), definition=options.definition)
    metric = SurfaceMetrics(num_classes, definition=options.definition, percentiles=PERCENTILES,
                            tolerances=options.tolerances, include_background=options.surface_background,
                            empty=options.empty, class_names=names)
    scores = metric.update_statistics(statistics)
    return scores, metric.compute()


def _boundary(parts: list[dict], num_classes: int, options: DistanceOptions):
    import torch

    from segfuse.metrics.boundary import BoundaryIoU, BoundaryStatistics

    counts = [torch.cat([torch.from_numpy(part[name]) for part in parts]) for name in BOUNDARY_FIELDS[:-1]]
    statistics = BoundaryStatistics(*counts, torch.from_numpy(parts[0]["evaluated"]))
    metric = BoundaryIoU(num_classes, options.dilation_ratio, options.boundary_width,
                         include_background=options.boundary_background)
    per_image = metric.update_statistics(statistics)
    return per_image, metric.compute()


def summarize(statistics: list[dict], num_classes: int, options: DistanceOptions, names=None) -> DistanceReport:
    """Merge the per-pair statistics (in image order) with the library's streaming metrics."""
    report = DistanceReport(options, [], {}, {}, {}, spacings=[part["spacing"] for part in statistics])
    if options.boundary:
        per_image, summary = _boundary([part["boundary"] for part in statistics], num_classes, options)
        report.names.append("boundary_iou")
        report.per_class["boundary_iou"] = summary.iou_per_image.numpy()
        report.means["boundary_iou"] = float(summary.miou_per_image)
        report.per_image["boundary_iou"] = per_image.numpy()
        report.boundary_dataset, report.boundary_dataset_mean = summary.iou.numpy(), float(summary.miou)
    if options.surface:
        scores, summary = _surface([part["surface"] for part in statistics], num_classes, options, names)
        for name, value in scores.values.items():
            report.names.append(name)
            report.per_class[name] = summary.per_class[name].numpy()
            report.means[name] = float(summary.mean[name])
            report.per_image[name] = value.numpy()
        report.empty = {"images": summary.images.numpy(), "gt_empty": summary.gt_empty.numpy(),
                        "pred_empty": summary.pred_empty.numpy(), "both_empty": summary.both_empty.numpy()}
    return report


def image_means(report: DistanceReport) -> dict[str, np.ndarray]:
    """Per image and score, the mean over the classes defined in that image (N,) (inf stays inf; NaN: none)."""
    means = {}
    for name, values in report.per_image.items():
        defined = ~np.isnan(values)
        count = defined.sum(1)
        with np.errstate(invalid="ignore"):
            total = np.where(defined, values, 0.0).sum(1)
            means[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return means

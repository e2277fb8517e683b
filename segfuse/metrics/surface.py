"""Surface-distance metrics per class and image, 2D and 3D: Hausdorff, percentile Hausdorff (HD95),
average symmetric and one-way mean surface distance, normalised surface Dice (NSD).

Three layers, as in the semantic metrics: :func:`surface_statistics` turns a batch of class
maps into small per-image, per-class statistics (:class:`SurfaceStatistics`, mergeable
across batches and processes); :func:`surface_scores` turns them into per-image scores under
an empty-mask policy; :class:`SurfaceMetrics` streams, keeping O(C) sums, and reduces to
per-class means. :func:`surface_metrics` chains the first two.

Convention:
    ``definition="deepmind"`` (default) is DeepMind's surface-distance: surface elements on
    the voxel-corner grid weighted by their area (3D) or contour length (2D) from its lookup
    tables, Euclidean distances with the spacing, percentiles by cumulative surfel weight.
    ``definition="monai"`` is MONAI's ``compute_hausdorff_distance`` /
    ``compute_average_surface_distance`` / ``compute_surface_dice``: edge voxels of weight 1,
    ``distance_metric`` "euclidean" (with spacing), "chessboard" or "taxicab" (voxel steps;
    MONAI ignores the spacing there), percentiles by ``torch.quantile`` (linear).
    Direction 0 measures from the ground-truth surface to the prediction, 1 the reverse.
    HD = max of the two directions' values; ASSD = (sum of weighted distances both ways) /
    (total weight both ways) (MONAI's ``symmetric=True``); ``msd_gt_to_pred`` and
    ``msd_pred_to_gt`` are DeepMind's ``compute_average_surface_distance`` pair (MONAI's
    ``symmetric=False`` is ``msd_pred_to_gt``); NSD at tolerance t = weight within t both
    ways / total weight (DeepMind's ``compute_surface_dice_at_tolerance``).
    Class 0 is left out unless ``include_background`` (MONAI's default); its scores are NaN.
    ``ignore_index``: see :mod:`segfuse.metrics._surface_inputs` (ignored pixels belong to
    no class in both maps). Empty masks: see :func:`surface_scores`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from segfuse._validate import check_choice, check_num_classes
from segfuse.metrics._distributed import sum_across_processes
from segfuse.metrics._edt import BACKENDS, METRICS
from segfuse.metrics._surface_inputs import class_maps, evaluated_classes, keep_lookup, spacing_per_image
from segfuse.metrics._surface_points import corner_surfels, voxel_edges
from segfuse.metrics._surface_stats import DistanceConfig, batch_statistics, empty_statistics, on_both_sides
from segfuse.metrics._surface_tables import deepmind_surfel_areas

DEFINITIONS = ("deepmind", "monai")
EMPTY_POLICIES = ("inf", "nan", "reference")
_STAT_FIELDS = ("surface", "distance_sum", "hausdorff", "percentile", "within")


@dataclass(frozen=True)
class SurfaceStatistics:
    """Per-image, per-class sufficient statistics (float64 CPU tensors; last dim = direction).

    ``surface`` (N, C, 2): total surface weight (area, length or edge-voxel count);
    ``distance_sum`` (N, C, 2): weighted sum of distances; ``hausdorff`` (N, C, 2);
    ``percentile`` (N, C, P, 2); ``within`` (N, C, T, 2): weight within each tolerance.
    ``evaluated`` (C,) bool marks the scored classes. Direction 0: ground truth -> prediction.
    """

    surface: torch.Tensor
    distance_sum: torch.Tensor
    hausdorff: torch.Tensor
    percentile: torch.Tensor
    within: torch.Tensor
    evaluated: torch.Tensor
    percentiles: tuple[float, ...]
    tolerances: tuple[float, ...]
    definition: str

    def __len__(self) -> int:
        return self.surface.shape[0]

    @staticmethod
    def concatenate(parts: Sequence["SurfaceStatistics"]) -> "SurfaceStatistics":
        """The statistics of several batches (or workers) stacked along the image dim."""
        if not parts:
            raise ValueError("parts must hold at least one SurfaceStatistics, got none")
        first = parts[0]
        for part in parts[1:]:
            if (part.percentiles, part.tolerances, part.definition) != (
                first.percentiles,
                first.tolerances,
                first.definition,
            ) or not torch.equal(part.evaluated, first.evaluated):
                raise ValueError("parts must share percentiles, tolerances, definition and classes")
        stacked = {name: torch.cat([getattr(p, name) for p in parts]) for name in _STAT_FIELDS}
        return SurfaceStatistics(**stacked, evaluated=first.evaluated, percentiles=first.percentiles,
                                 tolerances=first.tolerances, definition=first.definition)


@dataclass(frozen=True)
class SurfaceScores:
    """Per-image scores ``values[name]`` (N, C) float64 and the empty masks (N, C) bool.

    Names: ``"hd"``, ``"hd{p}"`` per percentile (``"hd95"``), ``"assd"``, ``"msd_gt_to_pred"``,
    ``"msd_pred_to_gt"``, ``"nsd@{t}"`` per tolerance (``"nsd@2"``). Classes not evaluated
    are NaN.
    """

    values: dict[str, torch.Tensor]
    gt_empty: torch.Tensor
    pred_empty: torch.Tensor
    evaluated: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.values[name]

    def to_dict(self) -> dict:
        """Plain lists: ``{name: [[per class] per image]}`` plus the empty masks."""
        out = {name: value.tolist() for name, value in self.values.items()}
        out["gt_empty"], out["pred_empty"] = self.gt_empty.tolist(), self.pred_empty.tolist()
        return out


def score_names(percentiles: Sequence[float], tolerances: Sequence[float]) -> list[str]:
    """Names of the scores, in order: hd, hd{p}..., assd, msd both ways, nsd@{t}..."""
    return (
        ["hd"]
        + [f"hd{p:g}" for p in percentiles]
        + ["assd", "msd_gt_to_pred", "msd_pred_to_gt"]
        + [f"nsd@{t:g}" for t in tolerances]
    )


def check_surface_args(definition, distance_metric, percentiles, tolerances, empty, backend) -> None:
    """Argument checks shared by the functional and streaming APIs."""
    check_choice("definition", definition, DEFINITIONS)
    check_choice("distance_metric", distance_metric, METRICS)
    if definition == "deepmind" and distance_metric != "euclidean":
        raise ValueError(f"distance_metric must be 'euclidean' with definition='deepmind', got {distance_metric!r}")
    for name, values, high in (("percentiles", percentiles, 100.0), ("tolerances", tolerances, math.inf)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
                raise ValueError(f"{name} must hold numbers in [0, {high:g}], got {value!r}")
    check_empty_policy(empty)
    if backend is not None:
        check_choice("backend", backend, BACKENDS)


def check_empty_policy(empty) -> None:
    if isinstance(empty, str):
        check_choice("empty", empty, EMPTY_POLICIES)
    elif isinstance(empty, bool) or not isinstance(empty, (int, float)) or not 0 <= empty < math.inf:
        raise ValueError(f"empty must be one of {EMPTY_POLICIES} or a finite distance >= 0, got {empty!r}")


def surface_statistics(
    pred,
    target,
    num_classes: int,
    spacing=None,
    definition: str = "deepmind",
    distance_metric: str = "euclidean",
    percentiles: Sequence[float] = (95.0,),
    tolerances: Sequence[float] = (1.0,),
    include_background: bool = False,
    ignore_index: int | None = None,
    backend: str | None = None,
    validate_args: bool = True,
) -> SurfaceStatistics:
    """Per-image, per-class surface-distance statistics of a batch of class maps.

    Args:
        pred: class map ``(N, *S)`` like ``target`` or scores ``(N, C, *S)`` (argmax); torch or numpy.
        target: integer class map ``(N, *S)``, S 2D or 3D, labels in ``[0, C)`` or ``ignore_index``.
        num_classes: C.
        spacing: voxel spacing, one number per spatial axis (a number for all, or one row
            per image); None = 1. Distances and tolerances are in its unit.
        definition: ``"deepmind"`` or ``"monai"`` (see the module's Convention).
        distance_metric: ``"euclidean"``; ``"chessboard"`` or ``"taxicab"`` with ``"monai"``.
        percentiles: percentile Hausdorff values to compute, in [0, 100].
        tolerances: NSD tolerances, in the spacing's unit.
        include_background: score class 0 too.
        ignore_index: target label whose pixels belong to no class in both maps.
        backend: nearest-point search, all exact: ``"search"`` (CPU default: a compiled row search when
            numba is installed, else the KD-tree), ``"kdtree"`` (one scipy cKDTree for all images and
            classes, torch's thread count as its workers), ``"scipy"`` (the references' distance
            transforms) or ``"torch"`` (default for CUDA tensors, whose surfaces and transforms stay on the GPU).
        validate_args: check label ranges (a device sync).

    Returns:
        :class:`SurfaceStatistics` with N images.

    Example:
        >>> target = torch.zeros(1, 8, 8, dtype=torch.uint8); target[0, 2:6, 2:6] = 1
        >>> pred = torch.zeros_like(target); pred[0, 2:6, 3:7] = 1
        >>> stats = surface_statistics(pred, target, num_classes=2)
        >>> surface_scores(stats)["hd"]
        tensor([[nan, 1.]], dtype=torch.float64)
    """
    check_surface_args(definition, distance_metric, percentiles, tolerances, "inf", backend)
    pred, target = class_maps(pred, target, num_classes, ignore_index, validate_args, spatial_dims=(2, 3))
    images, dims = target.shape[0], target.dim() - 1
    spacings = spacing_per_image(spacing, images, dims)
    backend = backend or ("torch" if target.is_cuda else "search")
    rule = "deepmind" if definition == "deepmind" else "monai"
    config = DistanceConfig(distance_metric, rule, tuple(map(float, percentiles)), tuple(map(float, tolerances)), backend)
    classes = evaluated_classes(num_classes, include_background)
    keep = keep_lookup(num_classes, include_background, target.device)
    first = int(classes[0]) if len(classes) else num_classes
    holds_no_class = ignore_index is not None
    stats = empty_statistics(num_classes, len(config.percentiles), len(config.tolerances), images)
    if len(classes):
        for group, group_spacing in _spacing_groups(spacings, target[0].numel()):
            if definition == "deepmind":
                extract, table = corner_surfels, deepmind_surfel_areas(group_spacing)
            else:
                extract, table = voxel_edges, None

            def chunk_statistics(chunk: list[int], threads: bool, extract=extract, table=table,
                                 group_spacing=group_spacing) -> dict[str, np.ndarray]:
                rows = slice(chunk[0], chunk[-1] + 1) if chunk == list(range(chunk[0], chunk[-1] + 1)) else chunk
                gt, predicted = on_both_sides(extract, [(maps[rows], keep, first, num_classes, holds_no_class)
                                                        for maps in (target, pred)], target.device, threads)
                return batch_statistics(gt, predicted, classes, num_classes, len(chunk), group_spacing, table, rule,
                                        config, target.device, threads)

            for chunk, part in _over_images(chunk_statistics, group, target.device, backend):
                for name in _STAT_FIELDS:
                    stats[name][chunk] = part[name]
    stacked = {name: torch.from_numpy(stats[name]) for name in _STAT_FIELDS}
    evaluated = torch.zeros(num_classes, dtype=torch.bool)
    evaluated[torch.from_numpy(classes)] = True
    return SurfaceStatistics(**stacked, evaluated=evaluated, percentiles=config.percentiles,
                             tolerances=config.tolerances, definition=definition)


def _over_images(function, images: list[int], device, backend: str) -> list[tuple[list[int], dict]]:
    """``function(chunk, threads)`` over chunks of the images: with torch's threads (two or more, on a CPU, not the
    KD-tree, which has its own workers) a few chunks per thread in a pool, each chunk in one thread (no imbalance
    between its two surfaces or directions); else one chunk, its surfaces and directions in two threads."""
    workers = torch.get_num_threads()
    if workers < 2 or len(images) < 2 or torch.device(device).type != "cpu" or backend == "kdtree":
        return [(images, function(images, True))]
    count = min(len(images), 4 * workers)
    chunks = [list(chunk) for chunk in np.array_split(np.asarray(images), count)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(zip(chunks, pool.map(lambda chunk: function(chunk, False), chunks)))


def _spacing_groups(spacings: list[tuple[float, ...]], voxels: int) -> list[tuple[list[int], tuple[float, ...]]]:
    """Images sharing a spacing, in chunks of at most about 2**25 voxels (one chunk's surfaces at a time)."""
    per_chunk = max(1, (1 << 25) // max(voxels, 1))
    groups: dict[tuple[float, ...], list[int]] = {}
    for index, spacing in enumerate(spacings):
        groups.setdefault(spacing, []).append(index)
    return [(members[i : i + per_chunk], spacing) for spacing, members in groups.items()
            for i in range(0, len(members), per_chunk)]


def surface_scores(statistics: SurfaceStatistics, empty="inf", directed: bool = False) -> SurfaceScores:
    """Per-image scores from :class:`SurfaceStatistics` under an empty-mask policy.

    Args:
        statistics: from :func:`surface_statistics`.
        directed: HD and HD_p from the predicted surface to the ground truth only
            (MONAI's ``directed=True``) instead of the larger of both directions.
        empty: what a class empty in the truth and / or the prediction scores.

            - ``"inf"`` (default): one side empty: every distance inf, NSD 0; both empty: NaN.
            - a number M >= 0: one side empty: every distance M, NSD 0; both empty: NaN.
            - ``"nan"``: NaN whenever a side is empty.
            - ``"reference"``: the definition's reference, value for value. DeepMind: both
              empty: HD and HD_p inf, mean distances, ASSD and NSD NaN; one side empty: HD,
              HD_p, ASSD inf, the mean distance from the empty surface NaN and from the other
              inf, NSD 0. MONAI: both empty: NaN; one side empty: HD, ASSD and both one-way
              means inf, HD_p NaN (``torch.quantile`` of infinities), NSD 0.

    Returns:
        :class:`SurfaceScores`. NaN scores are left out of means by :class:`SurfaceMetrics`,
        which counts the empty cases.
    """
    check_empty_policy(empty)
    s = statistics
    gt_empty, pred_empty = s.surface[..., 0] == 0, s.surface[..., 1] == 0
    values = _raw_scores(s, directed)
    one = gt_empty ^ pred_empty
    both = gt_empty & pred_empty
    for name, value in values.items():
        _apply_policy(name, value, one, both, gt_empty, pred_empty, empty, s.definition)
        value[:, ~s.evaluated] = math.nan
    return SurfaceScores(values, gt_empty & s.evaluated, pred_empty & s.evaluated, s.evaluated)


def _raw_scores(s: SurfaceStatistics, directed: bool) -> dict[str, torch.Tensor]:
    size = s.surface.sum(-1)
    pick = (lambda both: both[..., 1]) if directed else (lambda both: both.amax(-1))
    with np.errstate(all="ignore"):
        values = {"hd": pick(s.hausdorff)}
        for k, p in enumerate(s.percentiles):
            values[f"hd{p:g}"] = pick(s.percentile[..., k, :])
        values["assd"] = s.distance_sum.sum(-1) / size
        values["msd_gt_to_pred"] = s.distance_sum[..., 0] / s.surface[..., 0]
        values["msd_pred_to_gt"] = s.distance_sum[..., 1] / s.surface[..., 1]
        for k, t in enumerate(s.tolerances):
            values[f"nsd@{t:g}"] = s.within[..., k, :].sum(-1) / size
    return values


def _apply_policy(name, value, one, both, gt_empty, pred_empty, empty, definition) -> None:
    is_nsd = name.startswith("nsd")
    if empty == "reference":
        _reference_policy(name, value, one, both, gt_empty, pred_empty, definition)
        return
    value[both] = math.nan
    if empty == "nan":
        value[one] = math.nan
    else:
        value[one] = 0.0 if is_nsd else (math.inf if empty == "inf" else float(empty))


def _reference_policy(name, value, one, both, gt_empty, pred_empty, definition) -> None:
    is_nsd = name.startswith("nsd")
    is_hausdorff = name.startswith("hd")
    if definition == "deepmind":
        value[both] = math.inf if is_hausdorff else math.nan
        if is_nsd:
            value[one] = 0.0
        elif name == "msd_gt_to_pred":
            value[one & gt_empty], value[one & pred_empty] = math.nan, math.inf
        elif name == "msd_pred_to_gt":
            value[one & pred_empty], value[one & gt_empty] = math.nan, math.inf
        else:
            value[one] = math.inf
        return
    value[both] = math.nan
    value[one] = 0.0 if is_nsd else (math.nan if is_hausdorff and name != "hd" else math.inf)


def surface_metrics(
    pred,
    target,
    num_classes: int,
    spacing=None,
    definition: str = "deepmind",
    distance_metric: str = "euclidean",
    percentiles: Sequence[float] = (95.0,),
    tolerances: Sequence[float] = (1.0,),
    include_background: bool = False,
    ignore_index: int | None = None,
    empty="inf",
    directed: bool = False,
    backend: str | None = None,
    validate_args: bool = True,
) -> SurfaceScores:
    """Per-image, per-class surface scores of one batch: :func:`surface_statistics` then :func:`surface_scores`.

    Arguments as there. Example:
        >>> target = torch.zeros(1, 8, 8, dtype=torch.uint8); target[0, 2:6, 2:6] = 1
        >>> surface_metrics(target, target, num_classes=2, tolerances=[1.0])["nsd@1"]
        tensor([[nan, 1.]], dtype=torch.float64)
    """
    check_empty_policy(empty)
    statistics = surface_statistics(
        pred, target, num_classes, spacing, definition, distance_metric, percentiles, tolerances,
        include_background, ignore_index, backend, validate_args,
    )
    return surface_scores(statistics, empty, directed)


@dataclass(frozen=True)
class SurfaceSummary:
    """Reduced surface scores: per-class means over images (NaN left out) and counts.

    ``per_class[name]`` (C,) float64; ``mean[name]`` their mean over the evaluated classes
    with a defined value; ``images`` (C,) images seen, ``gt_empty``, ``pred_empty``,
    ``both_empty`` (C,) int64 counts of the empty cases; ``defined[name]`` (C,) images with
    a non-NaN score.
    """

    per_class: dict[str, torch.Tensor]
    mean: dict[str, torch.Tensor]
    defined: dict[str, torch.Tensor]
    images: torch.Tensor
    gt_empty: torch.Tensor
    pred_empty: torch.Tensor
    both_empty: torch.Tensor
    class_names: list[str] | None = field(default=None)

    def to_dict(self) -> dict:
        """Plain numbers for JSON: means, per-class lists and counts."""
        return {
            "mean": {name: float(value) for name, value in self.mean.items()},
            "per_class": {name: value.tolist() for name, value in self.per_class.items()},
            "defined": {name: value.tolist() for name, value in self.defined.items()},
            "images": self.images.tolist(),
            "gt_empty": self.gt_empty.tolist(),
            "pred_empty": self.pred_empty.tolist(),
            "both_empty": self.both_empty.tolist(),
            "class_names": self.class_names,
        }


class SurfaceMetrics:
    """Streaming surface metrics: ``update(pred, target)`` per batch, ``compute()``, ``reset()``.

    Arguments are those of :func:`surface_statistics` and :func:`surface_scores`, plus
    ``class_names``. State: per class and score the sum of the defined per-image values and
    their count, and the counts of empty cases; O(C) whatever the number of images.
    ``compute()`` sums the state across processes under torch.distributed.

    Example:
        >>> metric = SurfaceMetrics(num_classes=2, spacing=(1.0, 2.0), tolerances=[2.0])
        >>> target = torch.zeros(1, 8, 8, dtype=torch.uint8); target[0, 2:6, 2:6] = 1
        >>> _ = metric.update(target, target)
        >>> metric.compute().mean["nsd@2"]
        tensor(1., dtype=torch.float64)
    """

    def __init__(
        self,
        num_classes: int,
        spacing=None,
        definition: str = "deepmind",
        distance_metric: str = "euclidean",
        percentiles: Sequence[float] = (95.0,),
        tolerances: Sequence[float] = (1.0,),
        include_background: bool = False,
        ignore_index: int | None = None,
        empty="inf",
        directed: bool = False,
        backend: str | None = None,
        class_names: Sequence[str] | None = None,
        validate_args: bool = True,
    ) -> None:
        check_num_classes(num_classes)
        check_surface_args(definition, distance_metric, percentiles, tolerances, empty, backend)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names must have {num_classes} entries, got {len(class_names)}")
        self.num_classes, self.spacing, self.definition = num_classes, spacing, definition
        self.distance_metric, self.include_background, self.ignore_index = distance_metric, include_background, ignore_index
        self.percentiles, self.tolerances = tuple(map(float, percentiles)), tuple(map(float, tolerances))
        self.empty, self.directed, self.backend, self.validate_args = empty, directed, backend, validate_args
        self.class_names = list(class_names) if class_names is not None else None
        self.names = score_names(self.percentiles, self.tolerances)
        self.reset()

    def reset(self) -> None:
        """Zero the state."""
        size = self.num_classes
        self.sums = torch.zeros(len(self.names), size, dtype=torch.float64)
        self.counts = torch.zeros(len(self.names), size, dtype=torch.int64)
        self.cases = torch.zeros(4, size, dtype=torch.int64)  # images, gt_empty, pred_empty, both_empty

    def update(self, pred, target) -> SurfaceScores:
        """Add a batch; returns its per-image scores."""
        statistics = surface_statistics(
            pred, target, self.num_classes, self.spacing, self.definition, self.distance_metric,
            self.percentiles, self.tolerances, self.include_background, self.ignore_index, self.backend,
            self.validate_args,
        )
        return self.update_statistics(statistics)

    def update_statistics(self, statistics: SurfaceStatistics) -> SurfaceScores:
        """Add precomputed statistics (e.g. from worker processes); returns their per-image scores."""
        if statistics.surface.shape[1] != self.num_classes:
            raise ValueError(f"statistics must cover {self.num_classes} classes, got {statistics.surface.shape[1]}")
        if (statistics.percentiles, statistics.tolerances) != (self.percentiles, self.tolerances):
            raise ValueError(
                f"statistics must have percentiles {self.percentiles} and tolerances {self.tolerances}, "
                f"got {statistics.percentiles} and {statistics.tolerances}"
            )
        scores = surface_scores(statistics, self.empty, self.directed)
        for row, name in enumerate(self.names):
            value = scores[name]
            defined = ~torch.isnan(value)
            self.sums[row] += torch.where(defined, value, 0.0).sum(0)
            self.counts[row] += defined.sum(0)
        evaluated = statistics.evaluated
        self.cases[0] += evaluated.long() * len(statistics)
        self.cases[1] += (scores.gt_empty & ~scores.pred_empty).sum(0)
        self.cases[2] += (scores.pred_empty & ~scores.gt_empty).sum(0)
        self.cases[3] += (scores.gt_empty & scores.pred_empty).sum(0)
        return scores

    def compute(self) -> SurfaceSummary:
        """Per-class means over the images added since ``reset()`` (summed over processes)."""
        sums, counts = sum_across_processes(self.sums), sum_across_processes(self.counts)
        cases = sum_across_processes(self.cases)
        with np.errstate(all="ignore"):
            means = sums / counts
        evaluated = cases[0] > 0
        per_class, mean, defined = {}, {}, {}
        for row, name in enumerate(self.names):
            value = torch.where(evaluated & (counts[row] > 0), means[row], math.nan)
            per_class[name], defined[name] = value, counts[row]
            mean[name] = value[~torch.isnan(value)].mean() if bool((~torch.isnan(value)).any()) else torch.tensor(
                math.nan, dtype=torch.float64
            )
        return SurfaceSummary(per_class, mean, defined, cases[0], cases[1], cases[2], cases[3], self.class_names)

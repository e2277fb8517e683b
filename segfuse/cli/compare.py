"""``segfuse compare``: is model B better than model A on the same ground truth, beyond noise?

The same as ``segfuse eval --pred A --pred B`` (one implementation, :func:`compare_folders`):
pairs --gt with each --pred folder as ``segfuse eval`` does (stems, dataset presets,
suffixes, label mapping, palettes; ``eval_options``), counts each pair on eval's path
(``eval_pairs``: misses of the true class are FN), then calls
:func:`segfuse.metrics.compare_counts` (paired bootstrap over images, under
``--convention``; per-image averaged with ``--per-image`` or ``--convention monai``) and
prints, per class, A, B, the delta, its interval and the verdict. With --out it writes
comparison.json, per_class.csv, means.csv, per_image.csv, per_class_delta.png and
report.html (all or nothing); --html puts the page elsewhere. Exit code 0 on success, 2 on
bad input (one line naming the file and the problem). torch, matplotlib and the counting
code load only when the command runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

from segfuse.cli.errors import InputError, fail
from segfuse.cli.eval_options import Settings, add_arguments, pair_folder, settings_from

CHUNK = 256


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two models' masks on the same ground truth, with bootstrap confidence intervals",
        description="Per-class and mean score deltas of model B against model A on the same images, with paired "
        "bootstrap confidence intervals over images and a verdict per class: better, worse or within noise. "
        "The same as segfuse eval --pred A --pred B.",
    )
    add_arguments(parser, "compare")
    parser.set_defaults(run=run)


def _pairs(settings: Settings, skip_missing: bool):
    """The (gt, A) and (gt, B) pairs of the stems all three folders hold, in stem order."""
    pairings = [pair_folder(settings, pred, skip_missing) for pred in settings.preds]
    common = {pair.stem for pair in pairings[0].pairs} & {pair.stem for pair in pairings[1].pairs}
    pairs = tuple([pair for pair in pairing.pairs if pair.stem in common] for pairing in pairings)
    if len(pairs[0]) < 2:
        raise InputError(f"{settings.gt}: a bootstrap over images needs at least 2 images in all three folders, found {len(pairs[0])}")
    return pairs


def _counts(counted: list, num_classes: int):
    """Per-image TP, FP, FN ``(N, 3, C)`` int64 from eval's sparse per-image counts (misses are FN)."""
    import numpy as np
    import torch

    from segfuse.cli.eval_pairs import per_image_overlaps

    parts = []
    for start in range(0, len(counted), CHUNK):
        tp, fp, fn = per_image_overlaps(counted[start : start + CHUNK], num_classes)
        parts.append(torch.from_numpy(np.stack([tp, fp, fn], axis=1).astype(np.int64)))  # float64: exact below 2**53
    return torch.cat(parts)


def _compare(settings: Settings, args):
    """The comparison and the pairs; None on ranks other than 0 under torchrun."""
    from segfuse.cli.eval import _rank, mapped, read_all
    from segfuse.cli.eval_pairs import infer_num_classes
    from segfuse.metrics.compare import compare_counts

    pairs = _pairs(settings, args.skip_missing)
    joints = [read_all(side, settings.options, args) for side in pairs]
    if _rank() != 0:
        return None, pairs
    if settings.num_classes is None:
        size = infer_num_classes(joints[0] + joints[1], settings.options)
        settings.num_classes = size
        print(f"segfuse: --num-classes not given: inferred {size} from the data", file=sys.stderr)
    counted = [mapped(side_joints, side, settings)[0] for side_joints, side in zip(joints, pairs)]
    counts = [_counts(side, settings.num_classes) for side in counted]
    try:
        comparison = compare_counts(
            counts[0], counts[1], resamples=args.resamples, confidence=args.confidence, seed=args.seed,
            beta=args.beta, class_names=settings.class_names, convention=settings.convention,
            per_image=settings.per_image,
        )
    except ValueError as error:
        raise InputError(str(error)) from error
    misses = [int(sum(item.unpredicted for item in side)) for side in counted]
    for label, count in zip(settings.labels, misses):
        if count:
            print(f"segfuse: {label}: {count} prediction pixels hold the ignore value {settings.ignore_index}: "
                  "counted as misses of their true class", file=sys.stderr)
    return comparison, pairs


def _finite(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _document(comparison, settings: Settings, args, pairs) -> dict:
    from segfuse import __version__

    arguments = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    arguments["pred"] = [str(path) for path in args.pred]
    arguments.pop("run", None)
    return {
        "segfuse_version": __version__,
        "arguments": arguments,
        "gt": str(settings.gt),
        "models": {"A": {"name": settings.labels[0], "pred": str(settings.preds[0])},
                   "B": {"name": settings.labels[1], "pred": str(settings.preds[1])}},
        "delta": "B - A",
        "bounds": "null low / high: unbounded (a class undefined in too many resamples) or undefined (verdict absent)",
        "dataset": settings.preset.name if settings.preset else None,
        "num_classes": settings.num_classes,
        "ignore_index": settings.ignore_index,
        "reduce_zero_label": settings.options.reduce_zero_label,
        "label_mapping": "table" if settings.options.label_map else None,
        "map_pred": settings.options.map_pred,
        **_finite(comparison.to_dict()),
        "images": [pair.stem for pair in pairs[0]],
    }


def _csv(header, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _csv_files(comparison, pairs) -> dict[str, bytes]:
    keys = ("a", "b", "delta", "low", "high", "defined")
    header = ("score", *keys, "verdict")
    per_class = []
    for score, delta in comparison.per_class.items():
        columns = [getattr(delta, key).tolist() for key in keys]
        per_class += [[name, score, *values, verdict] for name, *values, verdict in zip(comparison.names(), *columns, delta.verdict)]
    means = [[score, *(float(getattr(delta, key)) for key in keys), delta.verdict] for score, delta in comparison.means.items()]
    images = zip((pair.stem for pair in pairs[0]), comparison.image_miou_a.tolist(), comparison.image_miou_b.tolist())
    return {
        "per_class.csv": _csv(("class", *header), per_class),
        "means.csv": _csv(header, means),
        "per_image.csv": _csv(("image", "miou_a", "miou_b", "delta"), [[s, a, b, b - a] for s, a, b in images]),
    }


def _examples(comparison, pairs, settings: Settings, args):
    """The worst images by B's per-image mIoU, and B's largest drops against A (masks mapped as counted)."""
    from segfuse.cli.eval_pairs import Lookups, mapped_pair
    from segfuse.report import ExampleSection, MaskExample, worst_images
    from segfuse.report.html import displayed

    miou_a, miou_b = comparison.image_miou_a.tolist(), comparison.image_miou_b.tolist()
    lookups = Lookups.build(settings.options, settings.num_classes)

    def example(index: int) -> MaskExample:
        maps = [mapped_pair(side[index], settings.options, settings.num_classes, lookups, view=displayed)
                for side in pairs]
        predictions = {label: pred for label, (_, pred) in zip(settings.labels, maps)}
        note = f"mIoU {settings.labels[0]} {100 * miou_a[index]:.2f}, {settings.labels[1]} {100 * miou_b[index]:.2f}"
        return MaskExample(pairs[0][index].stem, maps[0][0], predictions, note)

    worst = worst_images(miou_b, args.worst)
    drops = worst_images([b - a for a, b in zip(miou_a, miou_b)], args.worst)
    drops = [index for index in drops if miou_b[index] < miou_a[index]]
    sections = [ExampleSection(f"Worst images for {settings.labels[1]} (per-image mIoU)", [example(i) for i in worst])]
    if drops:
        title = f"Largest drops from {settings.labels[0]} to {settings.labels[1]} (per-image mIoU)"
        sections.append(ExampleSection(title, [example(i) for i in drops]))
    return sections


def _html(comparison, plot: bytes, settings: Settings, args, pairs) -> bytes:
    from segfuse import __version__
    from segfuse.cli.eval_html import REPORT_IGNORED, report_palette
    from segfuse.report import Figure, HtmlReport, comparison_means_table, comparison_table
    from segfuse.report.tables import score_label

    labels = settings.labels
    metadata = {
        "ground truth": settings.gt, f"A: {labels[0]}": settings.preds[0], f"B: {labels[1]}": settings.preds[1],
        "images": comparison.num_images,
        "dataset": settings.preset.name if settings.preset else "(none)",
        "convention": comparison.convention + (f", {comparison.statistic()} scores" if comparison.per_image else ""),
        "bootstrap": f"{comparison.resamples} paired resamples over images, seed {comparison.seed}, "
        f"{100 * comparison.confidence:g}% percentile intervals",
        "segfuse": __version__,
    }
    report = HtmlReport(
        title=f"segfuse compare: {labels[1]} against {labels[0]}",
        metadata=metadata,
        tables=[comparison_means_table(comparison, labels), comparison_table(comparison, args.score, labels)],
        figures=[Figure(f"Per-class {score_label(args.score, args.beta)} delta", plot)],
        examples=_examples(comparison, pairs, settings, args) if args.worst else [],
        class_names=[*comparison.names(), "(no prediction)"],
        palette=report_palette(settings.num_classes, settings.palette),
        ignore_index=REPORT_IGNORED,
    )
    return report.render().encode("utf-8")


def _write(comparison, document: dict, settings: Settings, args, pairs) -> None:
    from segfuse.report import comparison_plot
    from segfuse.cli.io_report import write_outputs

    plot = comparison_plot(comparison, args.score, settings.labels)
    page = None if settings.html is None else _html(comparison, plot, settings, args, pairs)
    files = {"comparison.json": (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")}
    files.update(_csv_files(comparison, pairs))
    files["per_class_delta.png"] = plot
    write_outputs(settings.out, files, settings.html, page)


def _print_table(comparison, settings: Settings, score: str) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    from segfuse.report import comparison_means_table, comparison_table

    for source in (comparison_table(comparison, score, settings.labels), comparison_means_table(comparison, settings.labels)):
        table = RichTable(title=source.title)
        for index, column in enumerate(source.columns):
            table.add_column(column, justify="left" if index in (0, len(source.columns) - 1) else "right", no_wrap=True)
        styles = {"better": "bold green", "worse": "bold red", "absent": "dim"}
        for cells, classes in zip(source.rows, source.cell_classes):
            if classes[0] == "mean":
                table.add_section()
            table.add_row(*cells, style=styles.get(classes[-1]))
        console = Console()
        width = Console(width=1 << 16).measure(table).maximum  # the table's natural width, unclamped
        (console if width <= console.width else Console(width=width)).print(table)
        if source.note:
            print(source.note)


def compare_folders(settings: Settings, args) -> int:
    """Compare the two --pred folders of ``settings``: table, JSON and report (``compare`` and ``eval``)."""
    comparison, pairs = _compare(settings, args)
    if comparison is None:  # not rank 0 under torchrun
        return 0
    document = _document(comparison, settings, args, pairs)
    if settings.out is not None or settings.html is not None:
        _write(comparison, document, settings, args, pairs)
    if args.json:
        print(json.dumps(document, indent=2, allow_nan=False))
        return 0
    _print_table(comparison, settings, args.score)
    if settings.out is not None:
        print(f"report written to {settings.out}", file=sys.stderr)
    if settings.html is not None and (settings.out is None or settings.html.parent.resolve() != settings.out.resolve()):
        print(f"HTML report written to {settings.html}", file=sys.stderr)
    return 0


def run(args) -> int:
    """Entry point of ``segfuse compare``: 0 on success, 2 on bad input."""
    try:
        return compare_folders(settings_from(args, "compare"), args)
    except InputError as error:
        return fail(str(error))

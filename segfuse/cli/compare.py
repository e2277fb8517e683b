"""``segfuse compare``: is model B better than model A on the same ground truth, beyond noise?

Pairs --gt with each --pred folder by file stem and counts each pair as ``segfuse eval``
does (``io_masks``, ``eval_pairs``), then calls :func:`segfuse.metrics.compare_counts`
(paired bootstrap over images) and prints, per class, A, B, the delta, its interval and
the verdict. With --out it writes comparison.json, per_class.csv, means.csv,
per_image.csv, per_class_delta.png and report.html (all or nothing); --html puts the page
elsewhere. Exit code 0 on success, 2 on bad input (one line naming the file and the
problem). torch, matplotlib and the counting code load only when the command runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from segfuse.cli.errors import InputError, fail

SCORES = ("iou", "dice", "fscore", "precision", "recall")
CHUNK = 256
DEFAULT_OUT = Path("segfuse-compare")


def _ignore_index(text: str):
    if text.lower() in ("none", "off"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two models' masks on the same ground truth, with bootstrap confidence intervals",
        description="Per-class and mean score deltas of model B against model A on the same images, with paired "
        "bootstrap confidence intervals over images and a verdict per class: better, worse or within noise.",
    )
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth masks (PNG or .npy)")
    parser.add_argument("--pred", type=Path, action="append", required=True, metavar="DIR",
                        help="predicted masks; give it twice: --pred A --pred B (B is compared against A)")
    parser.add_argument("--names", help="display names of the two models, 'A,B' (default: the folder names)")
    parser.add_argument("--num-classes", type=int, help="C; inferred from --class-names or the data when absent")
    parser.add_argument("--ignore-index", type=_ignore_index, default=255, help="label to skip (default 255; 'none')")
    parser.add_argument("--class-names", help="a file with one name per line, or a,b,c")
    parser.add_argument("--reduce-zero-label", action="store_true", help="mmseg: ground truth 0 -> ignore, others - 1")
    parser.add_argument("--beta", type=float, default=1.0, help="F-beta's beta (default 1)")
    parser.add_argument("--score", choices=SCORES, default="iou", help="score of the table and the plot (default iou)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level in (0, 1) (default 0.95)")
    parser.add_argument("--skip-missing", action="store_true", help="use only the images all three folders hold")
    parser.add_argument("--workers", type=int, help="reader processes (default min(cpu count, 8))")
    parser.add_argument("--worst", type=int, default=6, help="worst images shown in the HTML report (default 6)")
    parser.add_argument("--out", type=Path, help=f"report folder (default ./{DEFAULT_OUT}; none with --json)")
    parser.add_argument("--html", type=Path, help="write the HTML report here (default: report.html in --out)")
    parser.add_argument("--no-html", action="store_true", help="no HTML report")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of the table")
    parser.set_defaults(run=run)


@dataclass
class Settings:
    gt: Path
    preds: tuple[Path, Path]
    labels: tuple[str, str]
    class_names: list[str] | None
    num_classes: int | None
    out: Path | None
    html: Path | None


def _read_names(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the class names ({error})") from error


def _class_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    path = Path(text)
    names = _read_names(path) if path.is_file() else [name.strip() for name in text.split(",")]
    if not names or any(not name for name in names):
        raise InputError(f"{text}: --class-names needs a file with one name per line or a,b,c with no empty name")
    return names


def _labels(args) -> tuple[str, str]:
    if args.names is not None:
        labels = [name.strip() for name in args.names.split(",")]
        if len(labels) != 2 or not all(labels) or labels[0] == labels[1]:
            raise InputError(f"--names needs two different names 'A,B', got {args.names!r}")
        return labels[0], labels[1]
    first, second = (path.resolve().name or str(path) for path in args.pred)
    return (first, second) if first != second else ("A", "B")


def _check_numbers(args) -> None:
    if len(args.pred) != 2:
        raise InputError(f"--pred must be given exactly twice (model A, then model B), got {len(args.pred)}")
    if args.resamples < 1:
        raise InputError(f"--resamples must be >= 1, got {args.resamples}")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must lie in (0, 1), got {args.confidence}")
    if not args.beta > 0:
        raise InputError(f"--beta must be > 0, got {args.beta}")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    if args.worst < 0:
        raise InputError(f"--worst must be >= 0, got {args.worst}")
    if args.num_classes is not None and args.num_classes < 1:
        raise InputError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.reduce_zero_label and args.ignore_index is None:
        raise InputError("--reduce-zero-label needs an --ignore-index for the former label 0")


def _settings(args) -> Settings:
    _check_numbers(args)
    names = _class_names(args.class_names)
    if names and args.num_classes is not None and len(names) != args.num_classes:
        raise InputError(f"--class-names has {len(names)} names but --num-classes is {args.num_classes}")
    out = args.out if args.out is not None or args.json else DEFAULT_OUT
    html = None if args.no_html else args.html if args.html is not None else (out / "report.html" if out else None)
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    if html is not None and html.is_dir():
        raise InputError(f"{html}: the HTML report path is a folder")
    num_classes = args.num_classes or (len(names) if names else None)
    return Settings(args.gt, (args.pred[0], args.pred[1]), _labels(args), names, num_classes, out, html)


def _pairs(settings: Settings, skip_missing: bool):
    """The (gt, A) and (gt, B) pairs of the stems all three folders hold, in stem order."""
    from segfuse.cli.io_masks import pair_masks

    pairings = [pair_masks(settings.gt, pred) for pred in settings.preds]
    for pairing, pred in zip(pairings, settings.preds):
        missing = pairing.missing_pred or pairing.missing_gt
        if missing and not skip_missing:
            side, folder = ("prediction", pred) if pairing.missing_pred else ("ground truth", settings.gt)
            more = f" (and {len(missing) - 1} more; --skip-missing skips them)" if len(missing) > 1 else ""
            raise InputError(f"{missing[0]}: no {side} with the stem {missing[0].stem!r} (.png or .npy) in {folder}{more}")
    common = {pair.stem for pair in pairings[0].pairs} & {pair.stem for pair in pairings[1].pairs}
    pairs = tuple([pair for pair in pairing.pairs if pair.stem in common] for pairing in pairings)
    if len(pairs[0]) < 2:
        raise InputError(f"{settings.gt}: a bootstrap over images needs at least 2 images in all three folders, found {len(pairs[0])}")
    return pairs


def _counts(counted: list, num_classes: int):
    """Per-image TP, FP, FN ``(N, 3, C)`` from eval's sparse per-image confusion matrices."""
    import numpy as np
    import torch

    from segfuse.metrics.compare import image_counts

    parts = []
    for start in range(0, len(counted), CHUNK):
        batch = np.stack([item.dense(num_classes) for item in counted[start : start + CHUNK]])
        parts.append(image_counts(torch.from_numpy(batch)))
    return torch.cat(parts)


def _compare(settings: Settings, args):
    from segfuse.cli.eval_pairs import CountOptions, count_pairs, default_workers
    from segfuse.metrics.compare import compare_counts

    pairs = _pairs(settings, args.skip_missing)
    options = CountOptions(settings.num_classes, args.ignore_index, args.reduce_zero_label)
    workers = args.workers or default_workers()
    counted = [count_pairs(side, options, workers, progress=not args.json) for side in pairs]
    num_classes = settings.num_classes or max(item.size for side in counted for item in side)
    if settings.num_classes is None:
        print(f"segfuse: --num-classes not given: inferred {num_classes} from the data", file=sys.stderr)
    counts = [_counts(side, num_classes) for side in counted]
    try:
        comparison = compare_counts(
            counts[0], counts[1], resamples=args.resamples, confidence=args.confidence, seed=args.seed,
            beta=args.beta, class_names=settings.class_names,
        )
    except ValueError as error:
        raise InputError(str(error)) from error
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
        "ignore_index": args.ignore_index,
        "reduce_zero_label": args.reduce_zero_label,
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
    """The worst images by B's per-image mIoU, and B's largest drops against A."""
    from segfuse.cli.io_masks import read_mask, reduce_zero_label
    from segfuse.report import ExampleSection, MaskExample, worst_images

    miou_a, miou_b = comparison.image_miou_a.tolist(), comparison.image_miou_b.tolist()

    def example(index: int) -> MaskExample:
        gt = read_mask(pairs[0][index].gt)
        if args.reduce_zero_label:
            gt = reduce_zero_label(gt, args.ignore_index)
        predictions = {label: read_mask(side[index].pred) for label, side in zip(settings.labels, pairs)}
        note = f"mIoU {settings.labels[0]} {100 * miou_a[index]:.2f}, {settings.labels[1]} {100 * miou_b[index]:.2f}"
        return MaskExample(pairs[0][index].stem, gt, predictions, note)

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
    from segfuse.report import Figure, HtmlReport, comparison_means_table, comparison_table
    from segfuse.report.tables import score_label

    labels = settings.labels
    metadata = {
        "ground truth": settings.gt, f"A: {labels[0]}": settings.preds[0], f"B: {labels[1]}": settings.preds[1],
        "images": comparison.num_images,
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
        class_names=comparison.names(),
        ignore_index=args.ignore_index,
    )
    return report.render().encode("utf-8")


def _write(comparison, document: dict, settings: Settings, args, pairs) -> None:
    from segfuse.report import comparison_plot
    from segfuse.report.files import write_file_atomically, write_folder_atomically

    plot = comparison_plot(comparison, args.score, settings.labels)
    page = None if settings.html is None else _html(comparison, plot, settings, args, pairs)
    files = {"comparison.json": (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")}
    files.update(_csv_files(comparison, pairs))
    files["per_class_delta.png"] = plot
    inside = settings.out is not None and page is not None and settings.html.parent.resolve() == settings.out.resolve()
    if inside:
        files[settings.html.name] = page
    try:
        if settings.out is not None:
            write_folder_atomically(settings.out, files)
        if page is not None and not inside:
            write_file_atomically(settings.html, page)
    except OSError as error:
        raise InputError(f"{error.filename or settings.out}: cannot write the report ({error.strerror or error})") from error


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


def _run(args) -> int:
    settings = _settings(args)
    comparison, pairs = _compare(settings, args)
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
        return _run(args)
    except InputError as error:
        return fail(str(error))

"""``segfuse coco``: COCO (or LVIS) AP / AR of a results file against a ground-truth file.

Prints pycocotools' summary (lvis' with --lvis), the extra thresholds and a per-category
table with the best-F1 operating point of each class (or JSON with --json); --out DIR
writes results.json, CSV tables of every detection and ground truth and the plots
(``segfuse.coco.report``). Never imports torch. Exit 0 on success, 2 on bad input, 130
when interrupted (Ctrl-C: one line, no traceback; worker processes ignore the signal).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from segfuse.cli.errors import InputError, fail

EXIT_INTERRUPTED = 130


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "coco", help="COCO / LVIS mask, box or boundary AP of a results file (pycocotools' and lvis' numbers)",
        description="COCO-style AP of a results file against a ground-truth file: pycocotools' numbers "
                    "(--lvis: the lvis package's), the per-class operating points and an optional report.")
    parser.add_argument("--gt", required=True, help="COCO (or LVIS) ground-truth JSON")
    parser.add_argument("--dt", required=True, help="results JSON (list of {image_id, category_id, score, ...})")
    parser.add_argument("--iou-type", default="segm", choices=("segm", "bbox", "boundary"),
                        help="mask IoU, box IoU or Boundary IoU (default segm)")
    parser.add_argument("--iou-thrs", type=float, nargs="+", default=None, metavar="T",
                        help="IoU thresholds (default 0.50:0.05:0.95)")
    parser.add_argument("--max-dets", type=int, nargs="+", default=None, metavar="N",
                        help="detection caps per image and category (default 1 10 100; --lvis: one cap per image, 300)")
    parser.add_argument("--lvis", action="store_true", help="LVIS rules (federated annotation, APr / APc / APf)")
    parser.add_argument("--class-agnostic", action="store_true", help="ignore categories (pycocotools' useCats=0)")
    parser.add_argument("--image-ids", default=None, metavar="IDS", help="evaluate only these image ids (1,2,3)")
    parser.add_argument("--category-ids", default=None, metavar="IDS", help="evaluate only these category ids")
    parser.add_argument("--min-score", type=float, default=None, metavar="S", help="drop results scored below S first")
    parser.add_argument("--dilation-ratio", type=float, default=0.02, metavar="R",
                        help="Boundary IoU band width over the image diagonal (default 0.02)")
    parser.add_argument("--analysis-iou", type=float, default=None, metavar="T",
                        help="IoU threshold of the per-class table and flags (default 0.5, or the smallest threshold)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes over image shards (default 1: in this process; more helps only on many free cores)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write results.json, CSV tables and plots to this folder")
    parser.add_argument("--no-plots", action="store_true", help="with --out: skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("segfuse: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader closed the pipe (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args) -> int:
    from segfuse.coco import evaluate

    try:
        for name in ("gt", "dt"):
            if not Path(getattr(args, name)).is_file():
                raise InputError(f"--{name} file not found: {getattr(args, name)}")
        if args.out is not None:
            _check_out(args.out)
        result = evaluate(args.gt, args.dt, iou_type=args.iou_type, iou_thresholds=args.iou_thrs,
                          max_dets=args.max_dets, mode="lvis" if args.lvis else "coco",
                          use_cats=not args.class_agnostic, image_ids=_ids(args.image_ids, "--image-ids"),
                          category_ids=_ids(args.category_ids, "--category-ids"), min_score=args.min_score,
                          dilation_ratio=args.dilation_ratio, workers=args.workers,
                          progress=False if args.no_progress else None)
        analysis = result.analysis(args.analysis_iou)
    except (ValueError, TypeError) as error:
        return fail(str(error).splitlines()[0] if str(error) else type(error).__name__)
    if args.json:
        from segfuse.coco.report import report_document

        print(json.dumps(report_document(result, analysis), indent=2))
    else:
        _print_report(result, analysis)
    if args.out is not None:
        from segfuse.coco.report import write_report

        try:
            write_report(result, args.out, analysis, plots=not args.no_plots)
        except OSError as error:
            return fail(f"cannot write to --out {args.out}: {error.strerror or error}")
        except ValueError as error:
            return fail(str(error))
        if not args.json:
            print(f"report written to {args.out}")
    return 0


def _check_out(out: Path) -> None:
    """Fail before the evaluation when --out cannot become a writable folder."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    existing = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {existing} is not writable")


def _ids(text, option: str):
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{option} must be integer ids separated by commas, got {text!r}") from None


def _print_report(result, analysis) -> None:
    print(result.summary())
    print()
    _print_table(result, analysis)
    overall = analysis.overall
    print(f"overall at IoU {analysis.iou_threshold:.2f}: one score threshold {_fmt(overall['score_threshold'])} "
          f"maximises the macro F1 {_fmt(overall['f1'])} (precision {_fmt(overall['precision'])}, "
          f"recall {_fmt(overall['recall'])}); tp {overall['tp']}, fp {overall['fp']}, fn {overall['fn']}, "
          f"mean IoU of tp pairs {_fmt(overall['mean_iou'])}")


def _print_table(result, analysis) -> None:
    """Per-category table; every cell printed in full whatever the terminal width (never '0.…')."""
    from rich.console import Console
    from rich.table import Table

    ap_keys = ["AP"] + [k for k in ("AP50", "AP75") if k in result.params.threshold_keys]
    headers = ["id", "category", *ap_keys, "n_gt", "P", "R", "F1", "score thr"]
    rows = [[str(r["id"]), str(r["name"]), *[_fmt(r[k]) for k in ap_keys], str(r["n_gt"]), _fmt(r["precision"]),
             _fmt(r["recall"]), _fmt(r["f1"]), _fmt(r["score_threshold"])] for r in analysis.per_class]
    title = f"Per category (AP over the IoU thresholds; P / R / F1 at each class's best-F1 score, IoU {analysis.iou_threshold:.2f})"
    table = Table(title=title, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 1 else "right", no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*row)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    needed = sum(widths) + 3 * len(widths) + 1
    console = Console(soft_wrap=False)
    console = Console(width=max(console.width, needed), soft_wrap=False, highlight=False)
    console.print(table)


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

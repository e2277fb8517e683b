"""``segfuse coco``: COCO AP / AR of a results file against a ground-truth file.

Prints pycocotools' 12-line summary, the extra thresholds and a per-category table (or JSON
with --json); --out DIR writes results.json and one precision-recall plot per IoU
threshold, each through a temporary name then a rename. Exit 0 on success, 2 on bad input.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from segfuse.cli.errors import InputError, fail


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("coco", help="COCO-style mask / box AP of a results file (pycocotools' numbers)")
    parser.add_argument("--gt", required=True, help="COCO ground-truth JSON")
    parser.add_argument("--dt", required=True, help="results JSON (list of {image_id, category_id, score, ...})")
    parser.add_argument("--iou-type", default="segm", choices=("segm", "bbox"))
    parser.add_argument("--iou-thrs", type=float, nargs="+", default=None, metavar="T", help="IoU thresholds")
    parser.add_argument("--max-dets", type=int, nargs="+", default=[1, 10, 100], metavar="N")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", type=Path, default=None, help="write results.json and PR plots here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


def run(args) -> int:
    from segfuse.coco import evaluate

    try:
        for name in ("gt", "dt"):
            if not Path(getattr(args, name)).is_file():
                raise InputError(f"--{name} file not found: {getattr(args, name)}")
        result = evaluate(args.gt, args.dt, iou_type=args.iou_type, iou_thresholds=args.iou_thrs,
                          max_dets=args.max_dets, progress=False if args.no_progress else None)
    except (ValueError, TypeError) as error:
        return fail(str(error).splitlines()[0] if str(error) else type(error).__name__)
    if args.json:
        print(json.dumps(_json_ready(result.to_dict()), indent=2))
    else:
        _print_report(result)
    if args.out is not None:
        try:
            _write_outputs(result, args.out)
        except OSError as error:
            return fail(f"cannot write to --out {args.out}: {error.strerror or error}")
    return 0


def _print_report(result) -> None:
    from rich.console import Console
    from rich.table import Table

    print(result.summary())
    table = Table(title="Per-category AP")
    table.add_column("id", justify="right")
    table.add_column("category")
    keys = ["AP"] + result.params.threshold_keys
    for key in keys:
        table.add_column(key, justify="right")
    for cat_id, row in result.per_category.items():
        table.add_row(str(cat_id), row["name"], *[_fmt(row[k]) for k in keys])
    Console().print(table)


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _json_ready(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def _write_outputs(result, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "results.json", lambda path: Path(path).write_text(
        json.dumps(_json_ready(result.to_dict()), indent=2), encoding="utf-8"))
    for t, key in enumerate(result.params.threshold_keys):
        _atomic_write(out / f"pr_{key}.png", lambda path, t=t, key=key: _plot_pr(result, t, key, path))


def _atomic_write(target: Path, write) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _plot_pr(result, t: int, key: str, path: str) -> None:
    """Mean precision over categories (defined ones) vs recall, area "all", largest max_dets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from segfuse.coco._params import recall_thresholds

    area = result.params.area_labels.index("all") if "all" in result.params.area_labels else 0
    block = result.precision[t, :, :, area, -1]  # (R, K)
    defined = block > -1
    with np.errstate(invalid="ignore"):
        curve = np.where(defined, block, 0).sum(axis=1) / defined.sum(axis=1)
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.plot(recall_thresholds(), curve)
    axis.set(xlabel="recall", ylabel="precision (mean over categories)", xlim=(0, 1), ylim=(0, 1.02),
             title=f"{key} = {result.stats[key]:.3f} ({result.params.iou_type})")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)

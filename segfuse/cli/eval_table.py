"""The tables that ``segfuse eval`` prints, in percent like mmseg.

Convention:
    Nothing is ever cut: in a terminal wide enough the table is drawn with rich; when
    stdout is piped or the terminal is too narrow, it is printed as plain aligned rows
    (long lines wrap in the terminal instead of being truncated). An undefined score (NaN)
    reads ``n/a``. The F-beta column is shown only when beta != 1 (at beta = 1 it equals
    Dice). The mean row has no pixel count; the valid pixels are in the summary line.
"""

from __future__ import annotations

import shutil
import sys

HEADERS = {"iou": "IoU", "dice": "Dice", "fscore": "F-beta", "precision": "Precision", "recall": "Recall"}
MEAN_NAMES = {"iou": "miou", "dice": "mdice", "fscore": "mfscore", "precision": "mprecision", "recall": "mrecall"}
UNDEFINED = "n/a"


def percent(value: float) -> str:
    value = float(value)
    return UNDEFINED if value != value else f"{100 * value:.2f}"


def score_rows(scores) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, one row per class (scores in %, ground-truth pixels) and the mean row, as text."""
    shown = [name for name in HEADERS if name != "fscore" or scores.beta != 1]
    header = ["Class", *(f"F{scores.beta:g}" if name == "fscore" else HEADERS[name] for name in shown), "Pixels"]
    support = (scores.confusion_matrix.sum(1) + scores.misses).tolist()
    rows = [[name, *(percent(getattr(scores, s)[c]) for s in shown), str(support[c])] for c, name in enumerate(scores.names())]
    mean = ["mean", *(percent(getattr(scores, MEAN_NAMES[s])) for s in shown), ""]
    return header, rows, mean


def distance_text(value: float) -> str:
    value = float(value)
    if value != value:
        return UNDEFINED
    return "inf" if value == float("inf") else f"{value:.2f}"


def distance_rows(distances, names) -> tuple[list[str], list[list[str]], list[str]]:
    """Boundary IoU and NSD in %, HD, HD95, ASSD in the spacing's unit, the empty cases (gt / pred / both)."""
    shown = [name for name in distances.names if not name.startswith("msd_")]
    fraction = {name: name == "boundary_iou" or name.startswith("nsd@") for name in shown}
    labels = {"boundary_iou": "BIoU", "hd": "HD", "hd95": "HD95", "assd": "ASSD"}
    header = ["Class", *(labels.get(name, name.replace("nsd@", "NSD@")) for name in shown)]
    counts = bool(distances.empty)
    if counts:
        header.append("empty gt/pred/both")

    def cell(name, value):
        return percent(value) if fraction[name] else distance_text(value)

    rows = []
    for c, class_name in enumerate(names):
        row = [class_name, *(cell(name, distances.per_class[name][c]) for name in shown)]
        if counts:
            scored = distances.empty["images"][c] > 0  # class 0 is not scored without --include-background
            row.append("/".join(str(int(distances.empty[key][c])) for key in ("gt_empty", "pred_empty", "both_empty"))
                       if scored else "-")
        rows.append(row)
    mean = ["mean", *(cell(name, distances.means[name]) for name in shown)] + ([""] if counts else [])
    return header, rows, mean


def official_rows(official) -> tuple[list[str], list[list[str]], list[str]]:
    """The Cityscapes benchmark's classes and categories (IoU and iIoU, %), with their means."""
    header = ["Class / category", "IoU", "iIoU"]
    rows = [[name, percent(official.class_iou[name]), percent(official.class_iiou[name])] for name in official.class_iou]
    rows.append(["", "", ""])
    rows += [[f"[{name}]", percent(official.category_iou[name]), percent(official.category_iiou[name])]
             for name in official.category_iou]
    mean = ["mean: classes / categories", f"{percent(official.miou)} / {percent(official.category_miou)}",
            f"{percent(official.miiou)} / {percent(official.category_miiou)}"]
    return header, rows, mean


def plain_table(header: list[str], rows: list[list[str]], mean: list[str]) -> str:
    """Aligned plain-text rows: first column left, numbers right; no cell is ever shortened."""
    table = [header, *rows, mean]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def line(row):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, rows), rule, line(mean)])


def _rich_table(title: str, header: list[str], rows: list[list[str]], mean: list[str]):
    from rich.table import Table

    table = Table(title=title)
    table.add_column(header[0], no_wrap=True)
    for name in header[1:]:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    table.add_section()
    table.add_row(*mean, style="bold")
    return table


def _fits(header, rows, mean, width: int) -> bool:
    table = [header, *rows, mean]
    needed = sum(max(len(row[i]) for row in table) + 3 for i in range(len(header))) + 1
    return needed <= width


def print_table(title: str, header, rows, mean, stream=None) -> None:
    stream = stream or sys.stdout
    width = shutil.get_terminal_size((80, 24)).columns
    if stream.isatty() and _fits(header, rows, mean, width):
        from rich.console import Console

        Console(file=stream).print(_rich_table(title, header, rows, mean))
    else:
        print(f"{title}\n{plain_table(header, rows, mean)}", file=stream)


def summary_line(scores) -> str:
    valid = int(scores.confusion_matrix.sum() + scores.misses.sum())
    return (f"aAcc {percent(scores.acc)}  mAcc {percent(scores.macc)}  fwIoU {percent(scores.fwiou)}  "
            f"valid pixels {valid}")


def print_scores(scores, official=None, stream=None, distances=None) -> None:
    """The per-class table, the summary line, the distance table and, for Cityscapes, the benchmark's tables."""
    stream = stream or sys.stdout
    convention = getattr(scores, "convention", "segfuse")
    title = "segfuse eval (%)" + ("" if convention == "segfuse" else f", {convention} convention")
    if getattr(scores, "per_image", False):
        title += f", per-image average ({scores.per_image_average})"
    print_table(title, *score_rows(scores), stream=stream)
    print(summary_line(scores), file=stream)
    if distances is not None:
        print(file=stream)
        title = f"Boundary and surface metrics (mean over images; BIoU and NSD in %, distances in {distances.unit()})"
        print_table(title, *distance_rows(distances, scores.names()), stream=stream)
    if official is not None:
        print(file=stream)
        print_table("Cityscapes benchmark (%), as evalPixelLevelSemanticLabeling", *official_rows(official), stream=stream)

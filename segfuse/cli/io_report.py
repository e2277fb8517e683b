"""Writing the ``segfuse eval`` report: JSON, CSV tables and plots, all or nothing.

Convention:
    Files are written into a fresh temporary folder beside ``--out`` and moved into place
    only when every file is complete (a new folder is renamed; an existing one gets each
    file by an atomic ``os.replace``), so a failed or interrupted run leaves no partial
    report. An undefined score (NaN) is ``null`` in JSON and ``n/a`` in CSV.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from segfuse.cli.errors import InputError
from segfuse.cli.eval_scores import CLASS_SCORES, MEAN_NAMES

DATA_FILES = ("metrics.json", "per_class.csv", "confusion_matrix.csv", "per_image.csv")
PLOT_FILES = ("per_class_iou.png", "confusion_matrix.png")
REPORT_FILES = DATA_FILES + PLOT_FILES
GLOBAL_SCORES = (*MEAN_NAMES.values(), "acc", "macc", "fwiou")
UNDEFINED = "n/a"


@dataclass
class ReportRows:
    """per_image.csv: the header and one row of cells (text or numbers) per image."""

    header: list[str]
    rows: list[list]


def _finite_or_none(value):
    value = float(value)
    return None if math.isnan(value) else value


def _plain(value):
    """JSON-ready: NaN -> None, nested dicts and lists converted."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value


def metrics_document(scores, metadata: dict, official=None) -> dict:
    """The metrics.json content: metadata, the means, per-class scores with pixel counts, the matrix.

    ``official`` (a ``CityscapesScores``) adds the benchmark's tables under "cityscapes".
    """
    support = (scores.confusion_matrix.sum(1) + scores.misses).tolist()
    predicted = scores.confusion_matrix.sum(0).tolist()
    misses = scores.misses.tolist()
    per_class = {
        name: {
            **{score: _finite_or_none(getattr(scores, score)[c]) for score in CLASS_SCORES},
            "support": int(support[c]),
            "predicted": int(predicted[c]),
            "unpredicted": int(misses[c]),
        }
        for c, name in enumerate(scores.names())
    }
    document = {
        **metadata,
        "class_names": scores.names(),
        "metrics": {name: _finite_or_none(getattr(scores, name)) for name in GLOBAL_SCORES},
        "per_class": per_class,
        "confusion_matrix": scores.confusion_matrix.tolist(),
    }
    if official is not None:
        document["cityscapes"] = _plain(official.to_dict())
    return document


def metrics_json(document: dict) -> str:
    """metrics.json's text: indented, with one line per confusion-matrix row (NaN must be None already)."""
    matrix = document.get("confusion_matrix")
    if matrix is None:
        return json.dumps(document, indent=2, allow_nan=False) + "\n"
    marker = "@@confusion_matrix@@"
    text = json.dumps({**document, "confusion_matrix": marker}, indent=2, allow_nan=False)
    rows = ",\n    ".join(json.dumps(row) for row in matrix)  # the C encoder: fast at 150+ classes
    return text.replace(json.dumps(marker), f"[\n    {rows}\n  ]" if matrix else "[]") + "\n"


def _cell(value):
    return UNDEFINED if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _write_csv(path: Path, header: Sequence[str], rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[_cell(value) for value in row] for row in rows])


def _write_files(folder: Path, scores, document: dict, per_image: ReportRows, plots: bool, palette) -> None:
    (folder / "metrics.json").write_text(metrics_json(document))
    names = scores.names()
    columns = ("class", *CLASS_SCORES, "support", "predicted", "unpredicted")
    _write_csv(folder / "per_class.csv", columns, [[name, *(document["per_class"][name][c] for c in columns[1:])] for name in names])
    matrix = scores.confusion_matrix.tolist()
    _write_csv(folder / "confusion_matrix.csv", ["truth\\pred", *names], [[n, *r] for n, r in zip(names, matrix)])
    with (folder / "per_image.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(per_image.header)
        writer.writerows(per_image.rows)
    if plots:
        from segfuse.cli.io_plots import plot_confusion_matrix, plot_per_class

        plot_per_class(folder / "per_class_iou.png", names, scores.iou.tolist(), float(scores.miou), palette)
        plot_confusion_matrix(folder / "confusion_matrix.png", names, scores.confusion_matrix, scores.misses)


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.rename(staging, out)
        return
    for name in REPORT_FILES:
        if (staging / name).exists():
            os.replace(staging / name, out / name)
        elif (out / name).exists():  # a plot of an earlier run would not match these numbers
            (out / name).unlink()
    staging.rmdir()


def _use_umask(folder: Path) -> None:
    """mkdtemp makes the folder private (0700); give it the permissions mkdir would."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)


def write_report(out: Path, scores, document: dict, per_image: ReportRows, plots: bool = True, palette=None) -> None:
    """Write the report files to ``out`` atomically (see the module Convention)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _use_umask(staging)
        _write_files(staging, scores, document, per_image, plots, palette)
        _move_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

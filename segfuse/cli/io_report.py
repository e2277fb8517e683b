"""Writing the ``segfuse eval`` report: JSON, CSV tables and plots, all or nothing.

Convention:
    Files are written into a fresh temporary folder beside ``--out`` and moved into place
    only when every file is complete (a new folder is renamed; an existing one gets each
    file by an atomic ``os.replace``), so a failed run leaves no partial report. NaN
    (an undefined score) is ``null`` in JSON and ``nan`` in CSV.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from segfuse.cli.errors import InputError
from segfuse.cli.io_plots import plot_confusion_matrix, plot_per_class
from segfuse.metrics.scores import CLASS_SCORES, MEAN_NAMES, SemanticScores

REPORT_FILES = (
    "metrics.json",
    "per_class.csv",
    "confusion_matrix.csv",
    "per_image.csv",
    "per_class_iou.png",
    "confusion_matrix.png",
)
GLOBAL_SCORES = (*MEAN_NAMES.values(), "acc", "macc", "fwiou")


def _finite_or_none(value: float):
    return None if math.isnan(value) else value


def metrics_document(scores: SemanticScores, metadata: dict) -> dict:
    """The metrics.json content: metadata, the means and the per-class scores with pixel counts."""
    support = scores.confusion_matrix.sum(1).tolist()
    predicted = scores.confusion_matrix.sum(0).tolist()
    per_class = {
        name: {
            **{score: _finite_or_none(float(getattr(scores, score)[c])) for score in CLASS_SCORES},
            "support": support[c],
            "predicted": predicted[c],
        }
        for c, name in enumerate(scores.names())
    }
    return {
        **metadata,
        "class_names": scores.names(),
        "metrics": {name: _finite_or_none(float(getattr(scores, name))) for name in GLOBAL_SCORES},
        "per_class": per_class,
        "confusion_matrix": scores.confusion_matrix.tolist(),
    }


def _write_csv(path: Path, header: Sequence[str], rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_files(folder: Path, scores: SemanticScores, document: dict, per_image: list[dict]) -> None:
    (folder / "metrics.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    names = scores.names()
    columns = ("class", *CLASS_SCORES, "support", "predicted")
    rows = [[name, *(document["per_class"][name][c] for c in columns[1:])] for name in names]
    _write_csv(folder / "per_class.csv", columns, [["nan" if v is None else v for v in row] for row in rows])
    matrix = scores.confusion_matrix.tolist()
    _write_csv(folder / "confusion_matrix.csv", ["truth\\pred", *names], [[n, *r] for n, r in zip(names, matrix)])
    header = list(per_image[0]) if per_image else ["image"]
    _write_csv(folder / "per_image.csv", header, [[row[key] for key in header] for row in per_image])
    plot_per_class(folder / "per_class_iou.png", names, scores.iou.tolist(), float(scores.miou))
    plot_confusion_matrix(folder / "confusion_matrix.png", names, scores.confusion_matrix)


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.rename(staging, out)
        return
    for name in REPORT_FILES:
        os.replace(staging / name, out / name)
    staging.rmdir()


def _use_umask(folder: Path) -> None:
    """mkdtemp makes the folder private (0700); give it the permissions mkdir would."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)


def write_report(out: Path, scores: SemanticScores, document: dict, per_image: list[dict]) -> None:
    """Write the report files to ``out`` atomically (see the module Convention)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _use_umask(staging)
        _write_files(staging, scores, document, per_image)
        _move_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

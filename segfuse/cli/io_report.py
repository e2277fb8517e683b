"""Writing the ``segfuse eval`` report: JSON, CSV tables, plots and the HTML page, all or nothing.

Convention:
    Every file is built in memory, then written into a fresh temporary folder beside
    ``--out`` and moved into place only when every file is complete (a new folder is
    renamed; an existing one gets each file by an atomic ``os.replace``, and report files of
    an earlier run that this run does not write, such as its plots, are removed), so a
    failed or interrupted run leaves no partial report. An undefined score (NaN) is
    ``null`` in JSON and ``n/a`` in CSV; an infinite distance (a class empty on one side)
    is the string ``"inf"`` in JSON and ``inf`` in CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from segfuse.cli.errors import InputError
from segfuse.metrics.scores import CLASS_SCORES, MEAN_SCORES

DATA_FILES = ("metrics.json", "per_class.csv", "confusion_matrix.csv", "per_image.csv")
PLOT_FILES = ("per_class_iou.png", "confusion_matrix.png")
HTML_FILE = "report.html"
DISTANCE_PLOT = "distances.png"
REPORT_FILES = DATA_FILES + PLOT_FILES + (HTML_FILE,)
ALL_FILES = REPORT_FILES + (DISTANCE_PLOT,)
GLOBAL_SCORES = MEAN_SCORES
UNDEFINED = "n/a"
EMPTY_COUNTS = ("gt_empty", "pred_empty", "both_empty")


@dataclass
class ReportRows:
    """per_image.csv: the header and one row of cells (text or numbers) per image."""

    header: list[str]
    rows: list[list]


def json_number(value):
    """A float for JSON: NaN -> None, +-inf -> "inf" / "-inf"."""
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _plain(value):
    """JSON-ready: NaN -> None, inf -> "inf", nested dicts and lists converted."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        return json_number(value)
    return value


def _distance_sections(distances, names: list[str]) -> dict:
    """metrics.json's "boundary" and "surface" sections (settings, means, per class, empty counts)."""
    described = distances.options.describe()
    sections = {}
    if "boundary_iou" in distances.per_class:
        sections["boundary"] = {
            **described["boundary"],
            "miou": json_number(distances.means["boundary_iou"]),
            "miou_dataset": json_number(distances.boundary_dataset_mean),
            "per_class": {name: {"iou": json_number(distances.per_class["boundary_iou"][c]),
                                 "iou_dataset": json_number(distances.boundary_dataset[c])}
                          for c, name in enumerate(names)},
        }
    surface_names = distances.surface_names
    if surface_names:
        per_class = {}
        for c, name in enumerate(names):
            entry = {score: json_number(distances.per_class[score][c]) for score in surface_names}
            entry.update({key: int(distances.empty[key][c]) for key in ("images", *EMPTY_COUNTS)})
            per_class[name] = entry
        sections["surface"] = {
            **described["surface"],
            "mean": {score: json_number(distances.means[score]) for score in surface_names},
            "per_class": per_class,
        }
    sections["distance_spacing"] = described["spacing"]
    sections["distance_spacings_used"] = sorted({spacing for spacing in distances.spacings if spacing is not None})[:10]
    sections["distance_unit"] = distances.unit()
    return sections


def metrics_document(scores, metadata: dict, official=None, distances=None) -> dict:
    """The metrics.json content: metadata, the means, per-class scores with pixel counts, the matrix.

    ``official`` (a ``CityscapesScores``) adds the benchmark's tables under "cityscapes";
    ``distances`` (an ``eval_distances.DistanceReport``) adds "boundary" / "surface".
    """
    support = (scores.confusion_matrix.sum(1) + scores.misses).tolist()
    predicted = scores.confusion_matrix.sum(0).tolist()
    misses = scores.misses.tolist()
    per_class = {
        name: {
            **{score: json_number(getattr(scores, score)[c]) for score in CLASS_SCORES},
            "support": int(support[c]),
            "predicted": int(predicted[c]),
            "unpredicted": int(misses[c]),
        }
        for c, name in enumerate(scores.names())
    }
    document = {
        **metadata,
        "convention": scores.convention,
        "per_image_average": scores.per_image_average,
        "class_names": scores.names(),
        "metrics": {name: json_number(getattr(scores, name)) for name in GLOBAL_SCORES},
        "per_class": per_class,
        "confusion_matrix": scores.confusion_matrix.tolist(),
    }
    if official is not None:
        document["cityscapes"] = _plain(official.to_dict())
    if distances is not None:
        document.update(_distance_sections(distances, scores.names()))
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


def csv_bytes(header: Sequence[str], rows, undefined: bool = True) -> bytes:
    """CSV text (UTF-8); with ``undefined`` None / NaN cells read n/a."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[_cell(value) for value in row] for row in rows] if undefined else rows)
    return buffer.getvalue().encode("utf-8")


def _distance_columns(distances) -> list[str]:
    if distances is None:
        return []
    columns = list(distances.names)
    return columns + (list(EMPTY_COUNTS) if distances.surface_names else [])


def _distance_cell(distances, column: str, c: int):
    if column in EMPTY_COUNTS:
        return int(distances.empty[column][c])
    return float(distances.per_class[column][c])


def data_files(scores, document: dict, per_image: ReportRows, distances=None) -> dict[str, bytes]:
    """metrics.json, per_class.csv, confusion_matrix.csv and per_image.csv."""
    names = scores.names()
    columns = ("class", *CLASS_SCORES, "support", "predicted", "unpredicted")
    extra = _distance_columns(distances)
    per_class = [[name, *(document["per_class"][name][c] for c in columns[1:]),
                  *(_distance_cell(distances, column, c) for column in extra)] for c, name in enumerate(names)]
    matrix = scores.confusion_matrix.tolist()
    return {
        "metrics.json": metrics_json(document).encode("utf-8"),
        "per_class.csv": csv_bytes((*columns, *extra), per_class),
        "confusion_matrix.csv": csv_bytes(["truth\\pred", *names], [[n, *r] for n, r in zip(names, matrix)]),
        "per_image.csv": csv_bytes(per_image.header, per_image.rows, undefined=False),
    }


def write_outputs(out: Path | None, files: Mapping[str, bytes], html: Path | None = None, page: bytes | None = None,
                  stale: Sequence[str] = ()) -> None:
    """The report folder ``out`` (when given) all or nothing, and the page ``html`` (when
    built): among the folder's files when it lies in ``out``, else written on its own.

    ``stale``: report files of an earlier run that this run does not write are removed
    from ``out``. An unwritable path is an InputError that names it.
    """
    from segfuse.report.files import write_file_atomically, write_folder_atomically

    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    inside = page is not None and out is not None and html.parent.resolve() == out.resolve()
    files = {**files, html.name: page} if inside else dict(files)
    try:
        if out is not None:
            write_folder_atomically(out, files, stale)
        if page is not None and not inside:
            write_file_atomically(html, page)
    except OSError as error:
        raise InputError(f"{error.filename or out}: cannot write the report ({error.strerror or error})") from error

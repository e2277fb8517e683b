"""report.html of ``segfuse eval``: one self-contained page built with :mod:`segfuse.report`.

The page holds the settings, the per-class table (``scores_table``), the boundary and
surface table and the Cityscapes benchmark's table when computed, the exact label mapping
used for counting (every stored value the data holds, per side), the plots when they were
drawn, and the worst images by per-image mIoU with ground truth, prediction and error
overlay in the dataset's palette (class colours of the preset, or the default palette).

Convention:
    Ignored ground-truth pixels are black; prediction pixels that hold the ignore value (a
    miss) are grey and named "(no prediction)" in the legend. Only the ``--worst`` images
    are read again (their masks, mapped as for counting); nothing else is re-read.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from segfuse.cli.eval_table import distance_rows, official_rows
from segfuse.report import ExampleSection, Figure, HtmlReport, MaskExample, Table, scores_table, worst_images
from segfuse.report.palette import default_palette

MISS_COLOR = (150, 150, 150)
REPORT_IGNORED = -1  # the ground-truth value the page draws black
PLOT_TITLES = {
    "per_class_iou.png": "Per-class IoU",
    "confusion_matrix.png": "Confusion matrix (row-normalised)",
    "distances.png": "Boundary and surface metrics per class",
}


def _text_table(title: str, header, rows, mean, note: str = "") -> Table:
    cells = [*rows, mean]
    classes = [["", *(["num"] * (len(header) - 1))] for _ in cells]
    classes[-1][0] = "mean"
    return Table(title, header, cells, classes, note)


def _class_text(value, names: Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return f"{value} ({names[value]})" if 0 <= value < len(names) else str(value)


def mapping_table(used: Mapping[str, Mapping[int, object]], names: Sequence[str], description: str) -> Table:
    """Stored value -> class of each side, for every value the data holds."""
    values = sorted(set(used["ground_truth"]) | set(used["prediction"]))
    rows = [[str(value), _class_text(used["ground_truth"].get(value, "-"), names),
             _class_text(used["prediction"].get(value, "-"), names)] for value in values]
    classes = [["num", "", ""] for _ in rows]
    note = (f"{description}. Every value the masks hold, as counted: '-' means the side does not hold it; "
            "a prediction holding the ignore value is a miss of the true class (FN, no FP).")
    return Table("Label mapping used for counting", ["Stored value", "Ground truth", "Prediction"], rows, classes, note)


def report_palette(num_classes: int, palette) -> np.ndarray:
    """The class colours (the dataset's, completed by the default's when short) and grey for misses (index C)."""
    colors = default_palette(max(num_classes, 1))[:num_classes]
    if palette is not None:
        given = np.asarray(palette, dtype=np.uint8)[:num_classes]
        colors = np.concatenate([given, colors[len(given):]])
    return np.concatenate([colors, np.asarray([MISS_COLOR], dtype=np.uint8)])


def worst_examples(image_miou: Sequence[float], count: int, read_pair, stems: Sequence[str]) -> list[MaskExample]:
    """The ``count`` images with the lowest per-image mIoU; ``read_pair(index)`` gives (gt, pred) class maps."""
    examples = []
    for index in worst_images(list(image_miou), count):
        gt, pred = read_pair(index)
        value = image_miou[index]
        examples.append(MaskExample(stems[index], gt, {"prediction": pred}, f"per-image mIoU {100 * value:.2f}"))
    return examples


def eval_html(
    title: str,
    metadata: Mapping[str, object],
    scores,
    names: Sequence[str],
    plots: Mapping[str, bytes],
    examples: Sequence[MaskExample],
    mapping: Table,
    palette,
    official=None,
    distances=None,
) -> bytes:
    """The page's bytes (UTF-8)."""
    tables = [scores_table(scores, "Per-class scores (%)")]
    if distances is not None:
        header, rows, mean = distance_rows(distances, names)
        note = (f"Means over the images where a value is defined; BIoU and NSD in %, HD / HD95 / ASSD in "
                f"{distances.unit()}. empty gt/pred/both: images where the class is absent from the truth only, the "
                "prediction only, both ('-': not scored; class 0 is scored by the surface metrics only with "
                "--include-background). Distances of a class empty on one side are inf (--surface-empty).")
        tables.append(_text_table("Boundary and surface metrics", header, rows, mean, note))
    if official is not None:
        title = "Cityscapes benchmark (%), as evalPixelLevelSemanticLabeling"
        tables.append(_text_table(title, *official_rows(official)))
    tables.append(mapping)
    figures = [Figure(PLOT_TITLES.get(name, name), data) for name, data in plots.items()]
    sections = []
    if examples:
        note = "The images with the lowest per-image mIoU."
        sections.append(ExampleSection(f"Worst {len(examples)} images by per-image mIoU", examples, note))
    count = len(names)
    report = HtmlReport(
        title=title, metadata=metadata, tables=tables, figures=figures, examples=sections,
        class_names=[*names, "(no prediction)"], palette=report_palette(count, palette), ignore_index=REPORT_IGNORED,
    )
    return report.render().encode("utf-8")


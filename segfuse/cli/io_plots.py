"""Report plots (matplotlib, Agg): per-class IoU bars, the row-normalised confusion matrix and the
boundary / surface metrics per class.

Convention:
    Sizes follow the class count so that no label is clipped at 150+ classes: margins come
    from the longest class name, the font shrinks from 10 to 6 pt as classes grow. An
    undefined IoU (class absent from truth and prediction) has no bar and reads "n/a"; it
    is never drawn as 0. The mIoU line is named in the title, not in a legend over the
    bars; bars carry their value up to 60 classes. The confusion matrix divides each truth
    row by its pixels (rows sum to 1, misses included in a "no prediction" column when
    there are any); rows without pixels are grey ("n/a"); cells carry their value up to 25
    classes. Figures are drawn on their own canvas (no pyplot state) and saved with light
    PNG compression.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

DPI = 100
NUMBERS_UP_TO = 25  # classes up to which the confusion-matrix cells show their values
VALUES_UP_TO = 60  # classes up to which the IoU bars carry their value


def _font_size(count: int) -> float:
    return 10.0 if count <= 30 else 8.0 if count <= 80 else 6.0


def _label_inches(names: Sequence[str], font: float) -> float:
    return 0.3 + 0.0075 * font * max((len(name) for name in names), default=1)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> None:
    figure.savefig(path, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})


def _bar_colors(count: int, palette) -> list:
    if palette is None or len(palette) != count:
        return ["#4c72b0"] * count
    return [tuple(channel / 255 for channel in color) for color in np.asarray(palette)]


def plot_per_class(path: Path, names: Sequence[str], iou: Sequence[float], miou: float, palette=None) -> None:
    """Horizontal bars of per-class IoU (in the dataset's colours when given), the mIoU as a dashed line."""
    _save(per_class_figure(names, iou, miou, palette), path)


def per_class_figure(names: Sequence[str], iou: Sequence[float], miou: float, palette=None):
    """The matplotlib Figure of :func:`plot_per_class`."""
    count, font = len(names), _font_size(len(names))
    step = 0.3 if count <= 30 else 0.2 if count <= 80 else 0.16
    left, width, top, bottom = _label_inches(names, font), 6.0, 0.7, 0.6
    height = top + bottom + step * count
    figure = _figure(left + width + 0.6, height)
    axes = figure.add_axes((left / (left + width + 0.6), bottom / height, width / (left + width + 0.6), step * count / height))
    values = np.asarray(iou, dtype=np.float64)
    defined = ~np.isnan(values)
    positions = np.arange(count)
    axes.barh(positions[defined], values[defined], color=[c for c, d in zip(_bar_colors(count, palette), defined) if d],
              edgecolor="#333333", linewidth=0.3)
    for position, value in zip(positions, values):  # values on the bars up to 60 classes (the CSV has them all)
        if not np.isnan(value) and count > VALUES_UP_TO:
            continue
        if np.isnan(value):
            axes.text(0.01, position, "n/a", va="center", fontsize=font * 0.8, color="#666666", style="italic")
        elif value > 0.85:  # inside the bar's end
            axes.text(value - 0.01, position, f"{value:.3f}", va="center", ha="right", fontsize=font * 0.8, color="white")
        else:
            axes.text(value + 0.01, position, f"{value:.3f}", va="center", fontsize=font * 0.8, color="#222222")
    axes.set_yticks(positions, labels=list(names), fontsize=font)
    axes.set_ylim(count - 0.5, -0.5)
    axes.set_xlim(0, 1)
    axes.set_xlabel("IoU")
    axes.grid(axis="x", color="#dddddd", linewidth=0.5)
    axes.set_axisbelow(True)
    title = "Per-class IoU"
    if miou == miou:
        axes.axvline(miou, color="#c44e52", linestyle="--", linewidth=1.2)
        title += f" (dashed: mIoU {miou:.3f})"
    if not defined.all():
        title += "\nn/a: class absent from truth and prediction"
    axes.set_title(title, fontsize=10, loc="left")
    return figure


def _normalised(confusion: np.ndarray, misses: np.ndarray | None) -> tuple[np.ndarray, bool]:
    counts = np.asarray(confusion, dtype=np.float64)
    with_misses = misses is not None and np.asarray(misses).sum() > 0
    if with_misses:
        counts = np.concatenate([counts, np.asarray(misses, dtype=np.float64)[:, None]], axis=1)
    totals = counts.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan), with_misses


def plot_confusion_matrix(path: Path, names: Sequence[str], confusion, misses=None) -> None:
    """Heatmap of the confusion matrix with each truth row divided by its pixel count."""
    _save(confusion_figure(names, confusion, misses), path)


def confusion_figure(names: Sequence[str], confusion, misses=None):
    """The matplotlib Figure of :func:`plot_confusion_matrix`."""
    normalised, with_misses = _normalised(np.asarray(confusion), misses)
    count, font = len(names), _font_size(len(names))
    columns = list(names) + (["(no prediction)"] if with_misses else [])
    cell = 0.4 if count <= NUMBERS_UP_TO else 0.25 if count <= 60 else 0.12
    margin = _label_inches(columns, font) + 0.4
    side_x, side_y = cell * len(columns), cell * count
    width, height = max(margin + side_x + 1.3, 5.5), margin + side_y + 0.9
    figure = _figure(width, height)
    axes = figure.add_axes((margin / width, margin / height, side_x / width, side_y / height))
    import matplotlib

    colormap = matplotlib.colormaps["Blues"].with_extremes(bad="#cccccc")
    image = axes.imshow(np.ma.masked_invalid(normalised), cmap=colormap, vmin=0, vmax=1, interpolation="nearest",
                        aspect="auto")
    axes.set_xticks(range(len(columns)), labels=columns, rotation=90, fontsize=font)
    axes.set_yticks(range(count), labels=list(names), fontsize=font)
    axes.set_xlabel("prediction")
    axes.set_ylabel("ground truth")
    if count <= NUMBERS_UP_TO:
        for (row, col), value in np.ndenumerate(normalised):
            text = "n/a" if np.isnan(value) else f"{value:.2f}"
            axes.text(col, row, text, ha="center", va="center", fontsize=min(font, 8),
                      color="white" if value == value and value > 0.5 else "#222222")
    axes.set_title("Confusion matrix, row-normalised\n(each ground-truth row sums to 1)"
                   + ("\ngrey: class without ground-truth pixels" if np.isnan(normalised).any() else ""),
                   fontsize=10, loc="left")
    colorbar = figure.add_axes(((margin + side_x + 0.25) / width, margin / height, 0.2 / width, side_y / height))
    figure.colorbar(image, cax=colorbar, label="fraction of the row")
    return figure


def png_bytes(figure) -> bytes:
    """The figure as PNG bytes (light compression, as the files)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


DISTANCE_TITLES = {"boundary_iou": "Boundary IoU", "hd": "HD", "hd95": "HD95", "assd": "ASSD"}


def _distance_panels(names: Sequence[str]) -> list[str]:
    """The scores drawn: Boundary IoU, each NSD, HD95 and ASSD (those present)."""
    order = ["boundary_iou", *(name for name in names if name.startswith("nsd@")), "hd95", "assd"]
    return [name for name in order if name in names]


def distances_figure(class_names: Sequence[str], per_class: dict, units: str = "pixels"):
    """One panel per score (Boundary IoU, NSD, HD95, ASSD), one bar per class.

    Undefined values (class not scored, or empty in every image) read "n/a"; an infinite
    distance (a class empty on one side in some image) is a bar to the panel's edge marked "inf".
    """
    panels = _distance_panels(list(per_class))
    count, font = len(class_names), _font_size(len(class_names))
    step = 0.3 if count <= 30 else 0.2 if count <= 80 else 0.16
    left, width, top, bottom, gap = _label_inches(class_names, font), 2.6, 0.8, 0.6, 0.45
    total = left + len(panels) * (width + gap) + 0.3
    height = top + bottom + step * count
    figure = _figure(total, height)
    positions = np.arange(count)
    for index, name in enumerate(panels):
        x0 = left + index * (width + gap)
        axes = figure.add_axes((x0 / total, bottom / height, width / total, step * count / height))
        values = np.asarray(per_class[name], dtype=np.float64)
        fraction = name == "boundary_iou" or name.startswith("nsd@")
        finite = values[np.isfinite(values)]
        limit = 1.0 if fraction else (float(finite.max()) * 1.1 if finite.size and finite.max() > 0 else 1.0)
        shown = np.where(np.isinf(values), limit, values)
        defined = ~np.isnan(values)
        axes.barh(positions[defined], shown[defined], color="#4c72b0", edgecolor="#333333", linewidth=0.3)
        for position, value in zip(positions, values):
            if np.isnan(value):
                axes.text(0.01 * limit, position, "n/a", va="center", fontsize=font * 0.8, color="#666666", style="italic")
            elif np.isinf(value):
                axes.text(0.98 * limit, position, "inf", va="center", ha="right", fontsize=font * 0.8, color="white")
        axes.set_yticks(positions, labels=list(class_names) if index == 0 else [], fontsize=font)
        axes.set_ylim(count - 0.5, -0.5)
        axes.set_xlim(0, limit)
        axes.grid(axis="x", color="#dddddd", linewidth=0.5)
        axes.set_axisbelow(True)
        title = DISTANCE_TITLES.get(name, name.replace("nsd@", "NSD @ "))
        axes.set_title(title if fraction else f"{title} ({units})", fontsize=9, loc="left")
    figure.suptitle("Boundary and surface metrics per class (mean over images; n/a: undefined, inf: a class "
                    "empty on one side)", fontsize=9, x=0.01, ha="left", y=1 - 0.15 / height)
    return figure

"""The report plots at 6 and 150 classes: nothing clipped, undefined classes shown as n/a, not as 0."""

import numpy as np
import pytest
from PIL import Image

from segfuse.cli.io_plots import confusion_figure, per_class_figure, plot_confusion_matrix, plot_per_class


def names_and_scores(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"class_{c}" + ("_with_a_rather_long_name" if c % 7 == 0 else "") for c in range(count)]
    iou = rng.random(count)
    iou[[1, count - 1]] = np.nan  # undefined classes, the last one included (the legend used to cover it)
    confusion = rng.integers(0, 50, (count, count))
    confusion[1] = 0
    return names, iou, confusion


def assert_inside(figure, artists):
    renderer = figure.canvas.get_renderer()
    box = figure.bbox
    for artist in artists:
        extent = artist.get_window_extent(renderer)
        assert extent.x0 >= box.x0 - 0.5 and extent.x1 <= box.x1 + 0.5, artist.get_text()
        assert extent.y0 >= box.y0 - 0.5 and extent.y1 <= box.y1 + 0.5, artist.get_text()


@pytest.mark.parametrize("count", [6, 150])
def test_per_class_bars_keep_labels_inside_and_mark_undefined(count):
    names, iou, _ = names_and_scores(count)
    figure = per_class_figure(names, iou.tolist(), float(np.nanmean(iou)))
    figure.canvas.draw()
    axes = figure.axes[0]
    labels = axes.get_yticklabels()
    assert [label.get_text() for label in labels] == names
    assert_inside(figure, [*labels, axes.title])
    assert len(axes.patches) == count - 2  # no bar (not a 0 bar) for the undefined classes
    texts = [text.get_text() for text in axes.texts]
    assert texts.count("n/a") == 2 and not figure.legends and axes.get_legend() is None
    assert "mIoU" in axes.get_title(loc="left")
    assert figure.get_size_inches()[1] * figure.dpi < 3000  # 150 classes stay a readable, bounded image


@pytest.mark.parametrize("count", [6, 150])
def test_confusion_matrix_says_row_normalised_and_numbers_small_matrices(count):
    names, _, confusion = names_and_scores(count)
    misses = np.zeros(count, dtype=int)
    misses[0] = 5
    figure = confusion_figure(names, confusion, misses)
    figure.canvas.draw()
    axes = figure.axes[0]
    assert "row-normalised" in axes.get_title(loc="left")
    assert axes.get_xticklabels()[-1].get_text() == "(no prediction)"
    assert_inside(figure, [*axes.get_xticklabels(), *axes.get_yticklabels(), axes.title])
    cells = [text.get_text() for text in axes.texts]
    if count <= 25:
        assert len(cells) == count * (count + 1) and cells.count("n/a") == count + 1  # the empty row
        row = confusion[0] / (confusion[0].sum() + 5)
        assert cells[: count] == [f"{value:.2f}" for value in row]
    else:
        assert cells == []
    assert max(figure.get_size_inches()) * figure.dpi < 2500


def test_plot_files_are_pngs(tmp_path):
    names, iou, confusion = names_and_scores(6)
    plot_per_class(tmp_path / "bars.png", names, iou.tolist(), 0.5)
    plot_confusion_matrix(tmp_path / "matrix.png", names, confusion)
    for name in ("bars.png", "matrix.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) > 200

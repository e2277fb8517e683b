"""A self-contained HTML report: tables, plots and the worst images, in one file with no server.

Convention:
    The page holds everything it shows: the CSS is inline, every plot and mask is a PNG
    embedded as a base64 ``data:`` URI, there is no script and no external URL, so the
    file opens from disk (``file://``), from an e-mail or a CI artifact. Masks are drawn
    with a palette (:mod:`segfuse.report.palette`; default :func:`default_palette`),
    ignored pixels black; each prediction is shown beside its error overlay. Masks larger
    than ``max_side`` are subsampled by an integer stride before colouring (nearest
    neighbour, so thin structures can thin out; the legend lists the classes drawn) and
    small ones are enlarged by an integer factor with pixelated rendering. A mask with more than two dims shows its middle slice along each
    leading dim. All text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from segfuse.report.files import write_file_atomically
from segfuse.report.palette import IGNORE_COLOR, as_palette, colorize, error_overlay, ignored_pixels

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px auto;
       max-width: 1280px; padding: 0 16px; color: #1f2328; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: 4px; } h2 { font-size: 1.2em; margin-top: 28px; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 0.9em; }
dl.meta dt { color: #59636e; } dl.meta dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
p.note { color: #59636e; font-size: 0.9em; max-width: 900px; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #d1d9e0; padding: 3px 10px; white-space: nowrap; }
th { background: #f6f8fa; position: sticky; top: 0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.better { background: #dafbe1; color: #116329; font-weight: 600; }
td.worse { background: #ffebe9; color: #a40e26; font-weight: 600; }
td.noise { color: #59636e; } td.absent { color: #8c959f; font-style: italic; }
tr.mean td { font-weight: 600; border-top: 2px solid #59636e; }
figure { margin: 0; } figure.plot img { max-width: 100%; border: 1px solid #d1d9e0; }
figcaption { font-size: 0.8em; color: #59636e; }
div.example { margin: 14px 0; padding-bottom: 10px; border-bottom: 1px solid #d1d9e0; }
div.example h3 { font-size: 1em; margin: 0 0 6px; font-family: ui-monospace, monospace; }
div.panels { display: grid; gap: 8px; max-width: 100%; }
div.panels img { image-rendering: pixelated; border: 1px solid #d1d9e0; width: 100%; height: auto; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.85em; }
ul.legend span { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px;
                 border: 1px solid #8c959f; }
"""
PANEL_PIXELS = 320
OVERLAY_NOTE = (
    "Errors: correct pixels faded, wrong pixels in the colour of the class they were predicted as; "
    "ignored pixels black."
)


@dataclass
class Table:
    """A table: column headers, rows of cell strings, optional CSS class per cell.

    Cell classes used by the style: ``num`` (right-aligned), ``better``, ``worse``,
    ``noise``, ``absent``; a row whose first cell class is ``mean`` is drawn as a total.
    """

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    cell_classes: Sequence[Sequence[str]] | None = None
    note: str = ""


@dataclass
class Figure:
    """A plot: PNG bytes or the path of a PNG file."""

    title: str
    png: bytes | str | Path
    note: str = ""


@dataclass
class MaskExample:
    """One image: its ground truth and one or more named predictions, label maps of one shape."""

    name: str
    gt: np.ndarray
    predictions: Mapping[str, np.ndarray]
    note: str = ""


@dataclass
class ExampleSection:
    """A titled list of :class:`MaskExample` (e.g. the worst images by per-image mIoU)."""

    title: str
    examples: Sequence[MaskExample]
    note: str = ""


def _grid(panels: int) -> str:
    """One row of equal columns, at most ``PANEL_PIXELS`` wide each."""
    return f"grid-template-columns: repeat({panels}, minmax(0, {PANEL_PIXELS}px));"


def _cell(value, css: str) -> str:
    attribute = f' class="{html.escape(css)}"' if css and css != "mean" else ""
    return f"<td{attribute}>{html.escape(str(value))}</td>"


def _png_bytes(png: bytes | str | Path) -> bytes:
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError(f"Figure.png must be PNG bytes or a PNG file, got data starting with {data[:8]!r}")
    return data


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _encode_png(image: np.ndarray, colours: np.ndarray | None = None) -> bytes:
    """PNG of an RGB ``(H, W, 3)`` image, or of uint8 indices ``(H, W)`` into ``colours`` (a palette PNG)."""
    from PIL import Image

    buffer = io.BytesIO()
    image = np.ascontiguousarray(image)
    if colours is None:
        picture = Image.fromarray(image, mode="RGB")
    else:
        picture = Image.frombytes("P", (image.shape[1], image.shape[0]), image.tobytes())
        picture.putpalette(np.asarray(colours, dtype=np.uint8).reshape(-1).tolist())
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _plane(labels: np.ndarray) -> np.ndarray:
    """A 2-D view: middle slice along each leading dim; 1-D masks become one row."""
    array = np.asarray(labels)
    while array.ndim > 2:
        array = array[array.shape[0] // 2]
    return array.reshape(1, -1) if array.ndim == 1 else array


def displayed(labels: np.ndarray, max_side: int = PANEL_PIXELS) -> np.ndarray:
    """The part of a mask a page draws: its 2-D plane, every step-th pixel so the longest side is <= ``max_side``.

    Drawing ``displayed(mask)`` gives the same panel as drawing ``mask`` (callers that map
    labels pixel by pixel can map only these).
    """
    return _strided(_plane(labels), max_side)


def _strided(image: np.ndarray, max_side: int) -> np.ndarray:
    """Every step-th row and column of an (H, W) or (H, W, 3) image, the longest side <= ``max_side``."""
    step = max(1, math.ceil(max(image.shape[:2]) / max_side))
    return image[::step, ::step]


def _check_example(example: MaskExample) -> None:
    if not example.predictions:
        raise ValueError(f"MaskExample {example.name!r}: predictions must hold at least one label map")
    for label, pred in example.predictions.items():
        if np.shape(pred) != np.shape(example.gt):
            raise ValueError(
                f"MaskExample {example.name!r}: prediction {label!r} has shape {np.shape(pred)}, "
                f"the ground truth {np.shape(example.gt)}"
            )
    for label, array in (("gt", example.gt), *example.predictions.items()):
        if not np.issubdtype(np.asarray(array).dtype, np.integer) and np.asarray(array).dtype != bool:
            raise TypeError(f"MaskExample {example.name!r}: {label} must hold integer labels, got {np.asarray(array).dtype}")


@dataclass
class HtmlReport:
    """Everything a report page shows; :meth:`render` gives the HTML, :meth:`write` saves it.

    Args:
        title: page title.
        metadata: ``{label: value}`` listed under the title (folders, settings, versions).
        tables, figures, examples: the sections, in this order.
        class_names: names for the legend (default the label numbers).
        palette: ``(K, 3)`` RGB colours per label (a dataset's palette), or None for
            :func:`segfuse.report.palette.default_palette`.
        ignore_index: truth label drawn black and left out of the error overlay.
        max_side: longest side, in mask pixels, of a drawn mask (default 320).
    """

    title: str
    metadata: Mapping[str, object] = field(default_factory=dict)
    tables: Sequence[Table] = ()
    figures: Sequence[Figure] = ()
    examples: Sequence[ExampleSection] = ()
    class_names: Sequence[str] | None = None
    palette: object = None
    ignore_index: int | None = None
    max_side: int = 320

    def render(self) -> str:
        """The complete page as a string."""
        if isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or self.max_side < 1:
            raise ValueError(f"max_side must be an int >= 1, got {self.max_side!r}")
        for section in self.examples:
            for example in section.examples:
                _check_example(example)
        parts = [f"<h1>{html.escape(self.title)}</h1>", self._metadata()]
        parts += [self._table(table) for table in self.tables]
        parts += [self._figure(figure) for figure in self.figures]
        palette = self._palette()
        shown: set[int] = set()
        examples = [self._examples(section, palette, shown) for section in self.examples]
        parts += [self._legend(palette, shown)] if shown else []
        parts += examples
        body = "\n".join(part for part in parts if part)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Render and write the page to ``path`` atomically; returns the path."""
        return write_file_atomically(Path(path), self.render().encode("utf-8"))

    def _metadata(self) -> str:
        if not self.metadata:
            return ""
        items = "".join(
            f"<dt>{html.escape(str(key))}</dt><dd>{html.escape(str(value))}</dd>" for key, value in self.metadata.items()
        )
        return f'<dl class="meta">{items}</dl>'

    @staticmethod
    def _table(table: Table) -> str:
        head = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.columns)
        rows = []
        for r, row in enumerate(table.rows):
            if len(row) != len(table.columns):
                raise ValueError(f"table {table.title!r}: row {r} has {len(row)} cells for {len(table.columns)} columns")
            classes = table.cell_classes[r] if table.cell_classes is not None else [""] * len(row)
            row_class = ' class="mean"' if classes and classes[0] == "mean" else ""
            cells = "".join(_cell(value, css) for value, css in zip(row, classes))
            rows.append(f"<tr{row_class}>{cells}</tr>")
        note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
        return (
            f"<section><h2>{html.escape(table.title)}</h2>{note}"
            f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table></section>"
        )

    @staticmethod
    def _figure(figure: Figure) -> str:
        note = f"<figcaption>{html.escape(figure.note)}</figcaption>" if figure.note else ""
        alt = html.escape(figure.title, quote=True)
        return (
            f'<section><h2>{html.escape(figure.title)}</h2><figure class="plot">'
            f'<img alt="{alt}" src="{_data_uri(_png_bytes(figure.png))}">{note}</figure></section>'
        )

    def _palette(self) -> np.ndarray:
        largest = -1
        for section in self.examples:
            for example in section.examples:
                valid = ~ignored_pixels(np.asarray(example.gt), self.ignore_index)
                for labels in (example.gt, *example.predictions.values()):
                    values = np.asarray(labels)[valid]
                    if values.size:
                        largest = max(largest, int(values.max()))
                        if int(values.min()) < 0:
                            raise ValueError(f"MaskExample {example.name!r}: negative label {int(values.min())} cannot be drawn")
        return as_palette(self.palette, largest + 1)

    def _panel(self, caption: str, image: np.ndarray, colours: np.ndarray | None = None) -> str:
        image = _strided(image, self.max_side)
        zoom = max(1, self.max_side // max(image.shape[:2]))
        alt = html.escape(caption, quote=True)
        return (
            f'<figure><img alt="{alt}" width="{image.shape[1] * zoom}" height="{image.shape[0] * zoom}" '
            f'src="{_data_uri(_encode_png(image, colours))}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        )

    def _mask_panel(self, caption: str, labels: np.ndarray, palette: np.ndarray, ignored: np.ndarray) -> str:
        """A class map in ``palette``'s colours, ignored pixels black: a palette PNG when the
        colours and black fit in 256 entries (a third of the bytes, no RGB image), else RGB."""
        if len(palette) >= 256:
            return self._panel(caption, colorize(labels, palette, ignored))
        indices = np.where(ignored, len(palette), labels).astype(np.uint8)
        return self._panel(caption, indices, np.concatenate([palette, np.asarray([IGNORE_COLOR], dtype=np.uint8)]))

    def _examples(self, section: ExampleSection, palette: np.ndarray, shown: set[int]) -> str:
        blocks = []
        for example in section.examples:
            gt = displayed(example.gt, self.max_side)
            ignored = ignored_pixels(gt, self.ignore_index)
            shown.update(np.unique(gt[~ignored]).tolist())
            panels = [self._mask_panel("ground truth", gt, palette, ignored)]
            for label, pred in example.predictions.items():
                pred = displayed(pred, self.max_side)
                shown.update(np.unique(pred[~ignored]).tolist())
                panels.append(self._mask_panel(str(label), pred, palette, ignored))
                panels.append(self._panel(f"{label}: errors", error_overlay(gt, pred, palette, self.ignore_index)))
            note = f'<p class="note">{html.escape(example.note)}</p>' if example.note else ""
            blocks.append(
                f'<div class="example"><h3>{html.escape(example.name)}</h3>{note}'
                f'<div class="panels" style="{_grid(len(panels))}">{"".join(panels)}</div></div>'
            )
        note = f'<p class="note">{html.escape(section.note)} {OVERLAY_NOTE}</p>'
        return f"<section><h2>{html.escape(section.title)}</h2>{note}" + "\n".join(blocks) + "</section>"

    def _legend(self, palette: np.ndarray, shown: set[int]) -> str:
        names = list(self.class_names) if self.class_names is not None else []
        items = []
        for label in sorted(shown):
            name = names[label] if label < len(names) else str(label)
            red, green, blue = (int(v) for v in palette[label])
            items.append(
                f'<li><span style="background: rgb({red}, {green}, {blue})"></span>{html.escape(name)}</li>'
            )
        return f'<section><h2>Classes in the images</h2><ul class="legend">{"".join(items)}</ul></section>'

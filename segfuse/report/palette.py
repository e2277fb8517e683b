"""Colours for label masks: a default palette, colouring a label map, and the error overlay.

Convention:
    A palette is a ``(K, 3)`` array of RGB values in [0, 255] (or a sequence of K RGB
    triples); label ``c`` is drawn in ``palette[c]``. The default is
    :func:`default_palette`: fixed hues stepped by the golden angle with alternating
    saturation and brightness, so neighbouring labels differ and the colours never depend
    on the data. Ignored pixels (truth equal to ``ignore_index``) are black in every
    panel. The error overlay draws correctly predicted pixels in their class colour
    faded 80 percent towards white, and wrong pixels in the colour of the class they were
    predicted as, at full strength.
"""

from __future__ import annotations

import colorsys
from typing import Sequence

import numpy as np

IGNORE_COLOR = (0, 0, 0)
FADE = 0.8  # how far correct pixels are faded towards white in the error overlay
GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def default_palette(num_colors: int = 256) -> np.ndarray:
    """A fixed, data-independent palette: uint8 ``(num_colors, 3)``."""
    if isinstance(num_colors, bool) or not isinstance(num_colors, int) or num_colors < 1:
        raise ValueError(f"num_colors must be an int >= 1, got {num_colors!r}")
    colors = []
    for index in range(num_colors):
        hue = (index * GOLDEN_RATIO_CONJUGATE) % 1.0
        saturation = (0.85, 0.55)[index % 2]
        value = (0.95, 0.75)[(index // 2) % 2]
        colors.append(colorsys.hsv_to_rgb(hue, saturation, value))
    return np.round(np.asarray(colors) * 255).astype(np.uint8)


def as_palette(palette, num_labels: int) -> np.ndarray:
    """``palette`` checked and as uint8 ``(K, 3)``; None gives the default with ``max(256, num_labels)`` colours."""
    if palette is None:
        return default_palette(max(256, num_labels))
    if isinstance(palette, (str, bytes)) or not isinstance(palette, (Sequence, np.ndarray)):
        raise TypeError(f"palette must be a (K, 3) array or a sequence of RGB triples, got {type(palette).__name__}")
    array = np.asarray(palette)
    if array.ndim != 2 or array.shape[1] != 3 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"palette must have shape (K, 3) of RGB numbers, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"palette values must lie in [0, 255], got [{array.min()}, {array.max()}]")
    if len(array) < num_labels:
        raise ValueError(f"palette has {len(array)} colours but the masks hold labels up to {num_labels - 1}")
    return array.astype(np.uint8)


def ignored_pixels(gt: np.ndarray, ignore_index) -> np.ndarray:
    """Boolean ``(H, W)``: where the truth equals ``ignore_index`` (nowhere for None)."""
    return np.zeros(gt.shape, dtype=bool) if ignore_index is None else gt == ignore_index


def colorize(labels: np.ndarray, palette: np.ndarray, ignored: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of a label map ``(H, W)``; ``ignored`` pixels are black."""
    safe = np.where(ignored, 0, labels) if ignored is not None else labels
    image = palette[safe.astype(np.intp)]
    if ignored is not None:
        image[ignored] = IGNORE_COLOR
    return image


def faded(palette: np.ndarray) -> np.ndarray:
    """Each colour of ``palette`` moved ``FADE`` of the way towards white (uint8)."""
    colours = np.asarray(palette, dtype=np.float64)
    return np.round(colours + (255.0 - colours) * FADE).astype(np.uint8)


def error_overlay(gt: np.ndarray, pred: np.ndarray, palette: np.ndarray, ignore_index=None) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)``: correct pixels faded, wrong ones in the predicted class colour."""
    ignored = ignored_pixels(gt, ignore_index)
    wrong = (gt != pred) & ~ignored
    image = np.where(wrong[..., None], colorize(pred, palette, ignored), colorize(gt, faded(palette), ignored))
    image[ignored] = IGNORE_COLOR
    return image

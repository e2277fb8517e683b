"""Label masks on disk: pairing ground truth and prediction files by stem, reading, label mapping.

Convention:
    A mask is a single-channel PNG (palette: the indices; L: 8-bit values; I;16 / I: 16- or
    32-bit values; 1: 0/1) or an integer ``.npy`` array. The stem is the path relative to
    the folder without its suffix, so sub-folders pair too; other files are not masks and
    are skipped. ``reduce_zero_label`` is mmseg's: in the ground truth, 0 becomes
    ``ignore_index`` and every other label is lowered by one (``ignore_index`` stays).
    Every problem raises :class:`InputError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segfuse.cli.errors import InputError

MASK_SUFFIXES = (".png", ".npy")
_PNG_MODES = {"P", "L", "I;16", "I;16B", "I;16L", "I", "1"}


@dataclass(frozen=True)
class MaskPair:
    """One image: its stem and the two files."""

    stem: str
    gt: Path
    pred: Path


@dataclass(frozen=True)
class Pairing:
    """Matched pairs (sorted by stem) and the files found on one side only."""

    pairs: list[MaskPair]
    missing_pred: list[Path]
    missing_gt: list[Path]


def list_masks(folder: Path, role: str) -> dict[str, Path]:
    """``{stem: path}`` of the masks under ``folder`` (recursively)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: --{role} is not a folder")
    masks: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in MASK_SUFFIXES or not path.is_file():
            continue
        stem = path.relative_to(folder).with_suffix("").as_posix()
        if stem in masks:
            raise InputError(f"{path}: two {role} masks share the stem {stem!r} ({masks[stem].name} and {path.name})")
        masks[stem] = path
    if not masks:
        raise InputError(f"{folder}: no {role} masks (.png or .npy) in the folder")
    return masks


def pair_masks(gt_folder: Path, pred_folder: Path) -> Pairing:
    """Pair the two folders' masks by stem."""
    gt, pred = list_masks(gt_folder, "gt"), list_masks(pred_folder, "pred")
    pairs = [MaskPair(stem, gt[stem], pred[stem]) for stem in sorted(gt.keys() & pred.keys())]
    missing_pred = [gt[stem] for stem in sorted(gt.keys() - pred.keys())]
    return Pairing(pairs, missing_pred, [pred[stem] for stem in sorted(pred.keys() - gt.keys())])


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path, formats=["PNG"]) as image:
            if image.mode not in _PNG_MODES:
                raise InputError(
                    f"{path}: expected a single-channel label PNG (palette, L or 16-bit), got mode {image.mode}"
                )
            array = np.array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: cannot read the PNG ({error})") from error
    return array.astype(np.uint8) if array.dtype == bool else array


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the .npy array ({error})") from error
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{path}: expected integer class labels, got dtype {array.dtype}")
    return array


def read_mask(path: Path) -> np.ndarray:
    """Integer label array of a PNG or .npy mask (uint8, uint16, int32, ... as stored)."""
    array = _read_npy(path) if path.suffix.lower() == ".npy" else _read_png(path)
    if array.ndim == 0 or array.size == 0:
        raise InputError(f"{path}: the mask is empty (shape {array.shape})")
    return array


def reduce_zero_label(labels: np.ndarray, ignore_index: int) -> np.ndarray:
    """mmseg's reduce_zero_label: 0 -> ignore_index, others minus 1, ignore_index kept."""
    ignored = (labels == 0) | (labels == ignore_index)
    reduced = labels.astype(np.int32) - 1
    reduced[ignored] = ignore_index
    return reduced

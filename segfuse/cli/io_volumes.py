"""Label volumes on disk: ``.npy`` and NIfTI (``.nii``, ``.nii.gz``), with their voxel spacing.

Convention:
    A volume is an integer label array in the file's own axis order (NIfTI: i, j, k as
    stored, no reorientation). NIfTI is read with nibabel (the ``volumes`` extra:
    ``pip install 'segfuse[volumes]'``); its spacing is the header's ``pixdim``
    (``get_zooms()``, usually mm) of the spatial axes; trailing singleton axes (a 4D file with
    one frame) are dropped. Float voxels are accepted when every value is a whole number
    (label maps saved as float32 are common) and become the smallest integer dtype that holds
    them; other floats, and scaled data that is not whole, are errors. ``.npy`` holds no
    spacing. The stem is the path relative to the folder without ``.npy`` / ``.nii`` /
    ``.nii.gz``, so sub-folders pair. Every problem raises :class:`InputError` naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segfuse.cli.errors import InputError
from segfuse.cli.io_masks import MaskPair, Pairing

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".npy")


@dataclass(frozen=True)
class Volume:
    """A label volume and its voxel spacing (None when the file holds none)."""

    labels: np.ndarray
    spacing: tuple[float, ...] | None


def volume_suffix(path: Path) -> str | None:
    """The volume suffix of ``path`` (``.nii.gz`` counts as one), or None."""
    name = path.name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def list_volumes(folder: Path, role: str) -> dict[str, Path]:
    """``{stem: path}`` of the volumes under ``folder`` (recursively)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: --{role} is not a folder")
    volumes: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        suffix = volume_suffix(path)
        if suffix is None or not path.is_file():
            continue
        relative = path.relative_to(folder).as_posix()
        stem = relative[: -len(suffix)]
        if stem in volumes:
            raise InputError(f"{path}: two {role} volumes share the stem {stem!r} ({volumes[stem].name} and {path.name})")
        volumes[stem] = path
    if not volumes:
        raise InputError(f"{folder}: no {role} volumes (.npy, .nii or .nii.gz) in the folder")
    return volumes


def pair_volumes(gt_folder: Path, pred_folder: Path) -> Pairing:
    """Pair the two folders' volumes by stem (a ``.nii.gz`` truth pairs with a ``.npy`` prediction)."""
    gt, pred = list_volumes(gt_folder, "gt"), list_volumes(pred_folder, "pred")
    pairs = [MaskPair(stem, gt[stem], pred[stem]) for stem in sorted(gt.keys() & pred.keys())]
    missing_pred = [gt[stem] for stem in sorted(gt.keys() - pred.keys())]
    return Pairing(pairs, missing_pred, [pred[stem] for stem in sorted(pred.keys() - gt.keys())])


def read_volume(path: Path) -> Volume:
    """The labels and spacing of a ``.npy`` or NIfTI file."""
    suffix = volume_suffix(path)
    if suffix is None:
        raise InputError(f"{path}: expected a .npy, .nii or .nii.gz volume")
    volume = _read_npy(path) if suffix == ".npy" else _read_nifti(path)
    if volume.labels.ndim == 0 or volume.labels.size == 0:
        raise InputError(f"{path}: the volume is empty (shape {volume.labels.shape})")
    return volume


def _read_npy(path: Path) -> Volume:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the .npy array ({error})") from error
    return Volume(_integer_labels(path, array), None)


def _nibabel():
    try:
        import nibabel
    except ImportError as error:
        raise InputError("reading NIfTI volumes needs nibabel: pip install 'segfuse[volumes]'") from error
    return nibabel


def _read_nifti(path: Path) -> Volume:
    nibabel = _nibabel()
    try:
        image = nibabel.load(str(path))
        array = np.asanyarray(image.dataobj)
        zooms = tuple(float(z) for z in image.header.get_zooms())
    except Exception as error:  # nibabel raises many types (ImageFileError, EOFError, zlib errors)
        raise InputError(f"{path}: cannot read the NIfTI volume ({type(error).__name__}: {error})") from error
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim > 3:
        raise InputError(f"{path}: expected a 2D or 3D label volume, got shape {array.shape}")
    spacing = zooms[: array.ndim]
    if len(spacing) != array.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"{path}: the header's voxel spacing {zooms} is not positive for every axis")
    return Volume(_integer_labels(path, array), spacing)


def _integer_labels(path: Path, array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{path}: expected integer class labels, got dtype {array.dtype}")
    if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
        raise InputError(f"{path}: expected integer class labels, got non-integer {array.dtype} values")
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for dtype in (np.uint8, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return array.astype(dtype)
    raise InputError(f"{path}: labels {low}..{high} do not fit an int64")


def pair_spacing(gt: Volume, pred: Volume, given, gt_path: Path, pred_path: Path) -> tuple[float, ...] | None:
    """The spacing of a pair: ``given`` (e.g. ``--spacing``) if set, else the headers' (which must agree).

    Returns None when neither file holds a spacing and none is given (unit spacing).
    """
    dims = gt.labels.ndim
    if given is not None:
        spacing = tuple(float(s) for s in given)
        if len(spacing) != dims or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise InputError(f"{gt_path}: --spacing must give {dims} values > 0 for this volume, got {given}")
        return spacing
    if gt.spacing is not None and pred.spacing is not None:
        if not np.allclose(gt.spacing, pred.spacing, rtol=1e-5, atol=0):
            raise InputError(f"{pred_path}: voxel spacing {pred.spacing} differs from the ground truth's {gt.spacing} ({gt_path})")
    return gt.spacing if gt.spacing is not None else pred.spacing


def parse_spacing(text: str) -> tuple[float, ...]:
    """``"1,1,2.5"`` -> ``(1.0, 1.0, 2.5)`` (for ``--spacing``); InputError if malformed."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise InputError(f"--spacing must be comma-separated numbers such as 1,1,2.5, got {text!r}") from error
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"--spacing must hold values > 0, got {text!r}")
    return values


def read_volume_pair(pair: MaskPair, given_spacing=None) -> tuple[np.ndarray, np.ndarray, tuple[float, ...] | None]:
    """``(gt, pred, spacing)`` of one pair; sizes must match (InputError naming the prediction otherwise)."""
    gt, pred = read_volume(pair.gt), read_volume(pair.pred)
    if gt.labels.shape != pred.labels.shape:
        raise InputError(
            f"{pair.pred}: size {pred.labels.shape} does not match the ground truth {pair.gt} of size {gt.labels.shape}"
        )
    return gt.labels, pred.labels, pair_spacing(gt, pred, given_spacing, pair.gt, pair.pred)

"""Label masks on disk: pairing ground truth and prediction files, decoding, colour palettes.

Convention:
    A mask is a single-channel PNG (palette: the indices; L: 8-bit values; 16-bit; 1-bit:
    0/1), an RGB PNG decoded through a colour palette, an integer ``.npy`` array shaped
    (H, W), (1, H, W), (H, W, 1) or (D, H, W) (a volume), or a NIfTI volume (``.nii``,
    ``.nii.gz``; read by :mod:`segfuse.cli.io_volumes`, with its voxel spacing). PNGs are decoded by pyspng (libspng) when it is
    installed and the PNG is 8-bit grey, 8-bit palette (read as its indices), 16-bit grey
    or 8-bit RGB; Pillow decodes the rest, and everything when pyspng is missing. Label
    masks are trusted local files: Pillow's decompression-bomb limit is not applied.

    Files pair by stem: the path relative to the folder without the suffix (``--gt-suffix``
    / ``--pred-suffix``, by default ``.png``, ``.npy``, ``.nii`` or ``.nii.gz``; files with another suffix are not
    masks and are skipped). When every file name is unique on both sides, folders are
    ignored and files pair by name alone (Cityscapes' city folders against a flat folder of
    predictions). Every problem raises :class:`InputError` naming the file.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from segfuse.cli.errors import InputError

MASK_SUFFIXES = (".png", ".npy")
VOLUME_SUFFIXES = (".nii.gz", ".nii")
DEFAULT_SUFFIXES = (".nii.gz", ".png", ".npy", ".nii")  # longest first
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PIL_MODES = {"P", "L", "I;16", "I;16B", "I;16L", "I", "1", "RGB", "RGBA"}
GREY, RGB, PALETTE, RGBA = 0, 2, 3, 6


@dataclass(frozen=True)
class MaskPair:
    """One image: its stem, the two files and, for Cityscapes, the instance-id file."""

    stem: str
    gt: Path
    pred: Path
    instances: Path | None = None


@dataclass(frozen=True)
class Pairing:
    """Matched pairs (sorted by stem) and the files found on one side only."""

    pairs: list[MaskPair]
    missing_pred: list[Path]
    missing_gt: list[Path]
    by_name: bool = False


@dataclass(frozen=True)
class Palette:
    """RGB colour -> class index (and colours that mean 'ignore'), for colour-coded masks.

    ``colors`` is (K, 3) uint8, class k drawn in ``colors[k]``; ``ignore_colors`` (M, 3)
    decode to ``ignore_index``. Colours must be distinct to decode masks.
    """

    colors: np.ndarray
    ignore_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    ignore_index: int | None = 255
    name: str = "palette"


# ---- pairing -----------------------------------------------------------------------------


def _suffixes(suffix: str | Sequence[str] | None) -> tuple[str, ...]:
    if suffix is None:
        return DEFAULT_SUFFIXES
    values = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    return tuple(sorted(values, key=len, reverse=True))  # longest first: "_labelIds.png" before ".png"


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> str | None:
    lowered = name.lower()
    for suffix in suffixes:
        if lowered.endswith(suffix.lower()) and len(name) > len(suffix):
            return name[: len(name) - len(suffix)]
    return None


def list_masks(folder: Path, role: str, suffix: str | Sequence[str] | None = None) -> dict[str, Path]:
    """``{stem: path}`` of the masks under ``folder`` (recursively) whose name ends with a suffix."""
    if not folder.is_dir():
        raise InputError(f"{folder}: --{role} is not a folder")
    suffixes = _suffixes(suffix)
    masks: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        name = _strip_suffix(path.name, suffixes)
        if name is None or not path.is_file():
            continue
        stem = path.parent.relative_to(folder).joinpath(name).as_posix()
        if stem in masks:
            raise InputError(f"{path}: two {role} masks share the stem {stem!r} ({masks[stem].name} and {path.name})")
        masks[stem] = path
    if not masks:
        if suffix is None:
            raise InputError(f"{folder}: no {role} masks ({' or '.join(MASK_SUFFIXES)}) in the folder, nor volumes "
                             f"({' or '.join(VOLUME_SUFFIXES)})")
        raise InputError(f"{folder}: no {role} masks ({' or '.join(suffixes)}) in the folder")
    return masks


def _by_name(masks: dict[str, Path]) -> dict[str, Path] | None:
    """The same masks keyed by file stem alone, or None when two share a name."""
    named = {stem.rsplit("/", 1)[-1]: path for stem, path in masks.items()}
    return named if len(named) == len(masks) else None


def pair_masks(
    gt_folder: Path,
    pred_folder: Path,
    gt_suffix: str | Sequence[str] | None = None,
    pred_suffix: str | Sequence[str] | None = None,
) -> Pairing:
    """Pair the two folders' masks by stem (see the module Convention)."""
    gt, pred = list_masks(gt_folder, "gt", gt_suffix), list_masks(pred_folder, "pred", pred_suffix)
    gt_named, pred_named = _by_name(gt), _by_name(pred)
    by_name = gt_named is not None and pred_named is not None
    if by_name:
        gt, pred = gt_named, pred_named
    pairs = [MaskPair(stem, gt[stem], pred[stem]) for stem in sorted(gt.keys() & pred.keys())]
    missing_pred = [gt[stem] for stem in sorted(gt.keys() - pred.keys())]
    missing_gt = [pred[stem] for stem in sorted(pred.keys() - gt.keys())]
    return Pairing(pairs, missing_pred, missing_gt, by_name)


# ---- decoding ----------------------------------------------------------------------------


def _png_header(data: bytes, path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk."""
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise InputError(f"{path}: cannot read the PNG (not a PNG file)")
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, color


def palette_as_grey(data: bytes) -> bytes:
    """The same 8-bit palette PNG declared as 8-bit grey (its indices become grey values).

    The IHDR colour type is set to 0 (with a new CRC) and the chunks between IHDR and the
    first IDAT (PLTE, tRNS, bKGD, ...) are dropped; the image data is untouched.
    """
    ihdr = bytearray(data[16:29])
    ihdr[9] = GREY
    chunk = b"IHDR" + bytes(ihdr)
    start = data.find(b"IDAT", 33) - 4
    if start < 33:
        raise ValueError("no IDAT chunk")
    return _PNG_SIGNATURE + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[start:]


def _pyspng():
    try:
        import pyspng
    except ImportError:
        return None
    return pyspng


def _decode_fast(data: bytes, path: Path) -> np.ndarray | None:
    """Decode with pyspng when it handles this PNG type; None otherwise."""
    pyspng = _pyspng()
    if pyspng is None:
        return None
    _, _, depth, color = _png_header(data, path)
    if color == GREY and depth == 8:
        return pyspng.load(data)
    if color == GREY and depth == 16:
        return np.ascontiguousarray(pyspng.load(data)[..., 0])  # pyspng returns grey + alpha, host order
    if color == PALETTE and depth == 8:
        return pyspng.load(palette_as_grey(data))
    if color == RGB and depth == 8:
        return pyspng.load(data)
    return None


def _decode_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # trusted label masks: no bomb limit
    try:
        with Image.open(path, formats=["PNG"]) as image:
            if image.mode not in _PIL_MODES:
                raise InputError(
                    f"{path}: expected a label PNG (palette, L, 16-bit or RGB with --palette), got mode {image.mode}"
                )
            if image.mode == "RGBA":
                image = _opaque_rgb(image, path)
            array = np.array(image)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return array.astype(np.uint8) if array.dtype == bool else array


def _opaque_rgb(image, path: Path):
    alpha = np.asarray(image.getchannel("A"))
    if alpha.min() < 255:
        raise InputError(f"{path}: an RGBA mask with transparent pixels; save it as RGB or as single-channel labels")
    return image.convert("RGB")


def _read_png(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
        array = _decode_fast(data, path)
        return _decode_pillow(path) if array is None else array
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, RuntimeError) as error:  # RuntimeError: libspng's errors
        raise InputError(f"{path}: cannot read the PNG ({error})") from error
    except Exception as error:  # PIL.UnidentifiedImageError is an OSError; anything else is still a bad file
        raise InputError(f"{path}: cannot read the PNG ({type(error).__name__}: {error})") from error


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the .npy array ({error})") from error
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{path}: expected integer class labels, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[0] == 1:
        return array[0]
    if array.ndim == 3 and array.shape[-1] == 1:
        return array[..., 0]
    if array.ndim not in (2, 3):
        raise InputError(f"{path}: expected a label array shaped (H, W), (1, H, W) or a volume (D, H, W), got {array.shape}")
    return array


def is_volume_file(path: Path) -> bool:
    """A NIfTI file (``.nii``, ``.nii.gz``)."""
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def read_labels_and_spacing(path: Path, palette: Palette | None = None) -> tuple[np.ndarray, bool, tuple | None]:
    """:func:`read_labels` and the voxel spacing the file holds (NIfTI; None for PNG and .npy)."""
    if is_volume_file(path):
        from segfuse.cli.io_volumes import read_volume

        volume = read_volume(path)
        return volume.labels, False, volume.spacing
    labels, decoded = read_labels(path, palette)
    return labels, decoded, None


def read_labels(path: Path, palette: Palette | None = None) -> tuple[np.ndarray, bool]:
    """Integer labels of a mask, and whether they were decoded from colours.

    PNG and .npy masks are (H, W); .npy and NIfTI volumes (D, H, W). Single-channel masks
    come as stored (uint8, uint16, int32, ...). An RGB PNG is decoded through ``palette``
    (class indices, ``ignore_index`` for its ignore colours); without a palette it is an
    error that says how to give one.
    """
    if is_volume_file(path):
        return read_labels_and_spacing(path)[:2]
    is_npy = path.suffix.lower() == ".npy"
    array = _read_npy(path) if is_npy else _read_png(path)
    decoded = not is_npy and array.ndim == 3
    if decoded:
        if palette is None:
            raise InputError(
                f"{path}: an RGB colour mask; give --palette (a dataset name or a file) or --dataset to decode "
                "its colours, or save single-channel label masks"
            )
        array = colors_to_labels(array, palette, path)
    if array.size == 0:
        raise InputError(f"{path}: the mask is empty (shape {array.shape})")
    return array, decoded


def read_mask(path: Path, palette: Palette | None = None) -> np.ndarray:
    """Integer label array (H, W) of a PNG or .npy mask; see :func:`read_labels`."""
    return read_labels(path, palette)[0]


# ---- colour palettes ---------------------------------------------------------------------


def _color_codes(colors: np.ndarray) -> np.ndarray:
    colors = np.asarray(colors, dtype=np.uint32)
    return (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]


def check_palette_decodes(palette: Palette) -> None:
    """Raise InputError when two classes (or a class and an ignore colour) share a colour."""
    codes = _color_codes(np.concatenate([palette.colors, palette.ignore_colors]).reshape(-1, 3))
    values, first, counts = np.unique(codes, return_index=True, return_counts=True)
    if (counts > 1).any():
        code = int(values[counts > 1][0])
        color = ((code >> 16) & 255, (code >> 8) & 255, code & 255)
        owners = [int(i) for i in np.flatnonzero(codes == code)]
        raise InputError(
            f"--palette {palette.name}: colour {color} is used by entries {owners}, so colour masks cannot be decoded"
        )


def colors_to_labels(rgb: np.ndarray, palette: Palette, path: Path) -> np.ndarray:
    """Class indices (uint8 / uint16) of an (H, W, 3) colour mask; unknown colours raise InputError."""
    check_palette_decodes(palette)
    codes = _color_codes(rgb[..., :3])
    known = np.concatenate([_color_codes(palette.colors), _color_codes(palette.ignore_colors)]).astype(np.uint32)
    labels = np.concatenate([
        np.arange(len(palette.colors)),
        np.full(len(palette.ignore_colors), -1 if palette.ignore_index is None else palette.ignore_index),
    ])
    order = np.argsort(known)
    position = np.clip(np.searchsorted(known[order], codes), 0, len(known) - 1)
    found = known[order][position] == codes
    if not found.all():
        unknown, counts = np.unique(codes[~found], return_counts=True)
        shown = ", ".join(f"{((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255)} x {n}" for c, n in zip(unknown[:3], counts[:3]))
        raise InputError(f"{path}: {len(unknown)} colours are not in --palette {palette.name}: {shown}")
    dtype = np.uint8 if labels.max(initial=0) < 256 and labels.min(initial=0) >= 0 else np.int32
    return labels[order][position].astype(dtype)

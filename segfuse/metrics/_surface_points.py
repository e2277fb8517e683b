"""Surface points of every class of a class map, all classes at once (numpy on CPU, torch on other devices).

Two surface definitions, each the one of its reference:

- ``"voxels"`` (MONAI's ``get_mask_edges`` without spacing): the voxels of class c with a
  face neighbour (4-connected in 2D, 6 in 3D) that is not c, or that lie on the image
  border (``binary_erosion(mask) ^ mask`` with a zero border). Each weighs 1.
- ``"corners"`` (DeepMind surface-distance, MONAI's ``use_subvoxels=True``): points of the
  voxel-corner grid (shape ``S + 1``) whose ``2**D`` surrounding voxels hold c and not c
  (voxels outside the image are not c). Each carries its neighbour code, whose surfel area
  (3D) or contour length (2D) comes from :mod:`segfuse.metrics._surface_tables`.

On CPU with numba installed, the corners and edge voxels of 2D maps come from one compiled
pass over the maps (:mod:`segfuse.metrics._surface_scan`: 8-byte words at a time, labels read
only where the words are not uniform; most of an image is). Otherwise, and for volumes (where
surfaces are dense in the organs' box), the batch is cropped to the kept classes' bounding
box, padded with a label that is no kept class, and flattened; a handful of comparisons of
the flat map with its copies shifted by one step along each axis find, for every class
together, the corners whose ``2**D`` voxels are not all equal (a corner block is mixed iff
one of its edges joins two different labels) or the voxels with a differing face neighbour.
Codes and labels are then computed only at those sparse positions (by numpy, or by one numba
loop where numba is installed: :mod:`segfuse.metrics._surface_sparse`). A mixed block gives a
surfel to each kept label it holds, since that label and another meet there.

Convention:
    The label ``num_classes`` (ignored pixels) and the outside of the image belong to no
    class; they make surfaces like any other label. Points of a class not in ``keep`` are
    dropped. Coordinates are the image index in the batch then integer indices of the voxel
    (or corner) grid; corner ``i`` sits between voxels ``i - 1`` and ``i``, so distances
    between corners equal the references'.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch

from segfuse import _accelerate


@dataclass(frozen=True)
class SurfacePoints:
    """Surface points of all classes of a batch of maps, sorted by (image, class).

    ``coords`` (m, 1 + D) int64: the image index, then the grid indices; ``labels`` (m,)
    int64 classes; ``codes`` (m,) int64 neighbour codes (corners) or None (voxels). numpy arrays.
    """

    coords: np.ndarray
    labels: np.ndarray
    codes: np.ndarray | None


def voxel_edges(labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int,
                holds_no_class: bool = True) -> SurfacePoints:
    """MONAI's edge voxels of the kept classes of a batch of class maps ``(N, *S)`` (any D).

    Args:
        labels: integer class maps; ``num_classes`` marks pixels of no class.
        keep: bool ``(num_classes + 1,)`` lookup, True for the wanted classes
            (``first`` .. ``num_classes - 1``).
        holds_no_class: whether some pixels may hold ``num_classes`` (ignored ones).
    """
    if labels.device.type != "cpu":
        return voxel_edges_torch(labels, keep, first, num_classes, holds_no_class)
    return _extract_numpy(labels.numpy(), keep.numpy(), first, num_classes, holds_no_class, corners=False)


def corner_surfels(labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int,
                   holds_no_class: bool = True) -> SurfacePoints:
    """DeepMind's surface elements of the kept classes of a batch of class maps ``(N, *S)`` (2D or 3D).

    Arguments as :func:`voxel_edges`; voxels outside the image hold no class. Corner ``i``
    of the grid ``S + 1`` sits between voxels ``i - 1`` and ``i``.
    """
    if labels.device.type != "cpu":
        return corner_surfels_torch(labels, keep, first, num_classes, holds_no_class)
    return _extract_numpy(labels.numpy(), keep.numpy(), first, num_classes, holds_no_class, corners=True)


# ----------------------------------------------------------------------------------------------- numpy (CPU)


def compiled(name: str):
    """The numba-compiled module ``segfuse.metrics.<name>``, or None where numba is missing or does not load."""
    return _accelerate.compiled(f"segfuse.metrics.{name}")


def kept_box(labels: np.ndarray, first: int, num_classes: int, holds_no_class: bool) -> tuple[slice, ...] | None:
    """Bounding box over a batch ``(N, *S)`` of the kept classes ``first`` .. ``num_classes - 1``, grown by one.

    Surfaces of those classes lie inside it: the voxels around it hold other labels, as do
    those outside the image. With ``first == 0`` it is the whole image; None when no voxel
    is kept. ``holds_no_class``: some voxels may hold ``num_classes`` (ignored pixels).
    """
    if first == 0:
        return tuple(slice(0, n) for n in labels.shape)
    kept = np.where(labels == num_classes, 0, labels) if holds_no_class else labels
    remaining = kept.max(axis=0) if len(kept) > 1 else kept[0]
    box = [slice(0, labels.shape[0])]
    for size in labels.shape[1:]:
        profile = remaining.reshape(size, -1).max(axis=1)  # over the contiguous trailing axes
        where = np.flatnonzero(profile)
        if len(where) == 0:
            return None
        low, high = int(where[0]), int(where[-1]) + 1
        box.append(slice(max(low - 1, 0), min(high + 1, size)))
        remaining = remaining[low:high].max(axis=0)  # the slab that holds kept voxels, this axis reduced
    return tuple(box)


def _padded(labels: np.ndarray, fill: int) -> np.ndarray:
    shape = (labels.shape[0],) + tuple(n + 2 for n in labels.shape[1:])
    padded = np.full(shape, fill, dtype=labels.dtype)
    padded[(slice(None),) + tuple(slice(1, n + 1) for n in labels.shape[1:])] = labels
    return padded


def _spatial_strides(array: np.ndarray) -> list[int]:
    return [stride // array.itemsize for stride in array.strides[1:]]


def _differs(flat: np.ndarray, step: int, out: np.ndarray | None = None) -> np.ndarray:
    """``out[p] = flat[p] != flat[p - step]`` (False for ``p < step``)."""
    out = np.empty(flat.size, dtype=bool) if out is None else out
    out[:step] = False
    np.not_equal(flat[step:], flat[:-step], out=out[step:])
    return out


def _mixed_corners(flat: np.ndarray, strides: list[int]) -> np.ndarray:
    """Flat indices p whose block ``{p - sum of a subset of strides}`` is not uniform (sorted).

    Along the last axis, then axis by axis: a block of axes a..D-1 is mixed iff one of its
    two halves (p and p - stride_a) is mixed or the edge between them joins two labels.
    """
    mixed = _differs(flat, strides[-1])
    spare = None
    for step in reversed(strides[:-1]):
        edge = _differs(flat, step, spare)
        edge[step:] |= mixed[step:]
        edge[step:] |= mixed[:-step]
        mixed, spare = edge, mixed
    return np.flatnonzero(mixed)


def _edge_voxels(flat: np.ndarray, strides: list[int]) -> np.ndarray:
    """Flat indices p with a face neighbour of another label (sorted)."""
    differs = _differs(flat, strides[0])  # differs[p]: p and p - step differ
    edge = np.empty(flat.size, dtype=bool)
    step = strides[0]
    np.logical_or(differs[:-step], differs[step:], out=edge[:-step])  # p differs from p - step or p + step
    edge[-step:] = differs[-step:]
    for step in strides[1:]:
        _differs(flat, step, differs)
        edge |= differs
        edge[:-step] |= differs[step:]
    return np.flatnonzero(edge)


def _neighbour_codes(block: np.ndarray) -> np.ndarray:
    """``codes[j, i]`` = neighbour code of slot j's label in block i (uint8 / uint16 ``(2**D, m)``).

    ``block`` is ``(2**D, m)``: slot k (C order over ``{0, 1}**D``) of each block.
    """
    slots = block.shape[0]
    dtype = np.uint8 if slots <= 8 else np.uint16
    codes = np.empty(block.shape, dtype=dtype)
    for j in range(slots):
        code = (block[0] == block[j]).astype(dtype) << (slots - 1)
        for k in range(1, slots):
            code |= (block[k] == block[j]).view(np.uint8).astype(dtype, copy=False) << (slots - 1 - k)
        codes[j] = code
    return codes


def _extract_numpy(labels: np.ndarray, keep: np.ndarray, first: int, num_classes: int, holds_no_class: bool,
                   corners: bool, use_compiled: bool = True) -> SurfacePoints:
    """2D maps by the compiled scan where numba is installed (and ``use_compiled``); otherwise dense comparisons
    in numpy, then the sparse positions to sorted points (numba's loop where installed)."""
    dims = labels.ndim - 1
    if dims == 2 and use_compiled and sys.byteorder == "little" and compiled("_surface_scan") is not None:
        return _corner_scan(labels, keep, num_classes, corners)
    box = kept_box(labels, first, num_classes, holds_no_class)
    if box is None:
        return _empty(dims, corners)
    fill = 0 if not keep[0] else num_classes  # a label that is no kept class: the outside
    padded = _padded(labels[box], fill)
    flat = padded.reshape(-1)
    strides = _spatial_strides(padded)
    kernels = compiled("_surface_sparse") if use_compiled else None
    shape = np.asarray(padded.shape, dtype=np.int64)
    starts = np.asarray([b.start for b in box[1:]], dtype=np.int64)
    if corners:
        position = _mixed_corners(flat, strides)
        offsets = list(product((0, 1), repeat=dims))
        # slot k of corner p (the block's far voxel) is the voxel p - sum_a (1 - offset_a) * stride_a
        shifts = [sum((1 - o) * s for o, s in zip(offset, strides)) for offset in offsets]
        if kernels is not None:
            return SurfacePoints(*kernels.corner_points(flat, position, np.asarray(shifts, dtype=np.int64), keep,
                                                        shape, starts, num_classes + 1))
        block = np.stack([flat[position - shift] for shift in shifts])  # (2**D, m)
        codes = _neighbour_codes(block)
        slots = len(offsets)
        earlier = np.array([(1 << slots) - (1 << (slots - j)) for j in range(slots)], dtype=codes.dtype)
        wanted = ((codes & earlier[:, None]) == 0) & keep[block]  # the first slot of each kept label
        point_slot = np.flatnonzero(wanted.T)  # point-major: positions stay in increasing order
        point, slot = np.divmod(point_slot, slots)
        values, codes = block[slot, point], codes[slot, point].astype(np.int64)
        position = position[point]
    else:
        position = _edge_voxels(flat, strides)
        if kernels is not None:
            found, values, _ = kernels.edge_points(flat, position, keep, shape, starts, num_classes + 1)
            return SurfacePoints(found, values, None)
        values = flat[position]
        kept = keep[values]
        position, values, codes = position[kept], values[kept], None
    coords = np.empty((len(position), dims + 1), dtype=np.int64)
    for axis, index in enumerate(np.unravel_index(position, padded.shape)):
        coords[:, axis] = index
    # padded index = voxel index + 1 = corner index + 1 (a corner is named by its block's far voxel)
    coords[:, 1:] += np.array([b.start - 1 for b in box[1:]], dtype=np.int64)
    values = values.astype(np.int64)
    order = _class_order(coords[:, 0], values, num_classes)
    return SurfacePoints(coords[order], values[order], None if codes is None else codes[order])


def _corner_scan(labels: np.ndarray, keep: np.ndarray, num_classes: int, corners: bool = True) -> SurfacePoints:
    """:func:`corner_surfels` (or, not ``corners``, :func:`voxel_edges`) of 2D maps ``(N, H, W)`` by the compiled
    scan of :mod:`segfuse.metrics._surface_scan`."""
    fill = 0 if not keep[0] else num_classes  # a label that is no kept class: the outside
    if labels.size == 0:
        return _empty(labels.ndim - 1, corners)
    item = labels.dtype.itemsize
    per_word = 8 // item
    width = labels.shape[-1]
    line_length = -(-width // per_word) * per_word
    if line_length != width or not labels.flags.c_contiguous or labels.ctypes.data % 8:
        labels = _word_aligned(labels, line_length, fill)
    flat = labels.reshape(-1)
    low = np.uint64((1 << (8 * item)) - 1)
    splat = np.uint64(sum(1 << (8 * item * t) for t in range(per_word)))
    shape = np.asarray(labels.shape[:-1] + (width,), dtype=np.int64)
    kernels = compiled("_surface_scan")
    arguments = (flat, flat.view(np.uint64), shape, line_length, per_word, low, splat, fill, keep, num_classes + 1)
    if corners:
        return SurfacePoints(*kernels.corner_points(*arguments))
    found, values, _ = kernels.edge_points(*arguments)
    return SurfacePoints(found, values, None)


def _word_aligned(labels: np.ndarray, line_length: int, fill: int) -> np.ndarray:
    """A copy of ``labels`` on an 8-byte boundary, its last axis padded with ``fill`` to ``line_length``."""
    shape = labels.shape[:-1] + (line_length,)
    size = int(np.prod(shape)) * labels.itemsize
    buffer = np.empty(size + 8, dtype=np.uint8)
    start = -buffer.ctypes.data % 8
    out = buffer[start : start + size].view(labels.dtype).reshape(shape)
    out[..., labels.shape[-1] :] = fill
    out[..., : labels.shape[-1]] = labels
    return out


def _class_order(images: np.ndarray, values: np.ndarray, num_classes: int) -> np.ndarray:
    """Stable order by (image, class) of points already sorted by image."""
    key = images * (num_classes + 1) + values
    if len(key) and key.max() < 1 << 16:
        key = key.astype(np.uint16)  # radix sort
    return np.argsort(key, kind="stable")


def _empty(dims: int, with_codes: bool) -> SurfacePoints:
    none = np.zeros(0, dtype=np.int64)
    return SurfacePoints(np.zeros((0, 1 + dims), dtype=np.int64), none, none if with_codes else None)


# ----------------------------------------------------------------------------------------------- torch (any device)


def kept_region(labels: torch.Tensor, first: int, num_classes: int, holds_no_class: bool) -> tuple[slice, ...] | None:
    """:func:`kept_box` of a tensor (any device)."""
    if first == 0:
        return tuple(slice(0, n) for n in labels.shape)
    values = labels.masked_fill(labels == num_classes, 0) if holds_no_class else labels
    box = [slice(0, labels.shape[0])]
    for size, profile in zip(labels.shape[1:], _axis_max_profiles(values.amax(0) if len(values) > 1 else values[0])):
        where = profile.nonzero()
        if len(where) == 0:
            return None
        box.append(slice(max(int(where[0]) - 1, 0), min(int(where[-1]) + 2, size)))
    return tuple(box)


def _axis_max_profiles(values: torch.Tensor) -> list[torch.Tensor]:
    """``values.amax`` over all axes but one, for each axis (two passes over the volume)."""
    if values.dim() == 1:
        return [values]
    return [values.flatten(1).amax(1)] + _axis_max_profiles(values.amax(0))


def _sorted_torch(coords, labels, codes, box, num_classes) -> SurfacePoints:
    labels = labels.long()
    coords = coords + torch.tensor([b.start for b in box], device=coords.device)
    order = torch.argsort(coords[:, 0] * (num_classes + 1) + labels, stable=True)
    return SurfacePoints(coords[order].cpu().numpy(), labels[order].cpu().numpy(),
                         None if codes is None else codes[order].cpu().numpy())


def voxel_edges_torch(labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int,
                      holds_no_class: bool = True) -> SurfacePoints:
    """:func:`voxel_edges` in torch (any device; the CUDA path)."""
    box = kept_region(labels, first, num_classes, holds_no_class)
    if box is None:
        return _empty(labels.dim() - 1, False)
    labels = labels[box]
    edge = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for axis in range(1, labels.dim()):
        size = labels.shape[axis]
        edge.narrow(axis, 0, 1).fill_(True)
        edge.narrow(axis, size - 1, 1).fill_(True)
        if size > 1:
            differs = labels.narrow(axis, 1, size - 1) != labels.narrow(axis, 0, size - 1)
            edge.narrow(axis, 1, size - 1).logical_or_(differs)
            edge.narrow(axis, 0, size - 1).logical_or_(differs)
    coords = edge.nonzero()
    values = labels[tuple(coords.T)]
    selected = keep[values.long()]
    return _sorted_torch(coords[selected], values[selected], None, box, num_classes)


def corner_surfels_torch(labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int,
                         holds_no_class: bool = True) -> SurfacePoints:
    """:func:`corner_surfels` in torch (any device; the CUDA path)."""
    dims = labels.dim() - 1
    box = kept_region(labels, first, num_classes, holds_no_class)
    if box is None:
        return _empty(dims, True)
    labels = labels[box]
    spatial = labels.shape[1:]
    padded = torch.full((len(labels),) + tuple(n + 2 for n in spatial), num_classes, dtype=labels.dtype,
                        device=labels.device)
    padded[(slice(None),) + tuple(slice(1, n + 1) for n in spatial)] = labels
    local = tuple(n + 1 for n in spatial)
    offsets = list(product((0, 1), repeat=dims))
    views = [padded[(slice(None),) + tuple(slice(o, o + n) for o, n in zip(offset, local))] for offset in offsets]
    mixed = views[1] != views[0]
    for view in views[2:]:
        mixed.logical_or_(view != views[0])
    coords = mixed.nonzero()
    strides = torch.tensor(padded.stride(), device=labels.device)
    shifts = (torch.tensor([(0,) + offset for offset in offsets], device=labels.device) * strides).sum(1)
    position = (coords * strides).sum(1)  # no integer matmul: CUDA has none
    block = padded.reshape(-1)[position[:, None] + shifts[None, :]]  # (m, 2**D) labels, C order
    kept = keep[block.long()]
    wanted = kept.any(1)
    coords, block, kept = coords[wanted], block[wanted], kept[wanted]
    slots = len(offsets)
    codes = torch.zeros(block.shape, dtype=torch.int32, device=block.device)
    for k in range(slots):
        codes |= (block == block[:, k : k + 1]).int() << (slots - 1 - k)
    earlier_bits = torch.tensor([(1 << slots) - (1 << (slots - j)) for j in range(slots)], dtype=torch.int32,
                                device=labels.device)
    first_slot = (codes & earlier_bits) == 0  # no earlier slot holds the same label
    point, slot = (first_slot & kept).nonzero(as_tuple=True)
    return _sorted_torch(coords[point], block[point, slot], codes[point, slot].long(), box, num_classes)

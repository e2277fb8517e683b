"""Surface points of every class of a class map, in one pass (torch, any device).

Two surface definitions, each the one of its reference:

- ``"voxels"`` (MONAI's ``get_mask_edges`` without spacing): the voxels of class c with a
  face neighbour (4-connected in 2D, 6 in 3D) that is not c, or that lie on the image
  border (``binary_erosion(mask) ^ mask`` with a zero border). Each weighs 1.
- ``"corners"`` (DeepMind surface-distance, MONAI's ``use_subvoxels=True``): points of the
  voxel-corner grid (shape ``S + 1``) whose ``2**D`` surrounding voxels hold c and not c
  (voxels outside the image are not c). Each carries its neighbour code, whose surfel area
  (3D) or contour length (2D) comes from :mod:`segfuse.metrics._surface_tables`.

Convention:
    Labels equal to ``sentinel`` (outside the image, or ignored pixels) belong to no class;
    they make surfaces like any other label. Points of a class not in ``keep`` are dropped.
    Coordinates are integer indices of the voxel (or corner) grid; corner ``i`` sits between
    voxels ``i - 1`` and ``i``, so distances between corners equal the references'.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import torch

from segfuse.metrics._surface_tables import encoding_weights


@dataclass(frozen=True)
class SurfacePoints:
    """Surface points of all classes of one map, grouped by class.

    ``coords`` (m, D) int64 grid indices, ``labels`` (m,) int64 sorted, ``codes`` (m,) int64
    neighbour codes (corners) or None (voxels), ``grid`` the grid's shape.
    """

    coords: torch.Tensor
    labels: torch.Tensor
    codes: torch.Tensor | None
    grid: tuple[int, ...]


def kept_region(labels: torch.Tensor, first: int, num_classes: int, holds_no_class: bool) -> tuple[slice, ...] | None:
    """Bounding box of the voxels of the kept classes ``first`` .. ``num_classes - 1``, grown by one voxel.

    Surfaces of those classes lie inside it: the voxels around it hold other labels, as do
    those outside the image. With ``first == 0`` it is the whole image; None when no voxel
    is kept. ``holds_no_class``: some voxels may hold ``num_classes`` (ignored pixels).
    """
    if first == 0:
        return tuple(slice(0, n) for n in labels.shape)
    values = labels.masked_fill(labels == num_classes, 0) if holds_no_class else labels
    box = []
    for size, profile in zip(labels.shape, _axis_max_profiles(values)):
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


def _select(labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mask of the points whose label is a kept class (``keep`` is a bool lookup over labels)."""
    return keep[labels.long()]


def _sorted_by_label(coords, labels, codes, grid, box=None) -> SurfacePoints:
    labels = labels.long()
    if box is not None:
        coords = coords + torch.tensor([b.start for b in box], device=coords.device)
    order = torch.argsort(labels, stable=True)
    return SurfacePoints(coords[order], labels[order], None if codes is None else codes[order], grid)


def _empty(dims: int, grid, device, with_codes: bool) -> SurfacePoints:
    none = torch.zeros(0, dtype=torch.int64, device=device)
    return SurfacePoints(torch.zeros(0, dims, dtype=torch.int64, device=device), none, none if with_codes else None, grid)


def voxel_edges(
    labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int, holds_no_class: bool = True
) -> SurfacePoints:
    """MONAI's edge voxels of the kept classes of ``labels`` (a class map ``S``, one image, any D).

    Args:
        labels: integer class map of one image; ``num_classes`` marks pixels of no class.
        keep: bool ``(num_classes + 1,)`` lookup, True for the wanted classes
            (``first`` .. ``num_classes - 1``).
        holds_no_class: whether some pixels may hold ``num_classes`` (ignored ones).
    """
    grid = tuple(labels.shape)
    box = kept_region(labels, first, num_classes, holds_no_class)
    if box is None:
        return _empty(labels.dim(), grid, labels.device, False)
    labels = labels[box]
    edge = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for axis in range(labels.dim()):
        size = labels.shape[axis]
        edge.narrow(axis, 0, 1).fill_(True)
        edge.narrow(axis, size - 1, 1).fill_(True)
        if size > 1:
            differs = labels.narrow(axis, 1, size - 1) != labels.narrow(axis, 0, size - 1)
            edge.narrow(axis, 1, size - 1).logical_or_(differs)
            edge.narrow(axis, 0, size - 1).logical_or_(differs)
    coords = edge.nonzero()
    values = labels[tuple(coords.T)]
    selected = _select(values, keep)
    return _sorted_by_label(coords[selected], values[selected], None, grid, box)


def corner_surfels(
    labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int, holds_no_class: bool = True
) -> SurfacePoints:
    """DeepMind's surface elements of the kept classes of ``labels`` (2D or 3D, one image), with codes.

    Arguments as :func:`voxel_edges`; voxels outside the image hold no class.
    """
    dims = labels.dim()
    grid = tuple(n + 1 for n in labels.shape)
    box = kept_region(labels, first, num_classes, holds_no_class)
    if box is None:
        return _empty(dims, grid, labels.device, True)
    labels = labels[box]
    padded = torch.full(tuple(n + 2 for n in labels.shape), num_classes, dtype=labels.dtype, device=labels.device)
    padded[tuple(slice(1, n + 1) for n in labels.shape)] = labels
    local = tuple(n + 1 for n in labels.shape)
    offsets = list(product((0, 1), repeat=dims))
    views = [padded[tuple(slice(o, o + n) for o, n in zip(offset, local))] for offset in offsets]
    mixed = views[1] != views[0]
    for view in views[2:]:
        mixed.logical_or_(view != views[0])
    coords = mixed.nonzero()
    strides = torch.tensor(padded.stride(), device=labels.device)
    shifts = torch.tensor(offsets, device=labels.device) @ strides
    block = padded.reshape(-1)[(coords @ strides)[:, None] + shifts[None, :]]  # (m, 2**D) labels, C order
    kept = _select(block, keep)
    wanted = kept.any(1)
    coords, block, kept = coords[wanted], block[wanted], kept[wanted]
    codes = _neighbour_codes(block)
    slots = len(offsets)
    earlier_bits = torch.tensor([(1 << slots) - (1 << (slots - j)) for j in range(slots)], device=labels.device)
    first_slot = (codes & earlier_bits) == 0  # no earlier slot holds the same label
    point, slot = (first_slot & kept).nonzero(as_tuple=True)
    return _sorted_by_label(coords[point], block[point, slot], codes[point, slot], grid, box)


def _neighbour_codes(block: torch.Tensor) -> torch.Tensor:
    """``codes[i, j]`` = the neighbour code of slot j's label in corner i (int64 ``(m, 2**D)``)."""
    slots = block.shape[1]
    codes = torch.zeros(block.shape, dtype=torch.int64, device=block.device)
    for k in range(slots):
        codes |= (block == block[:, k : k + 1]).long() << (slots - 1 - k)
    return codes

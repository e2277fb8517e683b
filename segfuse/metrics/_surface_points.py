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
    The label ``num_classes`` (ignored pixels) and the outside of the image belong to no
    class; they make surfaces like any other label. Points of a class not in ``keep`` are
    dropped. Coordinates are the image index in the batch then integer indices of the voxel
    (or corner) grid; corner ``i`` sits between voxels ``i - 1`` and ``i``, so distances
    between corners equal the references'.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import torch



@dataclass(frozen=True)
class SurfacePoints:
    """Surface points of all classes of a batch of maps, sorted by (image, class).

    ``coords`` (m, 1 + D) int64: the image index, then the grid indices; ``labels`` (m,)
    int64 classes; ``codes`` (m,) int64 neighbour codes (corners) or None (voxels).
    """

    coords: torch.Tensor
    labels: torch.Tensor
    codes: torch.Tensor | None


def kept_region(labels: torch.Tensor, first: int, num_classes: int, holds_no_class: bool) -> tuple[slice, ...] | None:
    """Bounding box over a batch ``(N, *S)`` of the kept classes ``first`` .. ``num_classes - 1``, grown by one.

    Surfaces of those classes lie inside it: the voxels around it hold other labels, as do
    those outside the image. With ``first == 0`` it is the whole image; None when no voxel
    is kept. ``holds_no_class``: some voxels may hold ``num_classes`` (ignored pixels).
    """
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


def _select(labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mask of the points whose label is a kept class (``keep`` is a bool lookup over labels)."""
    return keep[labels.long()]


def _sorted(coords, labels, codes, box, num_classes) -> SurfacePoints:
    labels = labels.long()
    coords = coords + torch.tensor([b.start for b in box], device=coords.device)
    order = torch.argsort(coords[:, 0] * (num_classes + 1) + labels, stable=True)
    return SurfacePoints(coords[order], labels[order], None if codes is None else codes[order])


def _empty(dims: int, device, with_codes: bool) -> SurfacePoints:
    none = torch.zeros(0, dtype=torch.int64, device=device)
    return SurfacePoints(torch.zeros(0, 1 + dims, dtype=torch.int64, device=device), none, none if with_codes else None)


def voxel_edges(
    labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int, holds_no_class: bool = True
) -> SurfacePoints:
    """MONAI's edge voxels of the kept classes of a batch of class maps ``(N, *S)`` (any D).

    Args:
        labels: integer class maps; ``num_classes`` marks pixels of no class.
        keep: bool ``(num_classes + 1,)`` lookup, True for the wanted classes
            (``first`` .. ``num_classes - 1``).
        holds_no_class: whether some pixels may hold ``num_classes`` (ignored ones).
    """
    box = kept_region(labels, first, num_classes, holds_no_class)
    if box is None:
        return _empty(labels.dim() - 1, labels.device, False)
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
    selected = _select(values, keep)
    return _sorted(coords[selected], values[selected], None, box, num_classes)


def corner_surfels(
    labels: torch.Tensor, keep: torch.Tensor, first: int, num_classes: int, holds_no_class: bool = True
) -> SurfacePoints:
    """DeepMind's surface elements of the kept classes of a batch of class maps ``(N, *S)`` (2D or 3D).

    Arguments as :func:`voxel_edges`; voxels outside the image hold no class. Corner ``i``
    of the grid ``S + 1`` sits between voxels ``i - 1`` and ``i``.
    """
    dims = labels.dim() - 1
    box = kept_region(labels, first, num_classes, holds_no_class)
    if box is None:
        return _empty(dims, labels.device, True)
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
    kept = _select(block, keep)
    wanted = kept.any(1)
    coords, block, kept = coords[wanted], block[wanted], kept[wanted]
    codes = _neighbour_codes(block)
    slots = len(offsets)
    earlier_bits = torch.tensor([(1 << slots) - (1 << (slots - j)) for j in range(slots)], dtype=torch.int32,
                                device=labels.device)
    first_slot = (codes & earlier_bits) == 0  # no earlier slot holds the same label
    point, slot = (first_slot & kept).nonzero(as_tuple=True)
    return _sorted(coords[point], block[point, slot], codes[point, slot].long(), box, num_classes)


def _neighbour_codes(block: torch.Tensor) -> torch.Tensor:
    """``codes[i, j]`` = the neighbour code of slot j's label in corner i (int32 ``(m, 2**D)``)."""
    slots = block.shape[1]
    codes = torch.zeros(block.shape, dtype=torch.int32, device=block.device)
    for k in range(slots):
        codes |= (block == block[:, k : k + 1]).int() << (slots - 1 - k)
    return codes

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


def _select(labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mask of the points whose label is a kept class (``keep`` is a bool lookup over labels)."""
    return keep[labels.long()]


def _sorted_by_label(coords, labels, codes, grid) -> SurfacePoints:
    labels = labels.long()
    order = torch.argsort(labels, stable=True)
    return SurfacePoints(coords[order], labels[order], None if codes is None else codes[order], grid)


def voxel_edges(labels: torch.Tensor, keep: torch.Tensor) -> SurfacePoints:
    """MONAI's edge voxels of every class of ``labels`` (a class map ``S``, one image).

    Args:
        labels: integer class map of one image, any D >= 1; ignored pixels hold a label not in ``keep``.
        keep: bool ``(L,)`` lookup, True for the classes whose surfaces are wanted; L > max label.
    """
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
    values = labels[edge]
    selected = _select(values, keep)
    return _sorted_by_label(coords[selected], values[selected], None, tuple(labels.shape))


def corner_surfels(labels: torch.Tensor, keep: torch.Tensor, sentinel: int) -> SurfacePoints:
    """DeepMind's surface elements of every class of ``labels`` (2D or 3D, one image), with their codes.

    Args:
        labels: integer class map of one image; ``sentinel`` marks pixels of no class.
        keep: bool lookup of the wanted classes (as in :func:`voxel_edges`).
        sentinel: label given to the voxels outside the image.
    """
    dims = labels.dim()
    padded = torch.full(tuple(n + 2 for n in labels.shape), sentinel, dtype=labels.dtype, device=labels.device)
    padded[tuple(slice(1, n + 1) for n in labels.shape)] = labels
    grid = tuple(n + 1 for n in labels.shape)
    offsets = list(product((0, 1), repeat=dims))
    views = [padded[tuple(slice(o, o + n) for o, n in zip(offset, grid))] for offset in offsets]
    mixed = torch.zeros(grid, dtype=torch.bool, device=labels.device)
    for view in views[1:]:
        mixed.logical_or_(view != views[0])
    coords = mixed.nonzero()
    block = torch.stack([view[mixed] for view in views], dim=1)  # (m, 2**D) labels, C order
    weights = torch.as_tensor(encoding_weights(dims), device=labels.device)
    same = block[:, :, None] == block[:, None, :]  # (m, slot j, slot k)
    codes = (same.long() * weights).sum(-1)  # code of slot j's class
    earlier = torch.tril(torch.ones(len(offsets), len(offsets), dtype=torch.bool, device=labels.device), -1)
    first = ~(same & earlier).any(-1)  # slot j holds the first occurrence of its label
    chosen = first & _select(block, keep)
    point, slot = chosen.nonzero(as_tuple=True)
    return _sorted_by_label(coords[point], block[point, slot], codes[point, slot], grid)

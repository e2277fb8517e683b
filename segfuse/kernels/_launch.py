"""Host-side helpers shared by the kernel launchers: the work split, tile configurations,
memory layouts, output allocation, device guards and the launch itself.

Nothing here imports Triton; the kernel modules do, and they are imported lazily by the
dispatch in :mod:`segfuse.kernels` (so that ``TRITON_INTERPRET`` is read when the kernels
are defined, not when :mod:`segfuse` is imported).

Determinism: the split of the work into programs depends only on the problem's shape
(never on the GPU's multiprocessor count), and partial sums are combined in a fixed order,
so a kernel gives the same bits on every run and on every GPU model for one tile
configuration. Tile configurations come from :data:`TILE_CONFIGS`, a fixed table (no
run-time autotuning, which would make the bits depend on the GPU and on timing noise);
``benchmarks/device_check.py`` sweeps the alternatives on a GPU.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import NamedTuple, Optional

import torch

INT32_LIMIT = 2**31
# The most programs one streaming launch starts. The work split is a pure function of the
# shape: each program takes an equal run of tiles of one image, at least MIN_TILES_PER_PROGRAM.
MAX_PROGRAMS = 2048
MIN_TILES_PER_PROGRAM = 4
# Under the interpreter programs run one after another in Python: fewer, larger ones.
INTERPRETER_MAX_PROGRAMS = 12
INTERPRETER_TILE_ELEMENTS = 4096
# Elements of one [rows, classes] tile of the small finish kernels.
TILE_ROWS_ELEMENTS = 4096


class TileConfig(NamedTuple):
    """Pixels per tile, warps per program and software-pipelining depth of a kernel."""

    block_s: int
    num_warps: int
    num_stages: int = 1


# (kernel family, BLOCK_C) -> TileConfig. BLOCK_C up to 32: one pixel per thread, every
# class of it in the thread's registers (softmax sums and maxima need no shuffles or
# barriers); wider class tiles spread the classes over lanes and warps.
TILE_CONFIGS = {
    "softmax": {1: TileConfig(128, 4), 2: TileConfig(128, 4), 4: TileConfig(128, 4), 8: TileConfig(128, 4),
                16: TileConfig(128, 4), 32: TileConfig(128, 4), 64: TileConfig(32, 4), 128: TileConfig(32, 8),
                256: TileConfig(16, 8)},
    # Classes contiguous in memory (channels-last): the compiler lays them across lanes;
    # small tiles keep it free of spills.
    "softmax_channels_last": {1: TileConfig(128, 4), 2: TileConfig(64, 4), 4: TileConfig(32, 4), 8: TileConfig(32, 4),
                              16: TileConfig(32, 4), 32: TileConfig(32, 4), 64: TileConfig(16, 4),
                              128: TileConfig(8, 4), 256: TileConfig(8, 8), 512: TileConfig(8, 8),
                              1024: TileConfig(8, 8)},
    "sigmoid": {1: TileConfig(1024, 4), 2: TileConfig(512, 4), 4: TileConfig(256, 4), 8: TileConfig(128, 4),
                16: TileConfig(64, 4)},
    "confusion": {1: TileConfig(128, 4), 2: TileConfig(128, 4), 4: TileConfig(128, 4), 8: TileConfig(128, 4),
                  16: TileConfig(128, 4), 32: TileConfig(128, 4), 64: TileConfig(64, 4), 128: TileConfig(32, 8),
                  256: TileConfig(16, 8), 512: TileConfig(8, 8), 1024: TileConfig(8, 8)},
    "class_map": {0: TileConfig(1024, 4)},
}
_OVERRIDES: dict[str, TileConfig] = {}


def softmax_family(stride_c: int, num_classes: int) -> str:
    """The tile family of a [classes, pixels] kernel for this memory layout."""
    return "softmax_channels_last" if stride_c == 1 and num_classes > 1 else "softmax"


def tile_config(family: str, block_c: int) -> TileConfig:
    """The tile configuration of a kernel family for a class tile (override, else table)."""
    if family in _OVERRIDES:
        return _OVERRIDES[family]
    config = TILE_CONFIGS[family][block_c]
    if interpreter_enabled():  # the interpreter pays per operation, not per element: wide tiles
        return config._replace(block_s=max(config.block_s, INTERPRETER_TILE_ELEMENTS // max(block_c, 1)))
    return config


@contextlib.contextmanager
def override_tile_config(family: str, config: TileConfig):
    """Use ``config`` for every launch of ``family`` inside the block (the device sweep)."""
    previous = _OVERRIDES.get(family)
    _OVERRIDES[family] = TileConfig(*config)
    try:
        yield
    finally:
        if previous is None:
            _OVERRIDES.pop(family, None)
        else:
            _OVERRIDES[family] = previous


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def next_power_of_2(value: int) -> int:
    return 1 if value <= 1 else 1 << (int(value) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


class WorkSplit(NamedTuple):
    """Programs per image (``chunks``), tiles per program, and the programs in all."""

    chunks: int
    tiles_per_chunk: int
    programs: int


def split_work(tiles_per_image: int, images: int, max_programs: Optional[int] = None) -> WorkSplit:
    """Cut each image's run of tiles into equal chunks; a function of the shape alone.

    At most about ``max_programs`` programs (MAX_PROGRAMS; INTERPRETER_MAX_PROGRAMS under
    the interpreter), each with at least MIN_TILES_PER_PROGRAM tiles unless an image has
    fewer. Never depends on the device, so results are the same on every GPU model.
    """
    if max_programs is None:
        max_programs = INTERPRETER_MAX_PROGRAMS if interpreter_enabled() else MAX_PROGRAMS
    tiles_per_image, images = max(int(tiles_per_image), 1), max(int(images), 1)
    total = tiles_per_image * images
    per_chunk = max(MIN_TILES_PER_PROGRAM if not interpreter_enabled() else 1, cdiv(total, max_programs))
    per_chunk = min(per_chunk, tiles_per_image)
    chunks = cdiv(tiles_per_image, per_chunk)
    return WorkSplit(chunks, per_chunk, chunks * images)


# ---------------------------------------------------------------------------------------
# Memory layouts: (N, C, *S) tensors are read through (stride_n, stride_c, stride_s) when
# their spatial dims collapse to one stride (contiguous and channels-last both do), so
# neither layout is copied. Other layouts are made contiguous first.


def spatial_stride(tensor: torch.Tensor, first: int) -> Optional[int]:
    """The one stride of dims ``first..`` viewed as a single flattened dim, or None."""
    sizes, strides = tensor.shape[first:], tensor.stride()[first:]
    stride = None
    expected = None
    for size, step in zip(reversed(sizes), reversed(strides)):
        if size == 1:
            continue
        if stride is None:
            stride, expected = step, step * size
        elif step != expected:
            return None
        else:
            expected = step * size
    return 1 if stride is None else stride


class ClassLayout(NamedTuple):
    """A tensor (N, C, *S) as (N, C, S) through strides, with the tensor actually read."""

    tensor: torch.Tensor
    stride_n: int
    stride_c: int
    stride_s: int
    span: int  # one past the largest element offset inside one image


def class_layout(tensor: torch.Tensor) -> ClassLayout:
    """Strides of (N, C, *S) for the kernels; a contiguous copy only when the spatial dims
    do not collapse (e.g. a permuted view). Channels-last tensors are read in place."""
    stride_s = spatial_stride(tensor, 2)
    if stride_s is None:
        tensor = tensor.contiguous()
        stride_s = spatial_stride(tensor, 2)
    c, s = tensor.shape[1], math.prod(tensor.shape[2:])
    stride_n, stride_c = tensor.stride(0), tensor.stride(1)
    span = 1 + (c - 1) * stride_c + max(s - 1, 0) * stride_s
    return ClassLayout(tensor, stride_n, stride_c, stride_s, span)


class PixelLayout(NamedTuple):
    """A label map (N, *S) as (N, S) through strides (bool viewed as uint8)."""

    tensor: torch.Tensor
    stride_n: int
    stride_s: int


def pixel_layout(labels: torch.Tensor) -> PixelLayout:
    stride_s = spatial_stride(labels, 1)
    if stride_s is None:
        labels = labels.contiguous()
        stride_s = spatial_stride(labels, 1)
    if labels.dtype == torch.bool:
        labels = labels.view(torch.uint8)
    return PixelLayout(labels, labels.stride(0) if labels.dim() else 0, stride_s)


def gradient_like(logits: torch.Tensor) -> torch.Tensor:
    """An uninitialised gradient for ``logits``: the logits' own layout when it collapses
    (contiguous, channels-last), else contiguous. Shared by the launchers and the fake
    (meta) kernels, so that both give the same strides."""
    if spatial_stride(logits, 2) is None:
        return torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
    return torch.empty_like(logits)


def needs_int64(*spans: int) -> bool:
    """Whether offsets inside one image can reach 2^31 (then the kernels index in int64)."""
    return max(spans) >= INT32_LIMIT


# ---------------------------------------------------------------------------------------
# Outputs, devices and launches.

_POISON = False


@contextlib.contextmanager
def poisoned_outputs():
    """Fill every buffer the launchers allocate with NaN (floats) or a sentinel (integers)
    inside the block, so that a test sees any element a kernel failed to write."""
    global _POISON
    previous, _POISON = _POISON, True
    try:
        yield
    finally:
        _POISON = previous


def new_empty(shape, dtype: torch.dtype, device) -> torch.Tensor:
    """torch.empty, or a poisoned buffer inside :func:`poisoned_outputs`."""
    return poison(torch.empty(shape, dtype=dtype, device=device))


def poison(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` filled with NaN inside :func:`poisoned_outputs` (else untouched)."""
    if _POISON:
        tensor.fill_(float("nan") if tensor.dtype.is_floating_point else -(2**30) + 7)
    return tensor


def device_guard(device: torch.device):
    """Make ``device`` current while launching (Triton launches on the current device and
    its current stream). A no-op context for CPU tensors (the interpreter)."""
    if device.type == "cuda":
        return torch.cuda.device(device)
    return contextlib.nullcontext()


# name -> the last compiled kernel launched under that name (None under the interpreter):
# registers, spills and shared memory for benchmarks/device_check.py.
COMPILED: dict = {}
_LAUNCH_HOOK = None


def kernel_name(kernel) -> str:
    fn = getattr(kernel, "fn", kernel)
    return getattr(fn, "__name__", repr(kernel))


def launch(kernel, grid, *args, **kwargs):
    """``kernel[grid](*args, **kwargs)``, recording the compiled kernel (see COMPILED)."""
    if _LAUNCH_HOOK is not None:
        return _LAUNCH_HOOK(kernel, grid, args, kwargs)
    compiled = kernel[grid](*args, **kwargs)
    COMPILED[kernel_name(kernel)] = compiled if hasattr(compiled, "metadata") else None
    return compiled


@contextlib.contextmanager
def launch_hook(hook):
    """Replace launching by ``hook(kernel, grid, args, kwargs)`` inside the block (used by
    benchmarks/kernel_resources.py to compile the exact launches for a GPU target)."""
    global _LAUNCH_HOOK
    previous, _LAUNCH_HOOK = _LAUNCH_HOOK, hook
    try:
        yield
    finally:
        _LAUNCH_HOOK = previous


def kernel_ignore_index(ignore_index: Optional[int], dtype: torch.dtype):
    """The ignore value the kernels compare with: None when no value of ``dtype`` equals it.

    Same convention as :func:`segfuse._validate.representable_ignore_index` (uint8 labels
    with ignore_index=-1 ignore nothing, rather than 255 as a wrapped comparison would).
    Float targets compare with the value rounded to their dtype.
    """
    if ignore_index is None or dtype == torch.bool:
        return None
    if dtype.is_floating_point:
        return float(torch.tensor(ignore_index, dtype=torch.float64).to(dtype))
    info = torch.iinfo(dtype)
    return int(ignore_index) if info.min <= ignore_index <= info.max else None


def vector_or_dummy(values: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """A per-class vector as contiguous float32 on ``like``'s device, or a 1-element dummy."""
    if values is None:
        return torch.empty(1, dtype=torch.float32, device=like.device)
    return values.to(device=like.device, dtype=torch.float32).reshape(-1).contiguous()

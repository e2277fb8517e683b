"""CUDA benchmark of the fused kernels: DiceCE forward + backward and the confusion matrix.

``run_cuda_bench`` times each implementation with CUDA events (median of ``repeats``),
records the peak memory beyond the inputs, and compares with the floor: the bytes that
must move (DiceCE forward + backward: read the logits twice, the target twice, write the
gradient once; confusion matrix: read the scores and the target once) over the
device-to-device copy bandwidth measured in the same run. ``format_table`` renders the
rows as a Markdown table. Used by ``segfuse bench --device cuda`` and
``benchmarks/bench_cuda.py``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from typing import Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F

# The configurations: (shape (N, C, *S), dtype).
DEFAULT_CASES = (((16, 21, 512, 512), torch.float32), ((2, 4, 128, 128, 128), torch.bfloat16))
CONFUSION_SHAPE = (16, 21, 512, 512)
MIB = 2.0**20


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        raise RuntimeError("segfuse's CUDA benchmark needs a CUDA device (torch.cuda.is_available() is False)")
    from segfuse import kernels

    if not kernels.triton_available():
        raise RuntimeError("segfuse's CUDA benchmark needs triton (pip install 'segfuse[triton]')")
    if kernels.kernels_disabled():
        raise RuntimeError("SEGFUSE_DISABLE_KERNELS is set; unset it to benchmark the fused kernels")


@contextlib.contextmanager
def _torch_path():
    """Route segfuse through its torch reference path (SEGFUSE_DISABLE_KERNELS=1)."""
    previous = os.environ.get("SEGFUSE_DISABLE_KERNELS")
    os.environ["SEGFUSE_DISABLE_KERNELS"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SEGFUSE_DISABLE_KERNELS"]
        else:
            os.environ["SEGFUSE_DISABLE_KERNELS"] = previous


def copy_bandwidth(nbytes: int, repeats: int = 20) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write) on a buffer of ``nbytes``."""
    source = torch.empty(max(int(nbytes), 1 << 26), dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    times = []
    for i in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        target.copy_(source)
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end) / 1e3)
    return 2 * source.numel() / statistics.median(times)


def _time_loss(loss_fn: Callable, logits: torch.Tensor, target, repeats: int, warmup: int) -> dict:
    """Median forward / backward / total ms (CUDA events) and the peak extra memory."""
    forward, backward, total = [], [], []
    for i in range(warmup + repeats):
        logits.grad = None
        events = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
        events[0].record()
        loss = loss_fn(logits, target)
        events[1].record()
        loss.backward()
        events[2].record()
        torch.cuda.synchronize()
        if i >= warmup:
            forward.append(events[0].elapsed_time(events[1]))
            backward.append(events[1].elapsed_time(events[2]))
            total.append(events[0].elapsed_time(events[2]))
    logits.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    loss_fn(logits, target).backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    logits.grad = None
    return {"forward_ms": statistics.median(forward), "backward_ms": statistics.median(backward),
            "total_ms": statistics.median(total), "peak_extra_mib": peak / MIB}


def _dice_ce_implementations(num_classes: int) -> list[tuple[str, Callable, Callable]]:
    """(name, loss_fn(logits, target), context factory) of every implementation available."""
    import segfuse

    segfuse_loss = segfuse.DiceCELoss(validate_args=False)
    rows = [
        ("segfuse DiceCELoss (fused kernels)", segfuse_loss, contextlib.nullcontext),
        ("segfuse DiceCELoss (torch path)", segfuse_loss, _torch_path),
        ("torch cross_entropy (CE only)", lambda x, y: F.cross_entropy(x, y), contextlib.nullcontext),
    ]
    try:
        from monai.losses import DiceCELoss as MonaiDiceCELoss
    except ImportError:
        return rows
    monai_loss = MonaiDiceCELoss(softmax=True, to_onehot_y=True)
    rows.append(("MONAI DiceCELoss", lambda x, y: monai_loss(x, y.unsqueeze(1)), contextlib.nullcontext))
    return rows


def bench_dice_ce(shape: Sequence[int], dtype: torch.dtype, repeats: int = 20, warmup: int = 3,
                  bandwidth: Optional[float] = None, label_dtype: torch.dtype = torch.int64) -> list[dict]:
    """DiceCE forward + backward of every implementation at one shape and dtype."""
    _require_cuda()
    shape = tuple(int(s) for s in shape)
    generator = torch.Generator(device="cuda").manual_seed(0)
    logits = torch.randn(shape, device="cuda", generator=generator).to(dtype).requires_grad_()
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), device="cuda", generator=generator).to(label_dtype)
    moved = 3 * logits.numel() * logits.element_size() + 2 * target.numel() * target.element_size()
    bandwidth = bandwidth or copy_bandwidth(logits.numel() * logits.element_size(), repeats)
    floor_ms = moved / bandwidth * 1e3
    rows = []
    for name, loss_fn, context in _dice_ce_implementations(shape[1]):
        row = {"case": "DiceCE fwd+bwd", "impl": name, "shape": "x".join(map(str, shape)),
               "dtype": str(dtype).replace("torch.", ""), "floor_ms": floor_ms, "copy_gbps": bandwidth / 1e9,
               "grad_mib": logits.numel() * logits.element_size() / MIB}
        try:
            with context():
                row.update(_time_loss(loss_fn, logits, target, repeats, warmup))
            row["x_floor"] = row["total_ms"] / floor_ms
        except Exception as error:  # a peer that cannot run this configuration (dtype, memory)
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            torch.cuda.empty_cache()
        rows.append(row)
    fused = next((r["total_ms"] for r in rows if "fused" in r["impl"] and "total_ms" in r), None)
    for row in rows:
        if fused and "total_ms" in row:
            row["vs_fused"] = row["total_ms"] / fused
    return rows


def bench_confusion(shape: Sequence[int] = CONFUSION_SHAPE, dtype: torch.dtype = torch.float32, repeats: int = 20,
                    warmup: int = 3, bandwidth: Optional[float] = None,
                    label_dtype: torch.dtype = torch.int64) -> list[dict]:
    """Confusion matrix update from scores: the fused kernel vs torch argmax + bincount."""
    _require_cuda()
    from segfuse import kernels

    shape = tuple(int(s) for s in shape)
    c = shape[1]
    scores = torch.randn(shape, device="cuda").to(dtype)
    target = torch.randint(0, c, (shape[0], *shape[2:]), device="cuda").to(label_dtype)
    moved = scores.numel() * scores.element_size() + target.numel() * target.element_size()
    bandwidth = bandwidth or copy_bandwidth(scores.numel() * scores.element_size(), repeats)

    def torch_bincount():
        return torch.bincount(target.reshape(-1) * c + scores.argmax(1).reshape(-1), minlength=c * c).view(c, c)

    def fused():
        return kernels.fused_confusion_matrix(scores, target, c)

    assert torch.equal(fused(), torch_bincount()), "fused confusion matrix differs from torch.bincount"
    rows = []
    for name, fn in (("segfuse confusion kernel (argmax fused)", fused), ("torch argmax + bincount", torch_bincount)):
        times = []
        for i in range(warmup + repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            if i >= warmup:
                times.append(start.elapsed_time(end))
        median = statistics.median(times)
        rows.append({"case": "confusion update", "impl": name, "shape": "x".join(map(str, shape)),
                     "dtype": str(dtype).replace("torch.", ""), "total_ms": median,
                     "floor_ms": moved / bandwidth * 1e3, "x_floor": median / (moved / bandwidth * 1e3),
                     "bandwidth_fraction": moved / (median / 1e3) / bandwidth, "copy_gbps": bandwidth / 1e9})
    return rows


def run_cuda_bench(shapes: Optional[Iterable[Sequence[int]]] = None, dtype: Optional[torch.dtype] = None,
                   repeats: int = 20, include_confusion: bool = True) -> list[dict]:
    """All CUDA rows: DiceCE per (shape, dtype), then the confusion matrix.

    ``shapes`` None takes the issue's cases (16x21x512x512 fp32, 2x4x128x128x128 bf16);
    ``dtype`` overrides the dtype of every case (None: each default case's own, float32
    for given shapes). Raises RuntimeError with a clear message without CUDA / triton.
    """
    _require_cuda()
    if shapes is None:
        cases = [(shape, dtype or case_dtype) for shape, case_dtype in DEFAULT_CASES]
    else:
        cases = [(tuple(shape), dtype or torch.float32) for shape in shapes]
    largest = max(torch.Size(shape).numel() * torch.empty(0, dtype=d).element_size() for shape, d in cases)
    bandwidth = copy_bandwidth(largest, repeats)
    rows = []
    for shape, case_dtype in cases:
        rows.extend(bench_dice_ce(shape, case_dtype, repeats, bandwidth=bandwidth))
    if include_confusion:
        rows.extend(bench_confusion(repeats=repeats, bandwidth=bandwidth))
    device = torch.cuda.get_device_name()
    for row in rows:
        row["device"] = device
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of :func:`run_cuda_bench` rows."""
    header = ("| case | implementation | shape | dtype | fwd ms | bwd ms | total ms | floor ms | x floor "
              "| peak extra MiB (grad MiB) | vs fused |")
    lines = [header, "|" + "---|" * 11]

    def number(row, key, fmt="{:.3f}"):
        return fmt.format(row[key]) if key in row else "-"

    for row in rows:
        if "error" in row:
            lines.append(f"| {row['case']} | {row['impl']} | {row['shape']} | {row['dtype']} | "
                         f"failed: {row['error']} | | | | | | |")
            continue
        memory = "-" if "peak_extra_mib" not in row else f"{row['peak_extra_mib']:.0f} ({row['grad_mib']:.0f})"
        x_floor = number(row, "x_floor", "{:.2f}")
        if "bandwidth_fraction" in row:
            x_floor += f" ({row['bandwidth_fraction']:.0%} of copy bw)"
        lines.append(f"| {row['case']} | {row['impl']} | {row['shape']} | {row['dtype']} | {number(row, 'forward_ms')} "
                     f"| {number(row, 'backward_ms')} | {number(row, 'total_ms')} | {number(row, 'floor_ms')} "
                     f"| {x_floor} | {memory} | {number(row, 'vs_fused', '{:.2f}x')} |")
    if rows and "copy_gbps" in rows[0]:
        lines.append("")
        lines.append(f"Device: {rows[0].get('device', '?')}; device-to-device copy bandwidth "
                     f"{rows[0]['copy_gbps']:.0f} GB/s (read + write), measured in the same run.")
    return "\n".join(lines)

"""Benchmark of the fused kernels: DiceCE forward + backward and the confusion matrix.

Three figures per implementation, each a median of repeated runs, all in one process:

* **kernel-only** (fused path): ``triton.testing.do_bench`` of the kernel launchers alone
  (forward kernel + finish, backward kernel), no autograd and no host code between them;
* **CUDA graph**: forward + backward captured once and replayed (launch gaps removed);
* **eager**: forward + backward as a user runs it, between CUDA events (host gaps included).

Beside them: the kernels launched per iteration (torch.profiler), the peak memory beyond
the inputs next to the gradient's size, and the floor: the bytes that must move (DiceCE
forward + backward: logits read twice, labels twice, gradient written once; confusion
matrix: scores and labels read once) over the device-to-device copy bandwidth measured in
the same run. A peer that cannot run (not installed, out of memory) is a row saying why.

On CPU (``device="cpu"``, with TRITON_INTERPRET=1 SEGFUSE_FORCE_KERNELS=1) every function
runs on tiny shapes with a host clock: benchmarks/device_check.py --smoke uses that to
exercise the whole script in CI. Those numbers mean nothing.

Used by ``segfuse bench --device cuda``, ``benchmarks/bench_cuda.py`` and
``benchmarks/device_check.py``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

# The configurations: (shape (N, C, *S), dtype). The bf16 3D case is 134 MB of
# logits, over twice the H200's 60 MB L2, so that its "x floor" measures memory traffic.
DEFAULT_CASES = (((16, 21, 512, 512), torch.float32), ((8, 4, 128, 128, 128), torch.bfloat16))
CONFUSION_CASES = (((16, 21, 512, 512), None), ((8, 150, 256, 256), 0.9))
MIB = 2.0**20
MONAI_HINT = "pip install monai (on the GPU machine: carry the wheel, see benchmarks/results/cuda.md)"


def require_cuda() -> None:
    if not torch.cuda.is_available():
        raise RuntimeError("segfuse's CUDA benchmark needs a CUDA device (torch.cuda.is_available() is False)")
    from segfuse import kernels

    if not kernels.triton_available():
        raise RuntimeError("segfuse's CUDA benchmark needs triton (pip install 'segfuse[triton]')")
    if kernels.kernels_disabled():
        raise RuntimeError("SEGFUSE_DISABLE_KERNELS is set; unset it to benchmark the fused kernels")


@contextlib.contextmanager
def torch_path():
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


# ---------------------------------------------------------------------------------------
# Timers: CUDA events / do_bench / graph replay on a GPU, a host clock on CPU.


def _synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in ms: CUDA events on a GPU (host gaps included)."""
    times = []
    cuda = torch.device(device).type == "cuda"
    for i in range(warmup + repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            elapsed = start.elapsed_time(end)
        else:
            begin = time.perf_counter()
            fn()
            elapsed = (time.perf_counter() - begin) * 1e3
        if i >= warmup:
            times.append(elapsed)
    return statistics.median(times)


def kernel_ms(fn: Callable[[], object], device, repeats: int = 20) -> float:
    """Median device time of ``fn()`` by triton.testing.do_bench (GPU; it flushes L2 between
    runs); the host-clock median on CPU."""
    if torch.device(device).type != "cuda":
        return median_ms(fn, device, repeats=max(1, repeats // 10), warmup=1)
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))


def graph_ms(fn: Callable[[], object], device, repeats: int = 20) -> Optional[float]:
    """Median time of replaying a CUDA graph of ``fn()`` (None on CPU)."""
    if torch.device(device).type != "cuda":
        return None
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return median_ms(graph.replay, device, repeats)


def kernels_launched(fn: Callable[[], object], device) -> Optional[dict]:
    """{"kernels": count, "names": [...]} of one ``fn()`` under torch.profiler (GPU only)."""
    if torch.device(device).type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with _quiet_profiler(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return {"kernels": len(names), "names": names}


@contextlib.contextmanager
def _quiet_profiler():
    """Silence Kineto's C++ log lines (e.g. 'USDT ... SyncActivityProfilerHandler') that it
    writes to fd 2 while a profile starts and stops."""
    from segfuse.benchmarking import quiet_native_stderr

    with quiet_native_stderr():
        yield


def peak_extra_mib(fn: Callable[[], object], device) -> Optional[float]:
    """Peak memory of ``fn()`` beyond what was allocated before it (MiB; GPU only)."""
    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / MIB


def copy_bandwidth(nbytes: int, device="cuda", repeats: int = 20) -> float:
    """Device-to-device copy bandwidth in bytes/s (bytes read + written), median of repeats,
    on a buffer of at least ``nbytes`` (and at least 64 MiB on a GPU)."""
    cuda = torch.device(device).type == "cuda"
    size = max(int(nbytes), 1 << 26) if cuda else max(int(nbytes), 1 << 20)
    source = torch.empty(size, dtype=torch.uint8, device=device).random_()
    target = torch.empty_like(source)
    seconds = median_ms(lambda: target.copy_(source), device, repeats) / 1e3
    return 2 * size / seconds


# ---------------------------------------------------------------------------------------
# DiceCE forward + backward.


def make_inputs(shape: Sequence[int], dtype: torch.dtype, device, label_dtype=torch.int64, seed=0,
                channels_last=False):
    generator = torch.Generator(device=device).manual_seed(seed)
    logits = torch.randn(tuple(shape), device=device, generator=generator).to(dtype)
    if channels_last:
        logits = logits.to(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), device=device, generator=generator)
    return logits.requires_grad_(), target.to(label_dtype)


def dice_ce_floor_bytes(logits: torch.Tensor, target: torch.Tensor) -> int:
    """Logits read twice, labels read twice, gradient written once."""
    return 3 * logits.numel() * logits.element_size() + 2 * target.numel() * target.element_size()


def _dice_ce_overlap():
    from segfuse import kernels

    return kernels.OverlapTerm(2.0, 1.0, 1.0, 1e-5)


def dice_ce_kernel_times(logits: torch.Tensor, target: torch.Tensor, repeats: int = 20) -> dict:
    """Kernel-only ms of the fused DiceCE: forward (streaming kernel + finish), backward."""
    from segfuse.kernels import multiclass

    overlap = (2.0, 1.0, 1.0, 1e-5, 1e-5, 1.0, False, True, 0, True)
    x = logits.detach()

    def forward():
        return multiclass.launch_loss_forward(x, target, None, None, None, None, False, overlap, 1.0, 1.0, 0.0, None)

    loss, coef, scale = forward()
    upstream = torch.ones((), device=x.device)

    def backward():
        return multiclass.launch_backward(x, target, None, None, coef[0], coef[1], scale[1], None, None, None,
                                          upstream=upstream, stats_scale=scale[0])

    times = {"kernel_forward_ms": kernel_ms(forward, x.device, repeats),
             "kernel_backward_ms": kernel_ms(backward, x.device, repeats)}
    times["kernel_total_ms"] = times["kernel_forward_ms"] + times["kernel_backward_ms"]
    return times


def dice_ce_implementations(num_classes: int) -> list[tuple[str, Optional[Callable], Callable, str]]:
    """(name, loss_fn(logits, target) or None, context factory, why missing) of each row."""
    import segfuse
    from segfuse import kernels

    segfuse_loss = segfuse.DiceCELoss(validate_args=False)
    overlap = _dice_ce_overlap()

    def fused_entry(x, y):
        return kernels.fused_multiclass_loss(x, y, overlap=overlap, overlap_weight=1.0, ce_weight=1.0)

    rows = [
        ("segfuse DiceCELoss", segfuse_loss, contextlib.nullcontext, ""),
        ("segfuse fused_multiclass_loss", fused_entry, contextlib.nullcontext, ""),
        ("segfuse DiceCELoss (torch path)", segfuse_loss, torch_path, ""),
        ("torch F.cross_entropy (CE only)", lambda x, y: F.cross_entropy(x, y.long()), contextlib.nullcontext, ""),
    ]
    try:
        from monai.losses import DiceCELoss as MonaiDiceCELoss
    except ImportError as error:
        rows.append(("MONAI DiceCELoss", None, contextlib.nullcontext, f"missing: {error}; {MONAI_HINT}"))
        return rows
    # batch=True: the Dice statistics over the batch, as segfuse's default (per_image=False)
    monai_loss = MonaiDiceCELoss(softmax=True, to_onehot_y=True, batch=True)
    rows.append(("MONAI DiceCELoss", lambda x, y: monai_loss(x, y.unsqueeze(1)), contextlib.nullcontext, ""))
    return rows


def _eager_times(loss_fn, logits, target, repeats: int) -> dict:
    """Median forward, backward and total ms of loss_fn(logits, target).backward() (events)."""
    device = logits.device
    forward, backward, total = [], [], []
    cuda = device.type == "cuda"
    warmup = 3 if repeats > 2 else 1
    for i in range(warmup + repeats):
        logits.grad = None
        if cuda:
            events = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
            events[0].record()
            loss = loss_fn(logits, target)
            events[1].record()
            loss.backward()
            events[2].record()
            events[2].synchronize()
            f, b = events[0].elapsed_time(events[1]), events[1].elapsed_time(events[2])
        else:
            begin = time.perf_counter()
            loss = loss_fn(logits, target)
            middle = time.perf_counter()
            loss.backward()
            f, b = (middle - begin) * 1e3, (time.perf_counter() - middle) * 1e3
        if i >= warmup:
            forward.append(f)
            backward.append(b)
            total.append(f + b)
    logits.grad = None
    return {"eager_forward_ms": statistics.median(forward), "eager_backward_ms": statistics.median(backward),
            "eager_total_ms": statistics.median(total)}


def bench_dice_ce(shape: Sequence[int], dtype: torch.dtype, repeats: int = 20, bandwidth: Optional[float] = None,
                  label_dtype: torch.dtype = torch.int64, device="cuda", channels_last=False,
                  only: Optional[Sequence[str]] = None) -> list[dict]:
    """Every implementation's DiceCE forward + backward at one shape and dtype (``only``:
    the implementations whose name starts with one of these)."""
    if torch.device(device).type == "cuda":
        require_cuda()
    shape = tuple(int(s) for s in shape)
    logits, target = make_inputs(shape, dtype, device, label_dtype, channels_last=channels_last)
    bandwidth = bandwidth or copy_bandwidth(logits.numel() * logits.element_size(), device, repeats)
    floor_ms = dice_ce_floor_bytes(logits, target) / bandwidth * 1e3
    base = {"case": "DiceCE fwd+bwd", "shape": "x".join(map(str, shape)) + (" (channels-last)" if channels_last
                                                                          else ""),
            "dtype": str(dtype).replace("torch.", ""), "labels": str(label_dtype).replace("torch.", ""),
            "floor_ms": floor_ms, "copy_gbps": bandwidth / 1e9,
            "grad_mib": logits.numel() * logits.element_size() / MIB}
    rows = []
    implementations = dice_ce_implementations(shape[1])
    if channels_last:  # reading channels-last in place against copying it to contiguous first
        entry = next(fn for name, fn, _, _ in implementations if name == "segfuse fused_multiclass_loss")
        implementations.insert(2, ("segfuse fused_multiclass_loss (copy to contiguous)",
                                   lambda x, y: entry(x.contiguous(), y), contextlib.nullcontext, ""))
    for name, loss_fn, context, missing in implementations:
        if only and not any(name.startswith(prefix) for prefix in only):
            continue
        row = dict(base, impl=name)
        if loss_fn is None:
            row["error"] = missing
            rows.append(row)
            continue
        try:
            with context():
                row.update(_eager_times(loss_fn, logits, target, repeats))
            row["x_floor"] = row["eager_total_ms"] / floor_ms
        except Exception as error:  # a peer that cannot run this configuration (dtype, memory)
            row["error"] = _describe(error)
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
            rows.append(row)
            continue

        def step(loss_fn=loss_fn):
            return torch.autograd.grad(loss_fn(logits, target), logits)

        extras = [("graph_total_ms", lambda: graph_ms(step, device, repeats)),
                  ("kernels", lambda: (kernels_launched(step, device) or {}).get("kernels")),
                  ("peak_extra_mib", lambda: peak_extra_mib(step, device))]
        if name == "segfuse fused_multiclass_loss":
            extras.append((None, lambda: dice_ce_kernel_times(logits, target, repeats)))
        for key, measure in extras:  # each figure on its own: a failed graph capture keeps the rest
            try:
                with context():
                    value = measure()
                row.update(value) if key is None else row.__setitem__(key, value)
            except Exception as error:
                row[f"{key or 'kernel_times'}_error"] = _describe(error)
        rows.append(row)
    fused = next((r["eager_total_ms"] for r in rows if r["impl"] == "segfuse DiceCELoss" and "eager_total_ms" in r),
                 None)
    for row in rows:
        if fused and "eager_total_ms" in row:
            row["vs_segfuse"] = row["eager_total_ms"] / fused
    return rows


def _describe(error: Exception) -> str:
    text = str(error).splitlines()[0][:160] if str(error) else ""
    return f"{type(error).__name__}: {text}"


# ---------------------------------------------------------------------------------------
# Confusion matrix.


def confusion_inputs(shape, background: Optional[float], device, seed=0, dtype=torch.float32):
    generator = torch.Generator(device=device).manual_seed(seed)
    scores = torch.randn(tuple(shape), device=device, generator=generator).to(dtype)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), device=device, generator=generator)
    if background:
        target[torch.rand(target.shape, device=device, generator=generator) < background] = 0
    return scores, target


def bench_confusion(shape: Sequence[int] = CONFUSION_CASES[0][0], background: Optional[float] = None,
                    repeats: int = 20, bandwidth: Optional[float] = None, device="cuda") -> list[dict]:
    """Confusion matrix from scores (fused argmax + count) and from a class map, each against
    torch argmax + bincount; ``background`` puts that fraction of labels on class 0."""
    from segfuse import kernels

    if torch.device(device).type == "cuda":
        require_cuda()
    shape = tuple(int(s) for s in shape)
    c = shape[1]
    scores, target = confusion_inputs(shape, background, device)
    predicted = scores.argmax(1)
    if background:  # a model that gets the background right: skewed predictions too
        predicted = torch.where(target == 0, 0, predicted)
    bandwidth = bandwidth or copy_bandwidth(scores.numel() * scores.element_size(), device, repeats)

    def torch_scores():
        return torch.bincount(target.reshape(-1) * c + scores.argmax(1).reshape(-1), minlength=c * c).view(c, c)

    def torch_map():
        return torch.bincount(target.reshape(-1) * c + predicted.reshape(-1), minlength=c * c).view(c, c)

    cases = [
        ("scores", "segfuse confusion kernel (argmax fused)", lambda: kernels.fused_confusion_matrix(scores, target, c),
         torch_scores, scores.numel() * scores.element_size() + target.numel() * target.element_size()),
        ("class map", "segfuse confusion kernel (class map)",
         lambda: kernels.fused_confusion_matrix(predicted, target, c), torch_map,
         predicted.numel() * predicted.element_size() + target.numel() * target.element_size()),
    ]
    rows = []
    label = "x".join(map(str, shape)) + (f", {background:.0%} background" if background else "")
    for kind, name, fused, reference, moved in cases:
        if not torch.equal(fused(), reference()):
            raise AssertionError(f"fused confusion matrix ({kind}) differs from torch.bincount at {label}")
        floor_ms = moved / bandwidth * 1e3
        for impl, fn in ((name, fused), (f"torch argmax + bincount ({kind})" if kind == "scores"
                                         else "torch bincount (class map)", reference)):
            ms = kernel_ms(fn, device, repeats)
            rows.append({"case": f"confusion from {kind}", "impl": impl, "shape": label, "dtype": str(scores.dtype)[6:],
                         "kernel_total_ms": ms, "floor_ms": floor_ms, "x_floor": ms / floor_ms,
                         "bandwidth_fraction": moved / (ms / 1e3) / bandwidth, "copy_gbps": bandwidth / 1e9})
    return rows


def run_cuda_bench(shapes: Optional[Sequence[Sequence[int]]] = None, dtype: Optional[torch.dtype] = None,
                   repeats: int = 20, include_confusion: bool = True, device="cuda") -> list[dict]:
    """All rows: DiceCE per (shape, dtype), then the confusion matrix cases.

    ``shapes`` None takes DEFAULT_CASES; ``dtype`` overrides the dtype of every case (None:
    each default case's own, float32 for given shapes). Raises RuntimeError with a clear
    message without CUDA / triton (device "cuda").
    """
    if torch.device(device).type == "cuda":
        require_cuda()
    if shapes is None:
        cases = [(shape, dtype or case_dtype) for shape, case_dtype in DEFAULT_CASES]
    else:
        cases = [(tuple(shape), dtype or torch.float32) for shape in shapes]
    largest = max(torch.Size(shape).numel() * torch.empty(0, dtype=d).element_size() for shape, d in cases)
    bandwidth = copy_bandwidth(largest, device, repeats)
    rows = []
    for shape, case_dtype in cases:
        rows.extend(bench_dice_ce(shape, case_dtype, repeats, bandwidth=bandwidth, device=device))
    if include_confusion:
        confusion_cases = CONFUSION_CASES if shapes is None else [(cases[0][0], None)]
        for shape, background in confusion_cases:
            rows.extend(bench_confusion(shape, background, repeats, bandwidth=bandwidth, device=device))
    name = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else "CPU (interpreter)"
    for row in rows:
        row["device"] = name
    return rows


def _fmt(row: dict, key: str, fmt: str = "{:.3f}") -> str:
    value = row.get(key)
    return "-" if value is None else fmt.format(value)


def format_table(rows: Sequence[dict]) -> str:
    """Markdown table of :func:`run_cuda_bench` rows (every name and number in full)."""
    header = ("| case | implementation | shape | dtype | kernel-only ms | CUDA graph ms | eager fwd ms | eager bwd ms "
              "| eager total ms | floor ms | x floor (eager) | kernels | peak extra MiB (grad MiB) | vs segfuse |")
    lines = [header, "|" + "---|" * 14]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['case']} | {row['impl']} | {row['shape']} | {row['dtype']} | "
                         f"{row['error']} | | | | | {_fmt(row, 'floor_ms')} | | | | |")
            continue
        memory = "-" if row.get("peak_extra_mib") is None else f"{row['peak_extra_mib']:.0f} ({row['grad_mib']:.0f})"
        x_floor = _fmt(row, "x_floor", "{:.2f}")
        if "bandwidth_fraction" in row:
            x_floor += f" ({row['bandwidth_fraction']:.0%} of copy bw)"
        times = " | ".join(_fmt(row, key) for key in ("kernel_total_ms", "graph_total_ms", "eager_forward_ms",
                                                       "eager_backward_ms", "eager_total_ms", "floor_ms"))
        lines.append(f"| {row['case']} | {row['impl']} | {row['shape']} | {row['dtype']} | {times} | {x_floor} | "
                     f"{_fmt(row, 'kernels', '{:d}')} | {memory} | {_fmt(row, 'vs_segfuse', '{:.2f}x')} |")
    if rows and "copy_gbps" in rows[0]:
        lines.append("")
        lines.append(f"Device: {rows[0].get('device', '?')}; device-to-device copy bandwidth "
                     f"{rows[0]['copy_gbps']:.0f} GB/s (read + write), measured in the same run. Kernel-only: "
                     f"triton.testing.do_bench medians of the launchers (fused rows); CUDA graph: replay of one "
                     f"captured forward + backward; eager: CUDA events around forward + backward.")
    return "\n".join(lines)

"""CUDA benchmark of segfuse's fused kernels; writes benchmarks/results/cuda.md.

In one run, with CUDA events (median of --repeats) and the peak memory beyond the inputs:

* DiceCELoss forward + backward at 16x21x512x512 fp32 and 2x4x128x128x128 bf16 (int64
  targets): segfuse's fused kernels, segfuse's torch path (SEGFUSE_DISABLE_KERNELS=1),
  torch cross_entropy (CE alone) and MONAI DiceCELoss (softmax, to_onehot_y) if
  importable. Floor = bytes that must move (logits read twice, target read twice,
  gradient written once) / the device-to-device copy bandwidth measured in the same run.
* Confusion-matrix update from scores at 16x21x512x512: the fused argmax + count kernel
  vs torch argmax + bincount, as a fraction of the copy bandwidth.

Usage: python benchmarks/bench_cuda.py [--repeats 20] [--out benchmarks/results/cuda.md]
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys

import torch

from segfuse.kernels.bench import format_table, run_cuda_bench


def _versions() -> str:
    parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}"]
    for name in ("triton", "monai"):
        try:
            module = __import__(name)
            parts.append(f"{name} {module.__version__}")
        except ImportError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent / "results" / "cuda.md")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_cuda.py needs a CUDA device; nothing was measured or written.", file=sys.stderr)
        return 1
    rows = run_cuda_bench(repeats=args.repeats)
    table = format_table(rows)
    print(table)
    fused = {r["shape"]: r for r in rows if r["impl"].startswith("segfuse DiceCELoss (fused") and "total_ms" in r}
    monai = {r["shape"]: r for r in rows if r["impl"].startswith("MONAI") and "total_ms" in r}
    summary = []
    for shape, row in fused.items():
        line = f"- {shape} {row['dtype']}: fused total {row['total_ms']:.3f} ms = {row['x_floor']:.2f}x the floor " \
               f"(goal <= 1.5x); extra memory {row['peak_extra_mib']:.0f} MiB vs gradient {row['grad_mib']:.0f} MiB"
        if shape in monai:
            line += f"; {monai[shape]['total_ms'] / row['total_ms']:.1f}x faster than MONAI DiceCELoss (goal >= 5x)"
        summary.append(line)
    text = "\n".join([
        "# segfuse CUDA benchmark",
        "",
        f"Taken {datetime.date.today().isoformat()} on {torch.cuda.get_device_name()} ({_versions()}) with "
        f"`python benchmarks/bench_cuda.py --repeats {args.repeats}`.",
        "",
        table,
        "",
        "Against the goals of SPEC section 7:",
        *summary,
        "",
    ])
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CUDA benchmark of segfuse's fused kernels; writes a Markdown report.

In one run (segfuse.kernels.bench), each figure a median of --repeats:

* DiceCELoss forward + backward at 16x21x512x512 fp32 and 8x4x128x128x128 bf16 (134 MB of
  logits, over twice the H200's 60 MB L2), int64 labels: segfuse's DiceCELoss, the fused
  loss entry point (kernels.fused_multiclass_loss), segfuse's torch path, torch
  cross_entropy (CE alone) and MONAI DiceCELoss(softmax, to_onehot_y); a missing MONAI is
  a row saying why. Kernel-only (do_bench of the launchers), CUDA-graph replay and eager
  (CUDA events) figures, kernels per iteration, peak memory beside the gradient's size.
  Floor = bytes that must move (logits read twice, labels twice, gradient written once)
  over the device-to-device copy bandwidth measured in the same run.
* Confusion matrix from scores (argmax fused) and from a class map at 16x21x512x512 and
  at 8x150x256x256 with 90 percent background, against torch argmax + bincount, as a
  fraction of the copy bandwidth.

Usage: python benchmarks/bench_cuda.py [--repeats 20] [--out benchmarks/results/cuda_bench.md]
       python benchmarks/bench_cuda.py --smoke --out /tmp/x.md   # tiny CPU run (interpreter)
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import sys

import torch


def _versions() -> str:
    parts = [f"torch {torch.__version__}", f"CUDA {torch.version.cuda}"]
    for name in ("triton", "monai"):
        try:
            module = __import__(name)
            parts.append(f"{name} {module.__version__}")
        except ImportError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def _summary(rows) -> list[str]:
    lines = []
    for row in rows:
        if row["impl"] != "segfuse DiceCELoss" or "eager_total_ms" not in row:
            continue
        same = [r for r in rows if r["shape"] == row["shape"] and r["case"] == row["case"]]
        fused = next((r for r in same if r["impl"] == "segfuse fused_multiclass_loss" and "kernel_total_ms" in r), {})
        monai = next((r for r in same if r["impl"] == "MONAI DiceCELoss"), {})
        line = (f"- {row['shape']} {row['dtype']}: DiceCELoss eager {row['eager_total_ms']:.3f} ms = "
                f"{row['x_floor']:.2f}x the floor (goal <= 1.5x)")
        if fused:
            line += f"; kernel-only {fused['kernel_total_ms'] / row['floor_ms']:.2f}x (goal <= 1.3x)"
        if row.get("peak_extra_mib") is not None:
            line += f"; extra memory {row['peak_extra_mib']:.0f} MiB vs gradient {row['grad_mib']:.0f} MiB"
        if "eager_total_ms" in monai:
            line += f"; {monai['eager_total_ms'] / row['eager_total_ms']:.1f}x faster than MONAI (goal >= 5x)"
        elif "error" in monai:
            line += f"; MONAI {monai['error']}"
        lines.append(line)
    for row in rows:
        if row["impl"].endswith("(argmax fused)"):
            lines.append(f"- confusion from logits, {row['shape']}: {row['bandwidth_fraction']:.0%} of the copy "
                         f"bandwidth (goal >= 50%)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path(__file__).parent / "results" / "cuda_bench.md")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (TRITON_INTERPRET=1)")
    args = parser.parse_args(argv)
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")
        os.environ.setdefault("SEGFUSE_FORCE_KERNELS", "1")
    from segfuse.kernels.bench import format_table, run_cuda_bench

    if not args.smoke and not torch.cuda.is_available():
        print("bench_cuda.py needs a CUDA device; nothing was measured or written.", file=sys.stderr)
        return 1
    if args.smoke:
        rows = run_cuda_bench(shapes=[(1, 3, 8, 8)], repeats=1, device="cpu")
        where = "CPU (smoke run under the Triton interpreter: the numbers mean nothing)"
    else:
        rows = run_cuda_bench(repeats=args.repeats)
        where = torch.cuda.get_device_name()
    table = format_table(rows)
    print(table)
    text = "\n".join([
        "# segfuse CUDA benchmark",
        "",
        f"Taken {datetime.date.today().isoformat()} on {where} ({_versions()}) with "
        f"`python benchmarks/bench_cuda.py --repeats {args.repeats}{' --smoke' if args.smoke else ''}`.",
        "",
        table,
        "",
        "Against the goals of SPEC section 7 / issue 9:",
        *_summary(rows),
        "",
    ])
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``segfuse bench``: forward + backward time and peak memory of segfuse's losses and the peers."""

from __future__ import annotations

import difflib
import json
import os
import platform
import sys

from segfuse.benchmarking import LOSS_NAMES

COLUMNS = ("loss", "implementation", "median ms", "x segfuse time", "peak MiB", "x segfuse memory")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="time segfuse's losses against torch, MONAI and kornia",
                                   description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shape", default=None,
                        help="N,C,*S of the logits (default: 4,21,256,256 on CPU; the issue's two shapes on CUDA)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the median is shown")
    parser.add_argument("--losses", nargs="*", metavar="NAME",
                        help=f"only these losses, from: {', '.join(LOSS_NAMES)}")
    parser.add_argument("--memory-shape", default="1,14,128,128,128",
                        help="volume for the DiceCELoss peak-memory comparison; 'none' skips it")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-loss peak memory")
    parser.add_argument("--json", dest="json_path", help="also write the rows to this JSON file")
    parser.set_defaults(run=run)


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--shape must be comma-separated integers like 4,21,256,256, got {text!r}") from None
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"--shape must be N,C,*S with positive sizes, got {text!r}")
    return shape


def check_loss_names(names) -> None:
    """ValueError naming each unknown name, its closest valid name, and the valid names."""
    from segfuse.benchmarking import unknown_losses

    unknown = unknown_losses(names)
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, LOSS_NAMES, n=1, cutoff=0.4)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]}?)" if close else ""))
    raise ValueError(f"--losses: unknown name {', '.join(hints)}; valid names: {', '.join(LOSS_NAMES)}")


def environment() -> dict:
    import torch

    info = {"python": platform.python_version(), "cores": os.cpu_count(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}
    for name in ("monai", "kornia", "triton"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def ratio_rows(rows) -> list[dict]:
    """Each peer row with the segfuse row of the same loss: speedup = peer time / segfuse time."""
    ours = {row.loss: row for row in rows if row.implementation == "segfuse"}
    table = []
    for row in rows:
        base = ours[row.loss]
        table.append({**row.to_dict(), "time_vs_segfuse": row.median_ms / base.median_ms,
                      "memory_vs_segfuse": row.peak_mb / base.peak_mb if base.peak_mb else float("nan")})
    return table


def _cells(row: dict) -> list[str]:
    return [row["loss"], row["implementation"], f"{row['median_ms']:.1f}", f"{row['time_vs_segfuse']:.2f}",
            f"{row['peak_mb']:.1f}", f"{row['memory_vs_segfuse']:.2f}"]


def plain_table(title: str, table: list[dict]) -> str:
    """The table as aligned plain text: nothing is ever cut, whatever the width."""
    rows = [list(COLUMNS)] + [_cells(row) for row in table]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [title]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def print_table(title: str, table: list[dict], console=None) -> None:
    """A rich table on a terminal wide enough for it; otherwise (piped, or too narrow) plain
    aligned rows. Names and numbers are never truncated (cells fold, never end in '…')."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    text = plain_table(title, table)
    if not console.is_terminal or max(map(len, text.splitlines())) + 8 > console.width:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    out = Table(title=title)
    for column in COLUMNS:
        out.add_column(column, justify="left" if column in ("loss", "implementation") else "right",
                       overflow="fold")
    for row in table:
        out.add_row(*_cells(row))
    console.print(out)


def report_missing_peers(losses) -> None:
    from segfuse.benchmarking import PEER_INSTALL, missing_peers

    for peer, names in missing_peers(losses).items():
        print(f"  {peer} is not installed: no {peer} row for {', '.join(names)} ({PEER_INSTALL[peer]})",
              file=sys.stderr)


def run(args) -> int:
    from segfuse.cli.errors import fail

    try:
        shape = parse_shape(args.shape) if args.shape else None
        memory_shape = None if args.memory_shape == "none" else parse_shape(args.memory_shape)
        check_loss_names(args.losses)
    except ValueError as error:
        return fail(str(error))
    import torch

    from segfuse import benchmarking

    if args.device == "cuda":
        if not torch.cuda.is_available():
            return fail("--device cuda needs a CUDA device; none is available")
        from segfuse.kernels import bench as cuda_bench

        rows = cuda_bench.run_cuda_bench(shapes=None if shape is None else [shape],
                                         dtype=None if shape is None else getattr(torch, args.dtype),
                                         repeats=max(args.repeats, 20))
        print(cuda_bench.format_table(rows))
        return _write_json(args.json_path, {"environment": environment(), "cuda": rows})
    dtype = getattr(torch, args.dtype)
    shape = shape or (4, 21, 256, 256)
    info = environment()
    print(f"segfuse bench on {args.device}: {info}", file=sys.stderr)
    print("  timing in a fresh process (OMP_WAIT_POLICY=PASSIVE, see segfuse.benchmarking)", file=sys.stderr)
    report_missing_peers(args.losses)
    rows = benchmarking.run_isolated(benchmarking.run_loss_bench, shape, dtype, args.device, args.repeats, args.losses,
                                     memory=not args.no_memory)
    table = ratio_rows(rows)
    print_table(f"forward + backward, {shape} {args.dtype}, median of {args.repeats}", table)
    result = {"environment": info, "losses": table}
    if memory_shape:
        memory = ratio_rows(benchmarking.run_isolated(benchmarking.run_memory_bench, memory_shape, args.device))
        for row in memory:
            row["median_ms"] = row["time_vs_segfuse"] = float("nan")
        print_table(f"DiceCELoss peak memory, {args.memory_shape} float32", memory)
        result["memory"] = memory
    return _write_json(args.json_path, result)


def _write_json(path, result) -> int:
    if path:
        with open(path, "w") as handle:
            json.dump(result, handle, indent=2, default=str)
    return 0

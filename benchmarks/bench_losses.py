"""CPU loss benchmark: runs ``segfuse bench`` and prints its rows as a markdown table.

    python benchmarks/bench_losses.py [--repeats 9] [--json benchmarks/results/cpu_losses.json]

Each segfuse loss against the installed peers with the same semantics (torch, MONAI,
kornia) at 4 x 21 x 256 x 256 fp32, forward + backward, median of the repeats with the
implementations taking turns; peak memory of DiceCELoss on 1 x 14 x 128 x 128 x 128.
"""

from __future__ import annotations

import argparse
import json

from segfuse.cli import main


def markdown(result: dict) -> str:
    info = result["environment"]
    lines = [f"Environment: {', '.join(f'{k} {v}' for k, v in info.items())}", "",
             "| loss | implementation | median ms | time / segfuse | peak MiB | memory / segfuse |",
             "|---|---|---:|---:|---:|---:|"]
    for row in result["losses"]:
        lines.append(f"| {row['loss']} | {row['implementation']} | {row['median_ms']:.1f} | "
                     f"{row['time_vs_segfuse']:.2f} | {row['peak_mb']:.1f} | {row['memory_vs_segfuse']:.2f} |")
    if "memory" in result:
        lines += ["", "| DiceCELoss, 1x14x128x128x128 fp32 | peak MiB | memory / segfuse |", "|---|---:|---:|"]
        for row in result["memory"]:
            lines.append(f"| {row['implementation']} | {row['peak_mb']:.1f} | {row['memory_vs_segfuse']:.2f} |")
    return "\n".join(lines)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", default="benchmarks/results/cpu_losses.json")
    args = parser.parse_args()
    code = main(["bench", "--repeats", str(args.repeats), "--json", args.json])
    if code == 0:
        with open(args.json) as handle:
            print(markdown(json.load(handle)))


if __name__ == "__main__":
    run()

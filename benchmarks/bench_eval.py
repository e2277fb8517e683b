"""Throughput of ``segfuse eval`` against a serial numpy evaluator (the seeds' fast_hist loop).

500 pairs of 512 x 512 label PNGs with 21 classes (VOC-like: blocky regions, a void band
of 255 around objects, predictions with boundary noise) are generated into a temporary
folder (not timed). Timed, median of 3 runs each, in the same process:

- reference: a serial loop: PIL open + np.array for both masks, then
  ``np.bincount(n * label[k] + pred[k], minlength=n * n)`` with ``k`` the valid pixels
  (fast_hist as in the seeds' evaluators), summed; IoU from the histogram.
- segfuse eval in process: ``segfuse.cli.main(["eval", ...])`` with its default workers,
  including the report (JSON, CSV, plots) it writes.
- the same pipeline without writing the report (pairing, reading and counting in the
  workers, scoring), to show the report's fixed cost.
- segfuse eval as a command: ``python -m segfuse eval ...`` wall time, interpreter and
  torch import included.

    python benchmarks/bench_eval.py [--pairs 500] [--size 512] [--classes 21] [--write benchmarks/results/eval.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_pair(rng: np.random.Generator, size: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    blocks = rng.integers(0, classes, (size // 32, size // 32), dtype=np.uint8)
    labels = np.kron(blocks, np.ones((32, 32), dtype=np.uint8))
    pred = labels.copy()
    for _ in range(2):
        shift = tuple(int(v) for v in rng.integers(-6, 7, size=2))
        shifted = np.roll(labels, shift, axis=(0, 1))
        noisy = (shifted != labels) & (rng.random(labels.shape) < 0.5)
        pred[noisy] = shifted[noisy]
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    truth = labels.copy()
    truth[edge & (rng.random(labels.shape) < 0.8)] = 255
    return truth, pred


def generate(folder: Path, pairs: int, size: int, classes: int) -> None:
    rng = np.random.default_rng(0)
    (folder / "gt").mkdir(parents=True)
    (folder / "pred").mkdir(parents=True)
    for i in range(pairs):
        truth, pred = make_pair(rng, size, classes)
        Image.fromarray(truth, mode="L").save(folder / "gt" / f"{i:05d}.png")
        Image.fromarray(pred, mode="L").save(folder / "pred" / f"{i:05d}.png")


def fast_hist(label: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    k = (label >= 0) & (label < n)
    return np.bincount(n * label[k].astype(int) + pred[k], minlength=n**2).reshape(n, n)


def reference(folder: Path, classes: int) -> np.ndarray:
    hist = np.zeros((classes, classes), dtype=np.int64)
    for gt_path in sorted((folder / "gt").iterdir()):
        label = np.array(Image.open(gt_path))
        pred = np.array(Image.open(folder / "pred" / gt_path.name))
        hist += fast_hist(label.flatten(), pred.flatten(), classes)
    return np.diag(hist) / np.maximum(hist.sum(1) + hist.sum(0) - np.diag(hist), 1)


def eval_arguments(folder: Path, classes: int, out: Path) -> list[str]:
    return ["eval", "--gt", str(folder / "gt"), "--pred", str(folder / "pred"), "--num-classes", str(classes),
            "--out", str(out)]


def segfuse_in_process(folder: Path, classes: int, out: Path) -> None:
    from segfuse.cli import main

    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            assert main(eval_arguments(folder, classes, out)) == 0
        finally:
            sys.stdout = stdout


def segfuse_without_report(folder: Path, classes: int) -> None:
    import torch

    from segfuse.cli.eval_pairs import CountOptions, count_pairs, default_workers
    from segfuse.cli.io_masks import pair_masks
    from segfuse.metrics import SemanticMetrics

    pairs = pair_masks(folder / "gt", folder / "pred").pairs
    counted = count_pairs(pairs, CountOptions(classes, 255), default_workers(), progress=False)
    metrics = SemanticMetrics(classes, ignore_index=255)
    metrics.update_confusion(torch.from_numpy(np.stack([item.dense(classes) for item in counted])))
    metrics.compute()


def segfuse_command(folder: Path, classes: int, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "segfuse", *eval_arguments(folder, classes, out)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the reader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def median_seconds(function, *args, repeats: int = 3) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds of ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        function(*args)
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds() - start_cpu)
    return statistics.median(walls), statistics.median(cpus)


def versions() -> str:
    import PIL
    import torch

    import segfuse

    return (f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"Pillow {PIL.__version__}, segfuse {segfuse.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--write", type=Path, help="write the results table (markdown) to this file")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from segfuse.cli.eval_pairs import default_workers

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        generate(folder, args.pairs, args.size, args.classes)
        segfuse_in_process(folder, args.classes, folder / "warmup")  # imports, not timed
        timings = {
            "reference: serial numpy fast_hist loop": median_seconds(reference, folder, args.classes),
            f"segfuse eval, in process ({default_workers()} workers, report + plots)": median_seconds(
                segfuse_in_process, folder, args.classes, folder / "report"),
            "same pipeline without the report (pair, read + count in workers, score)": median_seconds(
                segfuse_without_report, folder, args.classes),
            "segfuse eval, `python -m segfuse` command (startup included)": median_seconds(
                segfuse_command, folder, args.classes, folder / "report-command"),
        }
    baseline_wall, baseline_cpu = next(iter(timings.values()))
    cores = os.cpu_count() or 1
    lines = [
        f"## segfuse eval throughput: {args.pairs} pairs of {args.size} x {args.size} PNG masks, {args.classes} classes",
        "",
        f"Machine: {platform.machine()} {platform.system()}, {cores} CPU cores, no GPU. {versions()}.",
        f"Median of 3 runs; mask generation not timed. 1-minute load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after (other jobs shared the cores).",
        "",
        "Wall clock is what the run took on the shared machine. CPU time (this process and its",
        "workers) hardly depends on the load. 'CPU-bound rate' is pairs / (CPU s / processes working",
        f"in parallel): 1 for the reference, {min(cores, 8)} for segfuse, an upper bound for segfuse since",
        "its report (JSON, CSV, plots) and startup run serially.",
        "",
        "| method | wall s | pairs / s | vs reference | CPU s | CPU ms / pair | CPU-bound rate pairs / s | vs reference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index, (name, (wall, cpu)) in enumerate(timings.items()):
        parallel = 1 if index == 0 else min(cores, 8)
        idle_rate = args.pairs / (cpu / parallel)
        lines.append(
            f"| {name} | {wall:.3f} | {args.pairs / wall:.1f} | {baseline_wall / wall:.2f}x | {cpu:.3f} | "
            f"{1000 * cpu / args.pairs:.2f} | {idle_rate:.1f} | {idle_rate * baseline_cpu / args.pairs:.2f}x |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.write:
        args.write.write_text(table)


if __name__ == "__main__":
    main()

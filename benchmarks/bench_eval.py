"""``segfuse eval`` against a plain decode-plus-bincount baseline, as processes, on two data shapes.

Data (generated into a temporary folder, not timed): label PNGs made of regions with a
255 void band at region boundaries, and predictions that differ from the truth near the
boundaries, like a segmentation model's errors:

- Cityscapes-like: 100 pairs of 1024 x 2048, 19 classes;
- ADE20K-like: 200 pairs of 150 classes, sizes drawn from ADE20K's common shapes
  (512 x 683, 683 x 512, 512 x 512, 384 x 512, ...).

Timed, each in a fresh process, methods taking turns every round, median of the rounds:

- baseline: a script that decodes each pair with pyspng and counts it with one
  ``np.bincount`` (the seeds' fast_hist: valid pixels of the truth, ``C * gt + pred``) in a
  ``multiprocessing.Pool`` of 2 worker processes, sums the histograms and prints the mIoU;
- ``segfuse eval`` as a command (``python -m segfuse eval --num-classes C --out DIR``):
  pairing, reading, counting, scoring, the table and the report files (JSON, CSV and
  report.html with the 6 worst images; plots are drawn only when stdout is a terminal, so
  not here);
- the same with ``--no-html`` (what the HTML report costs) and with ``--plots`` (both PNG
  plots drawn, and embedded in the HTML);
- counting alone, in one process each: segfuse's reader (``eval_pairs.read_pairs``, its
  default workers) against the baseline's pool, both without interpreter start-up.

    flock /tmp/segfuse-bench.lock python benchmarks/bench_eval.py [--rounds 5] [--write benchmarks/results/eval.md]
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
import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ADE_SHAPES = ((512, 683), (683, 512), (512, 512), (384, 512), (512, 768), (427, 640), (640, 480))

BASELINE = textwrap.dedent(
    """
    import sys
    from multiprocessing import Pool
    from pathlib import Path

    import numpy as np
    import pyspng

    def count(job):
        gt_path, pred_path, n = job
        gt = pyspng.load(Path(gt_path).read_bytes())
        pred = pyspng.load(Path(pred_path).read_bytes())
        k = gt < n
        return np.bincount(n * gt[k].astype(np.int64) + pred[k], minlength=n * n)

    def main(gt_dir, pred_dir, n):
        jobs = [(str(p), str(Path(pred_dir) / p.name), n) for p in sorted(Path(gt_dir).glob("*.png"))]
        with Pool(2) as pool:
            hist = sum(pool.imap(count, jobs, chunksize=max(1, len(jobs) // 16))).reshape(n, n)
        iou = np.diag(hist) / np.maximum(hist.sum(0) + hist.sum(1) - np.diag(hist), 1)
        print(f"mIoU {iou.mean():.4f}")

    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


def regions(rng: np.random.Generator, shape: tuple[int, int], classes: int, cell: int) -> np.ndarray:
    """A label map of rectangular-ish regions: a coarse random grid, upsampled, with jittered edges."""
    height, width = shape
    coarse = rng.integers(0, classes, (height // cell + 2, width // cell + 2), dtype=np.uint8)
    labels = np.kron(coarse, np.ones((cell, cell), dtype=np.uint8))
    rows = (np.arange(height) + rng.integers(0, cell)) % labels.shape[0]
    cols = (np.arange(width) + rng.integers(0, cell)) % labels.shape[1]
    return labels[np.ix_(rows, cols)]


def make_pair(rng: np.random.Generator, shape, classes: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    labels = regions(rng, shape, classes, cell)
    pred = labels.copy()
    for _ in range(2):  # boundary errors: take a shifted neighbour's label near edges
        shift = tuple(int(v) for v in rng.integers(-cell // 8, cell // 8 + 1, size=2))
        shifted = np.roll(labels, shift, axis=(0, 1))
        noisy = (shifted != labels) & (rng.random(labels.shape) < 0.5)
        pred[noisy] = shifted[noisy]
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    truth = labels.copy()
    truth[edge] = 255
    return truth, pred


def generate(folder: Path, shapes: list[tuple[int, int]], classes: int, cell: int) -> None:
    rng = np.random.default_rng(0)
    (folder / "gt").mkdir(parents=True)
    (folder / "pred").mkdir(parents=True)
    for i, shape in enumerate(shapes):
        truth, pred = make_pair(rng, shape, classes, cell)
        Image.fromarray(truth, mode="L").save(folder / "gt" / f"{i:05d}.png")
        Image.fromarray(pred, mode="L").save(folder / "pred" / f"{i:05d}.png")


def children_cpu() -> float:
    """User + system CPU seconds of the reaped child processes (and, through them, their workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_env() -> dict[str, str]:
    """The timed processes' environment: this checkout on PYTHONPATH, bytecode caching on.

    As in any installed environment, imports read .pyc files (the warm-up round writes
    them): a PYTHONDONTWRITEBYTECODE=1 in the caller's environment (this project's sandbox
    sets it) would make every run of segfuse compile its own modules again, about 0.03 s.
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO)
    return env


def run_process(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command run as a process."""
    env = process_env()
    start, start_cpu = time.perf_counter(), children_cpu()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start, children_cpu() - start_cpu


def eval_command(folder: Path, classes: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "segfuse", "eval", "--gt", str(folder / "gt"), "--pred", str(folder / "pred"),
            "--num-classes", str(classes), "--out", str(folder / "report"), *extra]


def count_segfuse(folder: Path, classes: int) -> None:
    from segfuse.cli.eval_pairs import CountOptions, read_pairs
    from segfuse.cli.io_masks import pair_masks

    read_pairs(pair_masks(folder / "gt", folder / "pred").pairs, CountOptions(classes, 255), progress=False)


def count_baseline(folder: Path, classes: int, script: Path) -> None:
    import eval_baseline  # the baseline script, on sys.path

    jobs = [(str(p), str(folder / "pred" / p.name), classes) for p in sorted((folder / "gt").glob("*.png"))]
    from multiprocessing import Pool

    with Pool(2) as pool:
        sum(pool.imap(eval_baseline.count, jobs, chunksize=max(1, len(jobs) // 16)))


def in_fresh_process(function: str, folder: Path, classes: int, script: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one counting call, timed inside a fresh process (imports not counted)."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'benchmarks')!r})
        sys.path.insert(0, {str(script.parent)!r})
        from pathlib import Path
        import multiprocessing, bench_eval, eval_baseline, segfuse.cli.eval_pairs, segfuse.cli.io_masks  # not timed
        def cpu():
            return time.process_time() + bench_eval.children_cpu()
        start, start_cpu = time.perf_counter(), cpu()
        bench_eval.{function}(Path({str(folder)!r}), {classes}{f", Path({str(script)!r})" if function == "count_baseline" else ""})
        print(time.perf_counter() - start, cpu() - start_cpu)
    """)
    env = process_env()
    finished = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True)
    wall, cpu = finished.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def measure(folder: Path, classes: int, script: Path, rounds: int) -> dict[str, list[tuple[float, float]]]:
    methods = {
        "baseline: pyspng + one np.bincount per pair, Pool(2), as a process":
            lambda: run_process([sys.executable, str(script), str(folder / "gt"), str(folder / "pred"), str(classes)]),
        "segfuse eval, as a process (report: JSON + CSV + HTML, table)": lambda: run_process(eval_command(folder, classes)),
        "segfuse eval --no-html, as a process": lambda: run_process(eval_command(folder, classes, "--no-html")),
        "segfuse eval --plots, as a process": lambda: run_process(eval_command(folder, classes, "--plots")),
        "counting alone: baseline's Pool(2), in process": lambda: in_fresh_process("count_baseline", folder, classes, script),
        "counting alone: segfuse read_pairs (default workers), in process":
            lambda: in_fresh_process("count_segfuse", folder, classes, script),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    for name, method in methods.items():  # warm-up: file cache, .pyc
        method()
    for _ in range(rounds):
        for name, method in methods.items():
            times[name].append(method())
    return times


def versions() -> str:
    import PIL
    import pyspng

    import segfuse

    return (f"Python {platform.python_version()}, numpy {np.__version__}, Pillow {PIL.__version__}, "
            f"pyspng {pyspng.__version__}, segfuse {segfuse.__version__}")


def table(title: str, times: dict[str, list[tuple[float, float]]], pairs: int) -> list[str]:
    names = list(times)
    walls = {name: statistics.median(wall for wall, _ in times[name]) for name in names}
    cpus = {name: statistics.median(cpu for _, cpu in times[name]) for name in names}
    lines = [f"**{title}**", "", "| method | median wall s | pairs / s | wall vs baseline | median CPU s | CPU vs baseline |",
             "|---|---:|---:|---:|---:|---:|"]
    in_process = next(name for name in names if name.startswith("counting alone: baseline"))
    for name in names:
        reference = names[0] if "as a process" in name else in_process
        lines.append(f"| {name} | {walls[name]:.3f} | {pairs / walls[name]:.0f} | **{walls[name] / walls[reference]:.2f}x** | "
                     f"{cpus[name]:.3f} | {cpus[name] / cpus[reference]:.2f}x |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--city-pairs", type=int, default=100)
    parser.add_argument("--ade-pairs", type=int, default=200)
    parser.add_argument("--write", type=Path, help="write the results (markdown) to this file")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    shapes = {
        "Cityscapes-like: {n} pairs of 1024 x 2048, 19 classes": ([(1024, 2048)] * args.city_pairs, 19, 64),
        "ADE20K-like: {n} pairs, 150 classes, ADE20K's shapes": (
            [ADE_SHAPES[i % len(ADE_SHAPES)] for i in range(args.ade_pairs)], 150, 24),
    }
    load_before = os.getloadavg()
    lines = []
    with tempfile.TemporaryDirectory() as temp:
        script = Path(temp) / "eval_baseline.py"
        script.write_text(BASELINE)
        for index, (title, (shape_list, classes, cell)) in enumerate(shapes.items()):
            folder = Path(temp) / f"set{index}"
            generate(folder, shape_list, classes, cell)
            size = sum(p.stat().st_size for p in folder.rglob("*.png")) / 2**20
            times = measure(folder, classes, script, args.rounds)
            lines += table(f"{title.format(n=len(shape_list))} ({size:.0f} MB of PNG)", times, len(shape_list))
    load_after = os.getloadavg()
    header = [
        f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, no GPU. {versions()}.",
        f"Median of {args.rounds} rounds (methods take turns each round, after one warm-up round). CPU is user + "
        "system time of every process of the method (workers included): it hardly depends on the machine's load, "
        "wall time does. "
        f"Load average (1, 5, 15 min) {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f} before, "
        f"{load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f} after.",
        "",
    ]
    text = "\n".join(header + lines)
    print(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()

"""Cost of the paired bootstrap of ``segfuse compare`` / ``segfuse.metrics.compare_counts``.

Synthetic per-image confusion matrices for two models (default 500 images x 150 classes,
about 20 classes per image, 512 x 512 pixels) are generated (not timed). Timed, median of
--repeats runs, in one process with ``OMP_WAIT_POLICY=PASSIVE`` (see benchmarks/RESULTS.md):

- segfuse: ``compare_counts`` on the per-image TP / FP / FN, every per-class and mean
  score with its interval (1000 resamples), with torch's default threads and with one;
- ``image_counts``: reducing the dense per-image matrices to TP / FP / FN (once per model);
- a plain loop: for each resample, sum the resampled dense confusion matrices of each
  model and call ``semantic_scores`` (timed on --loop-resamples resamples, scaled to
  --resamples);
- scipy.stats.bootstrap (paired, percentile, vectorized): the mIoU delta alone, one scalar,
  from the same per-image TP / FP / FN, with the same number of resamples.

    python benchmarks/bench_compare.py [--images 500] [--classes 150] [--resamples 1000] [--write FILE]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.stats  # noqa: E402
import torch  # noqa: E402

from segfuse.metrics import semantic_scores  # noqa: E402
from segfuse.metrics.compare import bootstrap_indices, compare_counts, image_counts  # noqa: E402

PIXELS = 512 * 512


def confusions(rng: np.random.Generator, images: int, classes: int, present: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (N, C, C) int64 matrices of two models on the same truth (B slightly better)."""
    truth = np.zeros((images, classes), dtype=np.int64)
    for i in range(images):
        chosen = rng.choice(classes, size=present, replace=False)
        truth[i, chosen] = rng.multinomial(PIXELS, rng.dirichlet(np.full(present, 0.5)))
    models = []
    for accuracy in (0.80, 0.82):
        probabilities = np.zeros((classes, classes))
        probabilities[np.arange(classes), np.arange(classes)] = accuracy
        for shift in range(1, 6):
            probabilities[np.arange(classes), (np.arange(classes) + shift) % classes] = (1 - accuracy) / 5
        matrix = np.stack([rng.multinomial(row, probabilities) for row in truth])
        models.append(torch.from_numpy(matrix))
    return models[0], models[1]


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_loop(conf_a: torch.Tensor, conf_b: torch.Tensor, indices: torch.Tensor) -> list:
    deltas = []
    for row in indices:
        a, b = semantic_scores(conf_a[row].sum(0)), semantic_scores(conf_b[row].sum(0))
        deltas.append((b.iou - a.iou, b.miou - a.miou))
    return deltas


def scipy_miou_delta(counts_a: torch.Tensor, counts_b: torch.Tensor, resamples: int):
    images, _, classes = counts_a.shape
    samples = [row for counts in (counts_a, counts_b) for row in counts.permute(1, 2, 0).reshape(-1, images).double().numpy()]

    def statistic(*data, axis=-1):
        sums = np.stack(data).sum(axis=axis)
        tp, fp, fn = np.moveaxis(sums.reshape(2, 3, classes, *sums.shape[1:]), 1, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            miou = np.nanmean(tp / (tp + fp + fn), axis=1)
        return miou[1] - miou[0]

    return scipy.stats.bootstrap(
        samples, statistic, paired=True, vectorized=True, n_resamples=resamples, batch=50,
        method="percentile", rng=np.random.default_rng(0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-resamples", type=int, default=20)
    parser.add_argument("--write", type=Path, help="also write the markdown table to this file")
    args = parser.parse_args()

    conf_a, conf_b = confusions(np.random.default_rng(0), args.images, args.classes)
    counts_a, counts_b = image_counts(conf_a), image_counts(conf_b)
    threads = torch.get_num_threads()
    run = lambda: compare_counts(counts_a, counts_b, resamples=args.resamples)  # noqa: E731
    rows = [(f"segfuse compare_counts, all scores ({threads} threads)", median_seconds(run, args.repeats))]
    torch.set_num_threads(1)
    rows.append(("segfuse compare_counts, all scores (1 thread)", median_seconds(run, args.repeats)))
    torch.set_num_threads(threads)
    rows.append(("image_counts: dense (N, C, C) -> TP / FP / FN, both models",
                 median_seconds(lambda: (image_counts(conf_a), image_counts(conf_b)), args.repeats)))
    indices = bootstrap_indices(args.images, args.loop_resamples, seed=1)
    loop = median_seconds(lambda: plain_loop(conf_a, conf_b, indices), max(1, args.repeats // 2))
    rows.append((f"plain loop over resamples (timed on {args.loop_resamples}, scaled)", loop * args.resamples / args.loop_resamples))
    scipy_time = median_seconds(lambda: scipy_miou_delta(counts_a, counts_b, args.resamples), max(1, args.repeats // 2))
    rows.append(("scipy.stats.bootstrap, paired percentile, mIoU delta only", scipy_time))

    reference = rows[0][1]
    load = os.getloadavg()[0]
    lines = [
        f"{args.images} images x {args.classes} classes, {args.resamples} resamples; median of {args.repeats} "
        f"(plain loop and scipy: {max(1, args.repeats // 2)}); load average {load:.1f} at the end.",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}.",
        "",
        "| method | median s | time / segfuse |",
        "|---|---:|---:|",
        *(f"| {name} | {seconds:.3f} | {seconds / reference:.2f} |" for name, seconds in rows),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        args.write.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""HD95 + ASSD + NSD against DeepMind surface-distance and MONAI, on CPU, in the same run.

Two workloads (generated, not timed):

- 3D: one 256 x 256 x 256 pair with 5 classes (background and 4 organ-like ellipsoids of
  different sizes, partly overlapping), spacing (1, 1, 2.5); the prediction moves each organ
  by a few mm, rescales it by up to 8% and adds boundary noise.
- 2D: 100 pairs of 512 x 512 masks with 21 classes (VOC-like: background and 1 to 4
  objects per image, ellipses and boxes of random classes; predictions moved, rescaled,
  sometimes missing an object or adding a false one).

Timed, median of ``--repeats`` runs, the implementations taking turns:

- DeepMind: per class present in either map, ``compute_surface_distances`` on the binary
  masks, then ``compute_robust_hausdorff(95)``, ``compute_average_surface_distance`` and
  ``compute_surface_dice_at_tolerance``.
- MONAI: one-hot of both maps (N, C, *S), then ``compute_hausdorff_distance(percentile=95)``,
  ``compute_average_surface_distance(symmetric=True)`` and ``compute_surface_dice``.
- segfuse: ``surface_metrics`` on the class maps, ``definition="deepmind"`` and
  ``definition="monai"`` (the numbers of each reference), all classes in one call: the
  default ``backend="search"`` (numba's compiled row search when numba is installed, else
  the KD-tree) and ``backend="kdtree"`` (numpy + scipy only), each also with 2 torch threads
  where the machine has them (a batch's images in chunks over two threads; one volume's two
  surfaces and two directions in two threads; the KD-tree's workers follow torch's thread count).

Every segfuse number is checked against its reference (max relative difference printed;
MONAI's are float32). Background is left out (MONAI's default). NSD tolerance 2 mm (3D) and
2 px (2D).

    python benchmarks/bench_surface.py [--repeats 3] [--images 100] [--threads N] [--write benchmarks/results/surface.md]

``--segfuse-path DIR --no-peers`` times another checkout's segfuse alone (e.g. the code before a change).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads distort shared-core timings

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

if "--segfuse-path" in sys.argv:  # before importing segfuse: time another checkout's code
    sys.path.insert(0, sys.argv[sys.argv.index("--segfuse-path") + 1])

import segfuse  # noqa: E402
from segfuse.metrics import surface_metrics  # noqa: E402

np.Inf, np.NaN = np.inf, np.nan  # surface-distance 0.1 still uses the NumPy 1 aliases
warnings.filterwarnings("ignore")

SPACING_3D = (1.0, 1.0, 2.5)
TOLERANCE_3D, TOLERANCE_2D = 2.0, 2.0


def ellipsoid(grid, centre, radii) -> np.ndarray:
    return sum(((g - m) / r) ** 2 for g, m, r in zip(grid, centre, radii)) <= 1


def volume_pair(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = [g.astype(np.float32) * s for g, s in zip(np.ogrid[tuple(slice(0, size) for _ in range(3))], SPACING_3D)]
    extent = np.array([size * s for s in SPACING_3D])
    gt, pred = np.zeros((size,) * 3, np.uint8), np.zeros((size,) * 3, np.uint8)
    for c, scale in zip(range(1, 5), (0.30, 0.22, 0.16, 0.12)):
        centre = rng.uniform(0.3, 0.7, 3) * extent
        radii = scale * extent.min() * rng.uniform(0.8, 1.2, 3) * np.array([1, 1, 1.6])
        gt[ellipsoid(grid, centre, radii)] = c
        pred[ellipsoid(grid, centre + rng.normal(0, 2.5, 3), radii * rng.uniform(0.92, 1.08, 3))] = c
    noisy = rng.random(gt.shape) < 0.02
    edge = np.zeros(gt.shape, bool)
    for axis in range(3):
        edge |= np.roll(pred, 1, axis) != pred
    pred[noisy & edge] = np.roll(pred, 1, 0)[noisy & edge]
    return gt, pred


def image_pairs(count: int, size: int = 512, classes: int = 21, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:size, :size]
    gt, pred = np.zeros((count, size, size), np.uint8), np.zeros((count, size, size), np.uint8)
    for i in range(count):
        for _ in range(int(rng.integers(1, 5))):
            c = int(rng.integers(1, classes))
            centre, radii = rng.uniform(0.2, 0.8, 2) * size, rng.uniform(0.05, 0.3, 2) * size
            moved, scaled = centre + rng.normal(0, 4, 2), radii * rng.uniform(0.9, 1.1, 2)
            if rng.random() < 0.5:
                gt[i][ellipsoid((yy, xx), centre, radii)] = c
                shape = ellipsoid((yy, xx), moved, scaled)
            else:
                gt[i][(np.abs(yy - centre[0]) <= radii[0]) & (np.abs(xx - centre[1]) <= radii[1])] = c
                shape = (np.abs(yy - moved[0]) <= scaled[0]) & (np.abs(xx - moved[1]) <= scaled[1])
            if rng.random() > 0.1:  # sometimes the prediction misses the object
                pred[i][shape] = c
        if rng.random() < 0.2:  # and sometimes adds a false one
            centre = rng.uniform(0.1, 0.9, 2) * size
            pred[i][ellipsoid((yy, xx), centre, (12, 20))] = int(rng.integers(1, classes))
    return gt, pred


def deepmind(gt: np.ndarray, pred: np.ndarray, classes: int, spacing, tolerance) -> np.ndarray:
    import surface_distance as sd

    spacing = spacing or (1.0,) * (gt.ndim - 1)
    out = np.full((len(gt), classes, 3), np.nan)
    for i in range(len(gt)):
        for c in range(1, classes):
            gt_mask, pred_mask = gt[i] == c, pred[i] == c
            if not (gt_mask.any() or pred_mask.any()):
                continue
            d = sd.compute_surface_distances(gt_mask, pred_mask, spacing)
            sd.compute_average_surface_distance(d)  # the one-way means, as a user would also report them
            areas = np.concatenate([d["surfel_areas_gt"], d["surfel_areas_pred"]])
            distances = np.concatenate([d["distances_gt_to_pred"], d["distances_pred_to_gt"]])
            out[i, c] = (
                sd.compute_robust_hausdorff(d, 95),
                np.sum(distances * areas) / np.sum(areas),  # ASSD over both surfaces
                sd.compute_surface_dice_at_tolerance(d, tolerance),
            )
    return out


def monai(gt: np.ndarray, pred: np.ndarray, classes: int, spacing, tolerance) -> np.ndarray:
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_surface_dice

    def one_hot(labels):
        return torch.nn.functional.one_hot(torch.from_numpy(labels).long(), classes).movedim(-1, 1).float()

    y, y_pred = one_hot(gt), one_hot(pred)
    hd95 = compute_hausdorff_distance(y_pred, y, percentile=95, spacing=spacing)
    assd = compute_average_surface_distance(y_pred, y, symmetric=True, spacing=spacing)
    nsd = compute_surface_dice(y_pred, y, [tolerance] * (classes - 1), spacing=spacing)
    out = np.full((len(gt), classes, 3), np.nan)
    out[:, 1:] = torch.stack([hd95, assd, nsd], -1).double().numpy()
    return out


def segfuse_metrics(gt, pred, classes, spacing, tolerance, definition, backend=None, threads=None) -> np.ndarray:
    kwargs = {} if backend is None else {"backend": backend}
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        scores = surface_metrics(pred, gt, classes, spacing=spacing, definition=definition,
                                 tolerances=(tolerance,), empty="reference", **kwargs)
    finally:
        torch.set_num_threads(before)
    out = torch.stack([scores["hd95"], scores["assd"], scores[f"nsd@{tolerance:g}"]], -1).numpy()
    if definition == "deepmind":  # the DeepMind loop above skips classes absent from both maps
        out[(scores.gt_empty & scores.pred_empty).numpy()] = np.nan
    return out


def max_relative_difference(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, int]:
    """Largest relative difference over finite values, and the number of NaN / inf mismatches."""
    both = np.isfinite(ours) & np.isfinite(theirs)
    mismatches = int((~both & ~((np.isnan(ours) & np.isnan(theirs)) | (ours == theirs))).sum())
    scale = np.maximum(np.abs(theirs[both]), 1e-300)
    return float((np.abs(ours[both] - theirs[both]) / scale).max(initial=0.0)), mismatches


def timed(functions: dict, repeats: int, once: tuple = ()) -> dict:
    """Median seconds of each function, taking turns; and each one's last result. ``once``: timed in the first turn only."""
    times = {name: [] for name in functions}
    results = {}
    for turn in range(repeats):
        for name, function in functions.items():
            if turn and name in once:
                continue
            start = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(values), results[name]) for name, values in times.items()}


def versions(peers: bool = True) -> str:
    import scipy

    from segfuse.metrics import _edt

    try:
        import numba

        compiled = (f"numba {numba.__version__}" if getattr(_edt, "row_search_available", lambda: False)()
                    else "numba not used")
    except ImportError:
        compiled = "numba not installed"
    text = (f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"numpy {np.__version__}, scipy {scipy.__version__}, {compiled}, segfuse {segfuse.__version__} "
            f"from {os.path.dirname(segfuse.__file__)}")
    if peers:
        import monai

        text += f", MONAI {monai.__version__}, surface-distance 0.1"
    return text


def run(name, gt, pred, classes, spacing, tolerance, repeats, monai_once=False, peers=True) -> list[str]:
    functions = {}
    for definition, peer in (("deepmind", "DeepMind surface-distance"), ("monai", "MONAI")):
        if peers:
            functions[peer] = (lambda: deepmind(gt, pred, classes, spacing, tolerance)) if definition == "deepmind" \
                else (lambda: monai(gt, pred, classes, spacing, tolerance))
        functions[f"segfuse, definition='{definition}'"] = (
            lambda d=definition: segfuse_metrics(gt, pred, classes, spacing, tolerance, d))
        functions[f"segfuse, definition='{definition}', backend='kdtree'"] = (
            lambda d=definition: segfuse_metrics(gt, pred, classes, spacing, tolerance, d, "kdtree"))
        if peers and (os.cpu_count() or 1) >= 2:
            functions[f"segfuse, definition='{definition}', 2 threads"] = (
                lambda d=definition: segfuse_metrics(gt, pred, classes, spacing, tolerance, d, threads=2))
            functions[f"segfuse, definition='{definition}', backend='kdtree', 2 threads"] = (
                lambda d=definition: segfuse_metrics(gt, pred, classes, spacing, tolerance, d, "kdtree", threads=2))
    results = timed(functions, repeats, once=("MONAI",) if monai_once else ())
    fastest_peer = min(results["DeepMind surface-distance"][0], results["MONAI"][0]) if peers else None
    rows = [f"| {name}: method | median s | vs the faster peer | max rel. difference to its reference |",
            "|---|---:|---:|---|"]
    for method, (seconds, values) in results.items():
        check, ratio = "", ""
        if peers and method.startswith("segfuse"):
            reference = "DeepMind surface-distance" if "'deepmind'" in method else "MONAI"
            difference, mismatches = max_relative_difference(values, results[reference][1])
            check = f"{difference:.1e}, {mismatches} NaN/inf mismatches"
        if peers:
            bold = "**" if method.startswith("segfuse") else ""
            ratio = f"{bold}{fastest_peer / seconds:.1f}x{bold}"
        rows.append(f"| {method} | {seconds:.3f} | {ratio} | {check} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=256, help="3D edge length")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--monai-every-turn", action="store_true", help="time MONAI's 2D run in every turn")
    parser.add_argument("--write", type=str, default=None, help="markdown file for the tables")
    parser.add_argument("--segfuse-path", type=str, default=None, help="import segfuse from this checkout")
    parser.add_argument("--no-peers", action="store_true", help="time segfuse alone (no DeepMind, no MONAI)")
    args = parser.parse_args()
    peers = not args.no_peers
    if args.threads:
        torch.set_num_threads(args.threads)
    gt3, pred3 = volume_pair(args.size)
    gt2, pred2 = image_pairs(args.images)
    load_before = os.getloadavg()[0]
    lines = [f"Machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, no GPU. "
             f"{versions(peers)}.", ""]
    segfuse_metrics(gt2[:1], pred2[:1], 21, None, TOLERANCE_2D, "deepmind")  # imports (scipy, numba) not timed
    segfuse_metrics(gt3[None, :8], pred3[None, :8], 5, SPACING_3D, TOLERANCE_3D, "deepmind")
    lines += run(f"3D {args.size}^3, 5 classes, spacing (1, 1, 2.5)", gt3[None], pred3[None], 5, SPACING_3D,
                 TOLERANCE_3D, args.repeats, peers=peers)
    lines.append("")
    lines += run(f"2D {args.images} x 512^2, 21 classes", gt2, pred2, 21, None, TOLERANCE_2D, args.repeats,
                 monai_once=not args.monai_every_turn, peers=peers)
    lines += ["", f"Median of {args.repeats} runs, implementations taking turns (MONAI's 2D run, which takes "
                  f"minutes, once unless --monai-every-turn); torch threads {torch.get_num_threads()} ('2 threads' "
                  f"rows set 2 for that call: a batch's images in chunks over two threads, one volume's two "
                  f"surfaces and directions in two threads, the KD-tree's workers); 1-minute load average "
                  f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after."]
    print("\n".join(lines))
    if args.write:
        with open(args.write + ".tmp", "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(args.write + ".tmp", args.write)


if __name__ == "__main__":
    main()

"""Per-call fixed cost of ``segfuse.coco.evaluate`` on faster-coco-eval's 9-object test set, back to back.

Usage: python benchmarks/bench_coco_fixed_cost.py [--segfuse-path DIR] [--calls 200] [--rounds 5]

Times ``evaluate(gt_path, dt_path, iou_type).summary()`` (segm and bbox) in one process, after
100 untimed calls: the thread CPU time of each call, the median of ``--calls`` calls per round,
the smallest of ``--rounds`` round medians (what the code costs with warm caches; the
interleaved wall times against the peers are bench_coco.py's). ``--segfuse-path`` times another
checkout (e.g. ``git worktree add /tmp/old <commit>``) in the same minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "coco" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segfuse-path", type=Path, help="import segfuse from this checkout")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.segfuse_path is not None:
        sys.path.insert(0, str(args.segfuse_path.resolve()))
    import segfuse
    from segfuse.coco import evaluate

    gt, dt = str(DATA / "fce_gt_dataset.json"), str(DATA / "fce_dt_dataset.json")
    print(f"segfuse from {Path(segfuse.__file__).parent}")
    for iou_type in ("segm", "bbox"):
        for _ in range(100):
            evaluate(gt, dt, iou_type).summary()
        medians = []
        for _ in range(args.rounds):
            times = []
            for _ in range(args.calls):
                start = time.thread_time()
                evaluate(gt, dt, iou_type).summary()
                times.append(time.thread_time() - start)
            medians.append(statistics.median(times))
        print(f"{iou_type}: {1e3 * min(medians):.3f} ms per call (CPU, smallest of {args.rounds} medians of "
              f"{args.calls} calls)")


if __name__ == "__main__":
    main()

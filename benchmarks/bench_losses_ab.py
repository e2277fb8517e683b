"""CPU A/B of the losses: an earlier commit's segfuse against the working tree, in one process.

    python benchmarks/bench_losses_ab.py --base 66bc244 [--rounds 51] [--clock cpu|wall]

The base commit's ``segfuse`` package is extracted with ``git archive`` into a temporary
folder as ``segfuse_base`` (its imports rewritten), so both versions load side by side.
Each loss runs forward + backward at 4 x 21 x 256 x 256 fp32 with an int64 class map; the
two versions take turns in every round (the order alternates), so load from other jobs on
a shared machine hits both alike. ``--clock cpu`` (default) times process CPU time, which
other processes disturb less than wall time. Prints medians and new / base.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def extract_base(commit: str, folder: pathlib.Path) -> None:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "segfuse"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = folder / "segfuse"
    for path in package.rglob("*.py"):
        text = path.read_text()
        text = re.sub(r"\bfrom segfuse([. ])", r"from segfuse_base\1", text)
        text = re.sub(r"\bimport segfuse\b", "import segfuse_base", text)
        text = text.replace('"segfuse.', '"segfuse_base.')
        path.write_text(text)
    package.rename(folder / "segfuse_base")


def cases(functional, labels, torch):
    ignored = labels.masked_fill(labels == 3, 255)
    return {
        "CrossEntropyLoss": lambda x: functional.cross_entropy(x, labels),
        "DiceLoss": lambda x: functional.dice_loss(x, labels),
        "JaccardLoss": lambda x: functional.jaccard_loss(x, labels, smooth=5e-6),
        "TverskyLoss": lambda x: functional.tversky_loss(x, labels),
        "GeneralizedDiceLoss": lambda x: functional.generalized_dice_loss(x, labels),
        "FocalLoss": lambda x: functional.focal_loss(x, labels),
        "DiceCELoss": lambda x: functional.dice_ce_loss(x, labels),
        "DiceCELoss ignore_index": lambda x: functional.dice_ce_loss(x, ignored, ignore_index=255),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="commit of the earlier version")
    parser.add_argument("--rounds", type=int, default=51)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        extract_base(args.base, pathlib.Path(folder))
        sys.path.insert(0, folder)
        import torch

        import segfuse.functional as new
        import segfuse_base.functional as old

        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        torch.manual_seed(0)
        logits = torch.randn(4, 21, 256, 256)
        labels = torch.randint(0, 21, (4, 256, 256))

        def once(fn) -> float:
            x = logits.clone().requires_grad_(True)
            start = clock()
            fn(x).backward()
            return (clock() - start) * 1e3

        print(f"| loss | base ({args.base}) ms | this tree ms | new / base |\n|---|---:|---:|---:|")
        implementations = {"base": cases(old, labels, torch), "new": cases(new, labels, torch)}
        for name in implementations["new"]:
            fns = {side: implementations[side][name] for side in implementations}
            torch.testing.assert_close(fns["base"](logits), fns["new"](logits), rtol=1e-5, atol=1e-6)
            for fn in fns.values():
                once(fn), once(fn)
            times = {"base": [], "new": []}
            for index in range(args.rounds):
                for side in (("base", "new") if index % 2 == 0 else ("new", "base")):
                    times[side].append(once(fns[side]))
            base, current = statistics.median(times["base"]), statistics.median(times["new"])
            print(f"| {name} | {base:.1f} | {current:.1f} | {current / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()

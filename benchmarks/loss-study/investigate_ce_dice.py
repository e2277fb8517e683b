"""Why did CE + Dice "fail" on seed 1 in the first loss study (mIoU 0.458, two classes at IoU 0)?

Reruns the first study's exact setting (`segfuse train` on the procedural task: 384 train /
128 val scenes of 64x64, U-Net base 8 depth 2, AdamW lr 1e-2, weight decay 1e-4, batch 16,
10 epochs, 5 % warm-up then cosine) and changes one thing at a time: the budget (20, 40
epochs), the learning rate (3e-3, 3e-2), the weighting of the two terms (Dice 0.5 or 2), and
the seed (CE, Dice and CE + Dice on seeds 0 to 9). Every run keeps its per-epoch per-class
IoU, so the table can say at which epoch each class was first found.

    python benchmarks/loss-study/investigate_ce_dice.py --out benchmarks/loss-study/ce_dice

Writes OUT/runs.jsonl (one line per run; reruns reuse finished lines) and OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

BASE = dict(loss="ce+dice", seed=1, lr=1e-2, epochs=10)
VARIANTS = (
    [("reproduce", {})]
    + [(f"budget {epochs} epochs", {"epochs": epochs}) for epochs in (20, 40)]
    + [(f"lr {lr:g}", {"lr": lr}) for lr in (3e-3, 3e-2)]
    + [(f"weights {spec}", {"loss": spec}) for spec in ("ce:1,dice:0.5", "ce:1,dice:2")]
    + [("CE, 40 epochs (the issue's rerun)", {"loss": "ce", "epochs": 40})]
    + [(f"seed {seed}", {"loss": loss, "seed": seed}) for loss in ("ce+dice", "dice", "ce") for seed in range(10)]
)
FOUND = 0.1  # a class counts as found once its validation IoU exceeds this


def run(name: str, changes: dict) -> dict:
    import torch

    from segfuse.train import ProceduralSegmentation, TrainConfig, Trainer

    torch.set_num_threads(1)
    options = {**BASE, **changes}
    config = TrainConfig(num_classes=4, loss=options["loss"], epochs=options["epochs"], batch_size=16,
                         lr=options["lr"], weight_decay=1e-4, seed=options["seed"], base_channels=8, depth=2,
                         device="cpu", save_predictions="none",
                         class_names=list(ProceduralSegmentation.class_names))
    train = ProceduralSegmentation(384, seed=0, image_size=64)
    val = ProceduralSegmentation(128, seed=1, image_size=64)
    start = time.process_time()
    history = Trainer(config, train, val, log=None).fit()
    return {"name": name, **options, "cpu_seconds": time.process_time() - start,
            "history": [{"epoch": r.epoch, "miou": r.miou, "iou": r.iou, "terms": r.train_terms, "lr": r.lr,
                         "predicted": [sum(column) for column in zip(*r.metrics["confusion_matrix"])]}
                        for r in history]}


def first_found(history: list[dict], cls: int):
    return next((record["epoch"] for record in history if record["iou"][cls] > FOUND), None)


def summarize(records: list[dict]) -> str:
    names = ["background", "ellipse", "rectangle", "speck"]
    lines = ["| run | loss | lr | epochs | seed | final mIoU | final IoU (bg / ellipse / rect / speck) | "
             "ellipse found at epoch | speck found at epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for record in records:
        final = record["history"][-1]
        found = [first_found(record["history"], cls) for cls in (1, 3)]
        lines.append(f"| {record['name']} | {record['loss']} | {record['lr']:g} | {record['epochs']} | {record['seed']} "
                     f"| {final['miou']:.3f} | {' / '.join(f'{v:.3f}' for v in final['iou'])} | "
                     + " | ".join("never" if epoch is None else str(epoch) for epoch in found) + " |")
    seeds = {}
    for record in records:
        if record["name"].startswith("seed "):
            seeds.setdefault(record["loss"], []).append(record)
    lines += ["", f"Seeds 0 to 9 at the first study's setting: runs whose final IoU is <= {FOUND} for a class "
              f"({', '.join(names[1:])}):", "", "| loss | runs missing a class | which |", "|---|---|---|"]
    for loss, group in seeds.items():
        missing = [(r["seed"], [names[c] for c in range(4) if r["history"][-1]["iou"][c] <= FOUND]) for r in group]
        missing = [(seed, classes) for seed, classes in missing if classes]
        lines.append(f"| {loss} | {len(missing)} of {len(group)} | "
                     + "; ".join(f"seed {seed}: {', '.join(classes)}" for seed, classes in missing) + " |")
    return "\n".join(lines) + "\n"


def options_key(changes: dict) -> tuple:
    options = {**BASE, **changes}
    return options["loss"], options["lr"], options["epochs"], options["seed"]


def _run(item):
    return run(*item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/loss-study/ce_dice"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--summary-only", action="store_true", help="write summary.md from the finished runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.jsonl"
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            done[options_key(record)] = record
    todo, planned = [], set(done)
    for name, changes in VARIANTS:
        if options_key(changes) not in planned:
            planned.add(options_key(changes))
            todo.append((name, changes))
    if args.summary_only:
        todo = []
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for record in pool.imap_unordered(_run, todo):
            done[options_key(record)] = record
            with path.open("a") as file:
                file.write(json.dumps(record) + "\n")
            print(f"{record['name']} ({record['loss']}): mIoU {record['history'][-1]['miou']:.3f} "
                  f"({record['cpu_seconds']:.0f} s CPU)", flush=True)
    records = [{**done[options_key(changes)], "name": name} for name, changes in VARIANTS
               if options_key(changes) in done]
    (args.out / "summary.md").write_text(summarize(records))
    print(f"wrote {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()

"""Why did CE + Dice "fail" on seed 1 in the first loss study (mIoU 0.458, two classes at IoU 0)?

Reruns the first study's exact setting (`segfuse train` on the procedural task: 384 train /
128 val scenes of 64x64, U-Net base 8 depth 2, AdamW lr 1e-2, weight decay 1e-4, batch 16,
10 epochs, 5 % warm-up then cosine) and changes one thing at a time: the budget (20, 40
epochs), the learning rate (3e-3, 3e-2), the weighting of the two terms (Dice 0.5 or 2), and
the seed (CE, Dice and CE + Dice on seeds 0 to 9). Every run keeps its per-epoch per-class
IoU, so the table can say at which epoch each class was first found.

    python benchmarks/loss-study/investigate_ce_dice.py --out benchmarks/loss-study/ce_dice

Then probes the mechanism: seed 1 with CE + Dice, Dice and CE, epoch by epoch, measuring how
much probability the network gives the true class on the ellipse and speck pixels.
Writes OUT/runs.jsonl and OUT/probes.jsonl (reruns reuse finished lines) and OUT/summary.md.
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
# the mechanism probe: how much probability the network gives the true class on ellipse and speck pixels
PROBES = [("probe ce+dice seed 1", {"loss": "ce+dice"}), ("probe dice seed 1", {"loss": "dice"}),
          ("probe ce seed 1", {"loss": "ce"})]


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


def probe(name: str, changes: dict) -> dict:
    """Train the first study's setting epoch by epoch; after each, on the validation ellipse and speck
    pixels: the mean softmax probability of the true class, and the share of those pixels where it is
    below 0.01 (saturated: the softmax passes a gradient of at most p (1 - p) < 0.01 to that logit)."""
    import torch
    from torch.utils.data import DataLoader

    from segfuse.train import ProceduralSegmentation, TrainConfig, Trainer
    from segfuse.train.progress import ProgressBar

    torch.set_num_threads(1)
    options = {**BASE, **changes}
    config = TrainConfig(num_classes=4, loss=options["loss"], epochs=options["epochs"], batch_size=16,
                         lr=options["lr"], weight_decay=1e-4, seed=options["seed"], base_channels=8, depth=2,
                         device="cpu", save_predictions="none")
    train = ProceduralSegmentation(384, seed=0, image_size=64)
    val = ProceduralSegmentation(128, seed=1, image_size=64)
    trainer = Trainer(config, train, val, log=None)
    epochs = []
    for epoch in range(1, options["epochs"] + 1):
        record = trainer.run_epoch(epoch, ProgressBar(enabled=False))
        trainer.epoch = epoch
        trainer.model.eval()
        true_probability = {1: [], 3: []}
        with torch.no_grad():
            for image, mask, _ in DataLoader(val, batch_size=32):
                probabilities = trainer.model(image).softmax(1)
                for cls in true_probability:
                    true_probability[cls].append(probabilities[:, cls][mask == cls])
        summary = {}
        for cls, class_name in ((1, "ellipse"), (3, "speck")):
            values = torch.cat(true_probability[cls])
            summary[class_name] = {"mean_true_probability": float(values.mean()),
                             "saturated_share": float((values < 0.01).double().mean())}
        epochs.append({"epoch": epoch, "iou": record.iou, "terms": record.train_terms, **summary})
    return {"name": name, "probe": True, **options, "epochs_probed": epochs}


def _probe(item):
    return probe(*item)


def probe_table(records: list[dict]) -> str:
    lines = ["| run | epoch | IoU ellipse / speck | mean p(true) ellipse / speck | share with p(true) < 0.01 "
             "ellipse / speck |", "|---|---|---|---|---|"]
    for record in records:
        for entry in record["epochs_probed"]:
            lines.append(f"| {record['name']} | {entry['epoch']} | {entry['iou'][1]:.3f} / {entry['iou'][3]:.3f} | "
                         f"{entry['ellipse']['mean_true_probability']:.3f} / {entry['speck']['mean_true_probability']:.3f} | "
                         f"{entry['ellipse']['saturated_share']:.2f} / {entry['speck']['saturated_share']:.2f} |")
    return "\n".join(lines) + "\n"


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
    probes_path = args.out / "probes.jsonl"
    probed = {}
    if probes_path.is_file():
        for line in probes_path.read_text().splitlines():
            probed[json.loads(line)["name"]] = json.loads(line)
    todo = [] if args.summary_only else [(name, changes) for name, changes in PROBES if name not in probed]
    if todo:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for record in pool.imap_unordered(_probe, todo):
                probed[record["name"]] = record
                with probes_path.open("a") as file:
                    file.write(json.dumps(record) + "\n")
                print(f"{record['name']}: probed", flush=True)
    text = summarize(records)
    probes = [probed[name] for name, _ in PROBES if name in probed]
    if probes:
        text += ("\nMechanism probe (seed 1, the first study's setting): after each epoch, on the validation "
                 "pixels of the ellipse and speck classes, the mean softmax probability of the true class and the "
                 "share of those pixels where it is below 0.01:\n\n" + probe_table(probes))
    (args.out / "summary.md").write_text(text)
    print(f"wrote {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()

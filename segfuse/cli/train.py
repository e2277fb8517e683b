"""``segfuse train``: train the compact U-Net with any segfuse loss on a VOC folder or the procedural task."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segfuse.cli.errors import fail

EXIT_INTERRUPTED = 130

EPILOG = """loss terms: ce, focal, dice, jaccard, tversky, gdl, lovasz, weighted as 'ce:1,dice:0.5' or
summed as 'focal+dice'. --class-weights 'auto' is median frequency balancing over the train split.
Writes OUT/history.json, OUT/metrics.json, OUT/checkpoints/last.pt and
OUT/predictions/epoch_NNN/{pred,gt}/<stem>.png (read them back with segfuse eval).
Run time: the defaults (10 epochs of 512 procedural 64x64 scenes, U-Net base 16 depth 3) take
about 2 min on 2 CPU cores. A checkpoint is saved after every epoch: after Ctrl-C, rerun the
same command with --resume OUT/checkpoints/last.pt to continue exactly where it stopped."""


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a compact U-Net with a segfuse loss",
                                   description="Train the compact U-Net with any segfuse loss on a VOC-layout "
                                   "folder or on the built-in procedural task.", epilog=EPILOG)
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, help="VOC-layout folder (default: the built-in procedural task)")
    data.add_argument("--num-classes", type=int, help="classes C (required with --data; procedural: 4)")
    data.add_argument("--ignore-index", type=int, help="mask label left out of loss and metrics (VOC: 255)")
    data.add_argument("--split-ratio", type=float, help="train fraction when --data has no ImageSets lists")
    data.add_argument("--crop-size", type=int, help="random training crop (needed when image sizes differ)")
    data.add_argument("--scale-range", type=_floats, help="random training rescale 'low,high', e.g. 0.5,2.0")
    data.add_argument("--no-flip", action="store_true", help="no random horizontal flip in training")
    data.add_argument("--train-samples", type=int, default=512, help="procedural training scenes")
    data.add_argument("--val-samples", type=int, default=128, help="procedural validation scenes")
    data.add_argument("--image-size", type=int, default=64, help="procedural scene size")
    data.add_argument("--data-seed", type=int, default=0, help="procedural scenes: train seed 2k, val seed 2k+1")
    optim = parser.add_argument_group("loss and optimisation")
    optim.add_argument("--loss", default="ce", help="loss spec, e.g. ce, focal+dice, 'ce:1,dice:0.5'")
    optim.add_argument("--class-weights", help="'auto' or comma-separated weights, one per class")
    optim.add_argument("--epochs", type=int, default=10)
    optim.add_argument("--batch-size", type=int, default=16)
    optim.add_argument("--lr", type=float, default=3e-3, help="AdamW peak learning rate (warm-up, then cosine)")
    optim.add_argument("--weight-decay", type=float, default=1e-4)
    optim.add_argument("--seed", type=int, default=0)
    optim.add_argument("--base-channels", type=int, default=16, help="U-Net width of the first stage")
    optim.add_argument("--depth", type=int, default=3, help="U-Net downsamplings")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder")
    run_group.add_argument("--resume", type=Path, help="checkpoint to continue from (e.g. OUT/checkpoints/last.pt)")
    run_group.add_argument("--stop-after", type=int, help="stop after this epoch, as if interrupted")
    run_group.add_argument("--save-predictions", choices=("last", "all", "none"), default="last",
                           help="write validation masks for the last epoch, every epoch, or none")
    run_group.add_argument("--keep-checkpoints", action="store_true", help="keep one checkpoint per epoch")
    run_group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run_group.add_argument("--no-amp", action="store_true", help="no float16 autocast on CUDA")
    run_group.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    run_group.add_argument("--threads", type=int, help="torch CPU threads")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def _datasets(args):
    from segfuse.train import AugmentedDataset, PairedTransform, ProceduralSegmentation, SegmentationFolder

    if args.data is None:
        if args.num_classes not in (None, ProceduralSegmentation.num_classes):
            raise ValueError(f"--num-classes must be {ProceduralSegmentation.num_classes} for the procedural "
                             f"task, got {args.num_classes}")
        train = ProceduralSegmentation(args.train_samples, seed=2 * args.data_seed, image_size=args.image_size)
        val = ProceduralSegmentation(args.val_samples, seed=2 * args.data_seed + 1, image_size=args.image_size)
        return train, val, ProceduralSegmentation.num_classes, list(ProceduralSegmentation.class_names)
    if args.num_classes is None:
        raise ValueError("--num-classes is required with --data")
    options = dict(split_ratio=args.split_ratio, seed=args.seed, num_classes=args.num_classes,
                   ignore_index=args.ignore_index)
    train = SegmentationFolder(args.data, "train", **options)
    val = SegmentationFolder(args.data, "val", **options)
    if args.crop_size is None and len(set(train.sizes)) > 1:
        raise ValueError(f"training images in {args.data} have different sizes; pass --crop-size to batch them")
    scale = None if args.scale_range is None else tuple(args.scale_range)
    if scale is not None and len(scale) != 2:
        raise ValueError(f"--scale-range must be 'low,high', got {args.scale_range}")
    transform = PairedTransform(args.crop_size, flip=not args.no_flip, scale_range=scale, mask_fill=args.ignore_index)
    return AugmentedDataset(train, transform, seed=args.seed), val, args.num_classes, None


def _class_weights(args, train_set, num_classes: int):
    from segfuse.train.class_balance import class_frequencies, median_frequency_weights

    if args.class_weights is None:
        return None
    if args.class_weights == "auto":
        return median_frequency_weights(class_frequencies(train_set, num_classes, args.ignore_index))
    try:
        return [float(part) for part in args.class_weights.split(",")]
    except ValueError:
        raise ValueError(f"--class-weights must be 'auto' or comma-separated numbers, "
                         f"got {args.class_weights!r}") from None


def interrupted_message(trainer) -> str:
    """One line for Ctrl-C: where it stopped and the checkpoint to ``--resume`` from."""
    where = "before training" if trainer is None else f"during epoch {trainer.epoch + 1} of {trainer.config.epochs}"
    if trainer is None or trainer.checkpoint is None:
        return (f"segfuse: interrupted {where}; no checkpoint was written yet (one is saved after every epoch): "
                f"rerun the command to start again")
    return (f"segfuse: interrupted {where}; to continue, rerun the same command with --resume "
            f"{trainer.checkpoint} (it holds epoch {trainer.checkpoint_epoch})")


def run(args) -> int:
    started = []  # the Trainer once built, so that Ctrl-C can name its checkpoint
    try:
        return _train(args, started)
    except KeyboardInterrupt:
        print(interrupted_message(started[0] if started else None), file=sys.stderr)
        return EXIT_INTERRUPTED


def _train(args, started: list) -> int:
    import torch

    from segfuse.train import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        train_set, val_set, num_classes, names = _datasets(args)
        config = TrainConfig(
            num_classes=num_classes, loss=args.loss, class_weights=_class_weights(args, train_set, num_classes),
            ignore_index=args.ignore_index, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, seed=args.seed, base_channels=args.base_channels, depth=args.depth,
            device=args.device, amp=not args.no_amp, workers=args.workers, save_predictions=args.save_predictions,
            keep_checkpoints=args.keep_checkpoints, class_names=names,
        )
        trainer = Trainer(config, train_set, val_set, out_dir=args.out, progress=not args.no_progress)
        started.append(trainer)
        if args.resume is not None:
            trainer.resume(args.resume)
        if config.class_weights is not None:
            print("class weights: " + ", ".join(f"{w:g}" for w in config.class_weights))
        history = trainer.fit(stop_after=args.stop_after)
    except (ValueError, TypeError) as error:
        return fail(str(error))
    if history:
        print(f"done: epoch {history[-1].epoch}/{config.epochs}, mIoU {history[-1].miou:.4f}; wrote {args.out}")
    return 0

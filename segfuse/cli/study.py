"""``segfuse study``: train the U-Net with each loss over seeds on the procedural task; write tables and plots."""

from __future__ import annotations

from pathlib import Path

from segfuse.cli.errors import fail


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def add_parser(subparsers) -> None:
    from segfuse.train.study import STUDY_LOSSES, StudySettings

    defaults = StudySettings()
    parser = subparsers.add_parser("study", help="compare the losses on the procedural task over seeds",
                                   description="Train the U-Net with each loss over seeds on the procedural task "
                                   "and write summary.md, summary.csv, runs.jsonl and learning curves.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/loss-study"), help="output folder")
    parser.add_argument("--losses", default=",".join(STUDY_LOSSES),
                        help=f"comma-separated subset of {','.join(STUDY_LOSSES)}")
    parser.add_argument("--seeds", type=_ints, default=defaults.seeds, help="comma-separated training seeds")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--train-samples", type=int, default=defaults.train_samples)
    parser.add_argument("--val-samples", type=int, default=defaults.val_samples)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--base-channels", type=int, default=defaults.base_channels)
    parser.add_argument("--depth", type=int, default=defaults.depth)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads")
    parser.set_defaults(run=run)


def run(args) -> int:
    from segfuse.train.study import StudySettings, run_study

    try:
        settings = StudySettings(
            seeds=tuple(args.seeds), train_samples=args.train_samples, val_samples=args.val_samples,
            image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            base_channels=args.base_channels, depth=args.depth, threads=args.threads,
        )
        run_study(settings, args.out, keys=[key.strip() for key in args.losses.split(",")])
    except (ValueError, TypeError) as error:
        return fail(str(error))
    print(f"wrote {args.out}/summary.md, summary.csv, runs.jsonl and curves_*.png")
    return 0

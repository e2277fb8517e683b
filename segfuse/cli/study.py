"""``segfuse study``: every loss at three learning rates over seeds, on both procedural tasks; tables and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segfuse.cli.errors import fail

EXIT_INTERRUPTED = 130


def _list(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    return parse


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _optional_int(text: str):
    return None if text.lower() == "none" else int(text)


# option -> (StudySettings field, parser, help)
OPTIONS = {
    "--tasks": ("tasks", _names, "comma-separated: standard (1 %% speck class), hard (thin threads, 0.1 %% class, "
                "noisy boundaries)"),
    "--losses": ("losses", _names, "comma-separated subset of the losses"),
    "--lrs": ("lrs", _list(float), "AdamW learning rates swept per loss"),
    "--seeds": ("seeds", _list(int), "training seeds reported per loss"),
    "--tuning-seeds": ("tuning_seeds", _list(int), "seeds run at every learning rate to choose one"),
    "--budgets": ("budgets", _list(int), "training budgets in epochs, each scored after a learning-rate decay"),
    "--max-epochs": ("max_epochs", int, "cap of a run when the validation mIoU does not plateau"),
    "--patience": ("patience", int, "epochs without a validation mIoU gain of --min-delta that mean converged"),
    "--min-delta": ("min_delta", float, "validation mIoU gain that counts as progress"),
    "--decay-epochs": ("decay_epochs", int, "epochs of the linear learning-rate decay that ends every budget"),
    "--train-samples": ("train_samples", int, "training scenes"),
    "--val-samples": ("val_samples", int, "validation scenes (convergence, learning-rate choice)"),
    "--test-samples": ("test_samples", int, "test scenes (every reported score)"),
    "--image-size": ("image_size", int, "scene size"),
    "--crop-size": ("crop_size", _optional_int, "random training crop ('none': whole scenes)"),
    "--batch-size": ("batch_size", int, "training batch"),
    "--base-channels": ("base_channels", int, "U-Net width of the first stage"),
    "--depth": ("depth", int, "U-Net downsamplings"),
    "--boundary-noise": ("boundary_noise", float, "hard task: probability that a training boundary label flips"),
}


def _epilog() -> str:
    from segfuse.train.study_config import DEFAULT_RUN_TIME, STUDY_LOSSES, StudySettings

    return (f"losses: {', '.join(STUDY_LOSSES)}. Run time: the defaults train {StudySettings().total_runs()} U-Nets "
            f"in {DEFAULT_RUN_TIME} on "
            f"2 CPU cores (--jobs 2); --tasks standard --losses ce,dice --seeds 0,1 --lrs 0.01 takes about "
            f"2 min. Protocol: each budget and the convergence point (validation plateau) are branches of one "
            f"constant-learning-rate run that end with a linear decay; the learning rate of each loss is "
            f"chosen on the validation scenes with the tuning seeds; every reported score is on separate test "
            f"scenes. Writes OUT/summary.md, summary.csv, runs.jsonl, settings.json, budgets_<task>.png and "
            f"curves_<task>.png. Ctrl-C keeps every finished run: rerun with the same --out to resume (runs "
            f"are reused only when their settings match).")


def add_parser(subparsers) -> None:
    from segfuse.train.study_config import StudySettings

    defaults = StudySettings()
    parser = subparsers.add_parser(
        "study", help="compare the losses on the procedural tasks (budgets, convergence, learning rates, seeds)",
        description="Train the U-Net with every loss at several learning rates and seeds on the procedural "
        "tasks; report test scores per training budget and at convergence with 95 %% intervals over seeds.",
        epilog=_epilog())
    parser.add_argument("--out", type=Path, help="output folder (default: a new runs/study-<date>-<time>); "
                        "an existing one resumes")
    for option, (field, kind, text) in OPTIONS.items():
        default = getattr(defaults, field)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(option, type=kind, default=default, help=f"{text} (default: {shown})")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one torch thread each (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def resume_command(args) -> str:
    """The command that resumes this study: ``segfuse study --out OUT`` and every non-default option."""
    from segfuse.train.study_config import StudySettings

    defaults = StudySettings()
    parts = ["segfuse", "study", "--out", str(args.out)]
    for option, (field, _, _) in OPTIONS.items():
        value = getattr(args, field)
        if value != getattr(defaults, field):
            parts += [option, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    if args.jobs != 2:
        parts += ["--jobs", str(args.jobs)]
    return " ".join(parts)


def _saved_runs(out: Path) -> int:
    path = out / "runs.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def run(args) -> int:
    from segfuse.train.study_config import StudySettings, default_out_dir

    if args.out is None:
        args.out = default_out_dir()
    try:
        settings = StudySettings(**{field: getattr(args, field) for field, _, _ in OPTIONS.values()})
        settings.validate()
        print(f"segfuse study: writing to {args.out}")
        from segfuse.train.study import run_study

        run_study(settings, args.out, jobs=args.jobs, threads=args.threads, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"segfuse: interrupted; {_saved_runs(args.out)} finished runs are saved in {args.out}/runs.jsonl; "
              f"to resume, run: {resume_command(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError) as error:
        return fail(str(error))
    print(f"wrote {args.out}/summary.md, summary.csv, runs.jsonl, budgets_*.png and curves_*.png")
    return 0

"""``segfuse eval``: score two folders of label masks and write a report.

Pairs the files by stem, counts each pair in worker processes (``eval_pairs``), scores the
counts with ``segfuse.metrics.SemanticMetrics``, prints a per-class table and writes
metrics.json, per_class.csv, confusion_matrix.csv, per_image.csv and two plots to --out.
Under torchrun the pairs are sharded across processes and rank 0 writes the report.
Exit code 0 on success, 2 on bad input (one line naming the file and the problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from segfuse.cli.errors import InputError, fail
from segfuse.cli.eval_distributed import first_error, gather_objects, process_group, rank, shard, world_size
from segfuse.cli.eval_pairs import CountOptions, PairCounts, count_pairs, default_workers
from segfuse.cli.eval_table import print_scores
from segfuse.cli.io_masks import Pairing, pair_masks
from segfuse.cli.io_report import metrics_document, write_report
from segfuse.metrics import CONVENTIONS, SemanticMetrics, semantic_scores
from segfuse.metrics.scores import MEAN_NAMES

CHUNK = 256


def sample_folder() -> Path:
    """The sample bundled in the package (gt/, pred/, classes.txt)."""
    return Path(str(resources.files("segfuse").joinpath("data", "sample")))


def _ignore_index(text: str):
    if text.lower() in ("none", "off"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a folder of predicted masks against the ground truth",
        description="Score predicted label masks against the ground truth (paired by file stem) and write a "
        "report: per-class IoU, Dice, F-beta, precision, recall, confusion matrix, per-image scores, plots.",
    )
    parser.add_argument("--gt", type=Path, help="ground-truth masks (PNG or .npy); default: the bundled sample")
    parser.add_argument("--pred", type=Path, help="predicted masks, paired with --gt by file stem")
    parser.add_argument("--num-classes", type=int, help="C; inferred from --class-names or the data when absent")
    parser.add_argument("--ignore-index", type=_ignore_index, default=255, help="label to skip (default 255; 'none')")
    parser.add_argument("--class-names", help="a file with one name per line, or a,b,c")
    parser.add_argument("--reduce-zero-label", action="store_true", help="mmseg: ground truth 0 -> ignore, others - 1")
    parser.add_argument("--beta", type=float, default=1.0, help="F-beta's beta (default 1)")
    parser.add_argument("--per-image", action="store_true", help="average per-image scores instead of dataset counts")
    parser.add_argument("--convention", choices=list(CONVENTIONS), default="segfuse",
                        help="whose rules for undefined scores and means (default segfuse; see the README)")
    parser.add_argument("--skip-missing", action="store_true", help="skip unpaired files (counted in the report)")
    parser.add_argument("--out", type=Path, default=Path("segfuse-report"), help="report folder (default ./segfuse-report)")
    parser.add_argument("--workers", type=int, help="reader processes (default min(cpu count, 8))")
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout instead of the table")
    parser.set_defaults(run=run)


@dataclass
class Settings:
    gt: Path
    pred: Path
    class_names: list[str] | None
    num_classes: int | None


def _class_names(text: str | None, folder_default: Path | None) -> list[str] | None:
    if text is None:
        return _read_names(folder_default) if folder_default and folder_default.is_file() else None
    path = Path(text)
    names = _read_names(path) if path.is_file() else [name.strip() for name in text.split(",")]
    if not names or any(not name for name in names):
        raise InputError(f"{text}: --class-names needs a file with one name per line or a,b,c with no empty name")
    return names


def _read_names(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the class names ({error})") from error


def _settings(args) -> Settings:
    if (args.gt is None) != (args.pred is None):
        raise InputError("--gt and --pred go together (give both, or neither for the bundled sample)")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    if not args.beta > 0:
        raise InputError(f"--beta must be > 0, got {args.beta}")
    if args.reduce_zero_label and args.ignore_index is None:
        raise InputError("--reduce-zero-label needs an --ignore-index for the former label 0")
    sample = sample_folder() if args.gt is None else None
    gt, pred = (sample / "gt", sample / "pred") if sample else (args.gt, args.pred)
    names = _class_names(args.class_names, sample / "classes.txt" if sample else None)
    if args.num_classes is not None and args.num_classes < 1:
        raise InputError(f"--num-classes must be >= 1, got {args.num_classes}")
    if names and args.num_classes is not None and len(names) != args.num_classes:
        raise InputError(f"--class-names has {len(names)} names but --num-classes is {args.num_classes}")
    return Settings(gt, pred, names, args.num_classes or (len(names) if names else None))


def _check_pairing(pairing: Pairing, skip_missing: bool, settings: Settings) -> None:
    if skip_missing or not (pairing.missing_pred or pairing.missing_gt):
        if not pairing.pairs:
            raise InputError(f"{settings.pred}: no prediction pairs with a ground-truth mask in {settings.gt}")
        return
    side, files, folder = ("prediction", pairing.missing_pred, settings.pred) if pairing.missing_pred else (
        "ground truth", pairing.missing_gt, settings.gt)
    more = f" (and {len(files) - 1} more; --skip-missing skips them)" if len(files) > 1 else ""
    raise InputError(f"{files[0]}: no {side} with the stem {files[0].stem!r} (.png or .npy) in {folder}{more}")


def _count_shard(pairing: Pairing, settings: Settings, args) -> list[PairCounts]:
    options = CountOptions(settings.num_classes, args.ignore_index, args.reduce_zero_label)
    workers = args.workers or default_workers(world_size())
    try:
        counted, message = count_pairs(shard(pairing.pairs), options, workers, progress=not args.json), None
    except InputError as error:
        counted, message = [], str(error)
    error = first_error(message)
    if error:
        raise InputError(error)
    return counted


def _num_classes(settings: Settings, counted: list[PairCounts]) -> int:
    if settings.num_classes is not None:
        return settings.num_classes
    found = max(gather_objects(max((item.size for item in counted), default=1)))
    if rank() == 0:
        print(f"segfuse: --num-classes not given: inferred {found} from the data (largest label {found - 1})", file=sys.stderr)
    return found


def _per_image_rows(items: list[PairCounts], batch: torch.Tensor, names: list[str], beta: float,
                    convention: str) -> list[dict]:
    scores = semantic_scores(batch, beta=beta, convention=convention)
    means = {name: getattr(scores, name).tolist() for name in (*MEAN_NAMES.values(), "acc")}
    iou = scores.iou.tolist()
    valid = batch.sum(dim=(1, 2)).tolist()
    rows = []
    for i, item in enumerate(items):
        row = {"image": item.stem, "shape": "x".join(map(str, item.shape)), "valid_pixels": valid[i]}
        row.update({name: means[name][i] for name in ("acc", *MEAN_NAMES.values())})
        row.update({f"iou_{name}": iou[i][c] for c, name in enumerate(names)})
        rows.append(row)
    return rows


def _score(counted: list[PairCounts], settings: Settings, args, num_classes: int):
    metrics = SemanticMetrics(num_classes, args.ignore_index, args.beta, per_image=args.per_image or None,
                              class_names=settings.class_names, convention=args.convention)
    names = settings.class_names or [str(c) for c in range(num_classes)]
    rows: list[dict] = []
    for start in range(0, len(counted), CHUNK):
        items = counted[start : start + CHUNK]
        batch = torch.from_numpy(np.stack([item.dense(num_classes) for item in items]))
        metrics.update_confusion(batch)
        rows.extend(_per_image_rows(items, batch, names, args.beta, args.convention))
    scores = metrics.compute()
    all_rows = sorted((row for part in gather_objects(rows) for row in part), key=lambda row: row["image"])
    return scores, all_rows


def _metadata(args, settings: Settings, pairing: Pairing, num_classes: int) -> dict:
    from segfuse import __version__

    arguments = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    arguments.pop("run", None)
    source = "argument" if args.num_classes else "class names" if settings.class_names else "data"
    return {
        "segfuse_version": __version__,
        "arguments": arguments,
        "gt": str(settings.gt),
        "pred": str(settings.pred),
        "num_images": len(pairing.pairs),
        "skipped": {"missing_prediction": len(pairing.missing_pred), "missing_ground_truth": len(pairing.missing_gt)},
        "num_classes": num_classes,
        "num_classes_source": source,
        "ignore_index": args.ignore_index,
        "reduce_zero_label": args.reduce_zero_label,
        "beta": args.beta,
        "per_image": args.per_image or bool(CONVENTIONS[args.convention].per_image),
        "convention": args.convention,
        "processes": world_size(),
    }


def _evaluate(args) -> int:
    settings = _settings(args)
    pairing = pair_masks(settings.gt, settings.pred)
    _check_pairing(pairing, args.skip_missing, settings)
    counted = _count_shard(pairing, settings, args)
    num_classes = _num_classes(settings, counted)
    scores, rows = _score(counted, settings, args, num_classes)
    if rank() != 0:
        return 0
    document = metrics_document(scores, _metadata(args, settings, pairing, num_classes))
    try:
        write_report(args.out, scores, document, rows)
    except OSError as error:
        raise InputError(f"{args.out}: cannot write the report ({error})") from error
    if args.json:
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        print_scores(scores, Console())
        print(f"report written to {args.out}", file=sys.stderr)
    return 0


def run(args) -> int:
    """Entry point of ``segfuse eval``: 0 on success, 2 on bad input."""
    with process_group():
        try:
            return _evaluate(args)
        except InputError as error:
            return fail(str(error)) if rank() == 0 or world_size() == 1 else 2

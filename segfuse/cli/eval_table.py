"""The per-class table that ``segfuse eval`` prints (rich), in percent like mmseg."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from segfuse.metrics.scores import CLASS_SCORES, MEAN_NAMES, SemanticScores

HEADERS = {"iou": "IoU", "dice": "Dice", "fscore": "F-beta", "precision": "Precision", "recall": "Recall"}


def percent(value: float) -> str:
    return "nan" if value != value else f"{100 * value:.2f}"


def score_table(scores: SemanticScores) -> Table:
    """Rows per class (scores in %, ground-truth pixels), then the class means."""
    headers = dict(HEADERS, fscore=f"F{scores.beta:g}")
    table = Table(title="segfuse eval (%)")
    table.add_column("Class")
    for name in CLASS_SCORES:
        table.add_column(headers[name], justify="right")
    table.add_column("Pixels", justify="right")
    support = scores.confusion_matrix.sum(1).tolist()
    for c, name in enumerate(scores.names()):
        table.add_row(name, *(percent(float(getattr(scores, s)[c])) for s in CLASS_SCORES), str(support[c]))
    table.add_section()
    means = (percent(float(getattr(scores, MEAN_NAMES[s]))) for s in CLASS_SCORES)
    table.add_row("mean", *means, str(sum(support)), style="bold")
    return table


def print_scores(scores: SemanticScores, console: Console) -> None:
    console.print(score_table(scores))
    console.print(
        f"aAcc {percent(float(scores.acc))}  mAcc {percent(float(scores.macc))}  fwIoU {percent(float(scores.fwiou))}"
    )

"""A tiny study: every output file, and the summary's numbers taken from the runs."""

import csv
import json

import pytest

from segfuse.cli import main
from segfuse.train.study import StudySettings, run_study


def test_tiny_study_writes_tables_plots_and_reuses_finished_runs(tmp_path):
    settings = StudySettings(seeds=(0, 1), train_samples=16, val_samples=8, image_size=32, epochs=2, batch_size=8,
                             base_channels=4, depth=1, threads=2)
    results = run_study(settings, tmp_path, keys=["ce", "wce"], log=lambda line: None)
    assert [(r.key, r.seed) for r in results] == [("ce", 0), ("ce", 1), ("wce", 0), ("wce", 1)]
    for name in ("summary.md", "summary.csv", "runs.jsonl", "curves_miou.png", "curves_rare_iou.png",
                 "curves_rare_recall.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [row["key"] for row in rows] == ["ce", "wce"]
    mean = sum(r.final.miou for r in results[:2]) / 2
    assert float(rows[0]["miou_mean"]) == pytest.approx(mean)
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert runs[0]["class_weights"] is None and len(runs[2]["class_weights"]) == 4
    assert "| weighted CE |" in (tmp_path / "summary.md").read_text()
    # a rerun with the same settings trains nothing and gives the same numbers
    again = run_study(settings, tmp_path, keys=["ce", "wce"], log=lambda line: None)
    assert [r.final.miou for r in again] == [r.final.miou for r in results]
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 4


def test_study_cli_rejects_unknown_losses(tmp_path, capsys):
    assert main(["study", "--out", str(tmp_path), "--losses", "ce,hinge", "--epochs", "1"]) == 2
    assert "study losses must be among" in capsys.readouterr().err

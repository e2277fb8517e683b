"""``segfuse train`` end to end: its predictions read back by ``segfuse eval`` give its metrics."""

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from segfuse.cli import main
from tests.train.helpers import make_voc

TINY = ["--train-samples", "32", "--val-samples", "8", "--image-size", "32", "--batch-size", "8",
        "--base-channels", "4", "--depth", "1", "--no-progress", "--lr", "0.01"]


def train(out, *extra):
    return main(["train", *TINY, "--out", str(out), *extra])


def same(a, b) -> bool:
    """Equal floats, where eval writes an undefined score (NaN) as null."""
    a = float("nan") if a is None else a
    b = float("nan") if b is None else b
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_eval_of_the_written_predictions_gives_the_training_metrics(tmp_path):
    assert train(tmp_path / "run", "--epochs", "2", "--loss", "ce:1,dice:0.5", "--save-predictions", "all") == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())["epochs"]
    assert [record["epoch"] for record in history] == [1, 2]
    for record in history:
        folder = tmp_path / "run" / "predictions" / f"epoch_{record['epoch']:03d}"
        report = tmp_path / f"eval_{record['epoch']}"
        assert main(["eval", "--gt", str(folder / "gt"), "--pred", str(folder / "pred"), "--num-classes", "4",
                     "--class-names", "background,ellipse,rectangle,speck", "--workers", "1",
                     "--out", str(report)]) == 0
        evaluated = json.loads((report / "metrics.json").read_text())
        assert evaluated["confusion_matrix"] == record["metrics"]["confusion_matrix"]
        assert same(evaluated["metrics"]["miou"], record["miou"])
        for c, name in enumerate(evaluated["class_names"]):
            assert same(evaluated["per_class"][name]["iou"], record["iou"][c])
            assert same(evaluated["per_class"][name]["recall"], record["recall"][c])
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert final["epoch"] == 2 and final["confusion_matrix"] == history[-1]["metrics"]["confusion_matrix"]


def test_cli_resume_matches_an_uninterrupted_run(tmp_path):
    assert train(tmp_path / "straight", "--epochs", "2", "--save-predictions", "none") == 0
    assert train(tmp_path / "split", "--epochs", "2", "--stop-after", "1", "--save-predictions", "none") == 0
    assert train(tmp_path / "split", "--epochs", "2", "--save-predictions", "none",
                 "--resume", str(tmp_path / "split" / "checkpoints" / "last.pt")) == 0
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())["epochs"]
    resumed = json.loads((tmp_path / "split" / "history.json").read_text())["epochs"]
    for a, b in zip(straight, resumed, strict=True):
        a.pop("seconds"), b.pop("seconds")
    assert straight == resumed


def test_train_on_a_voc_folder_writes_the_val_masks_by_stem(tmp_path):
    root = make_voc(tmp_path / "voc", [f"im{i}" for i in range(10)], size=(20, 24), labels=(0, 1, 2, 255),
                    splits={"train": [f"im{i}" for i in range(7)], "val": ["im7", "im8", "im9"]})
    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--num-classes", "3", "--ignore-index", "255", "--crop-size", "16",
                 "--scale-range", "0.75,1.25", "--epochs", "1", "--batch-size", "4", "--base-channels", "4",
                 "--depth", "2", "--class-weights", "auto", "--no-progress", "--out", str(out)]) == 0
    gt_dir, pred_dir = out / "predictions" / "epoch_001" / "gt", out / "predictions" / "epoch_001" / "pred"
    assert sorted(p.name for p in gt_dir.iterdir()) == ["im7.png", "im8.png", "im9.png"]
    for stem in ("im7", "im8", "im9"):
        original = np.asarray(Image.open(root / "SegmentationClass" / f"{stem}.png"))
        assert np.array_equal(np.asarray(Image.open(gt_dir / f"{stem}.png")), original)
        pred = np.asarray(Image.open(pred_dir / f"{stem}.png"))
        assert pred.shape == (20, 24) and pred.max() < 3


@pytest.mark.parametrize("arguments, message", [
    (["--data", "nowhere"], "--num-classes is required with --data"),
    (["--data", "nowhere", "--num-classes", "3"], "dataset root nowhere is not a folder"),
    (["--loss", "ce:1,dise"], "loss term must be one of"),
    (["--class-weights", "1,2"], "class_weights must have num_classes=4 entries, got 2"),
    (["--class-weights", "a,b"], "--class-weights must be 'auto' or comma-separated numbers"),
    (["--num-classes", "5"], "--num-classes must be 4 for the procedural task, got 5"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, arguments, message):
    assert train(tmp_path / "run", "--epochs", "1", *arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("segfuse: error:") and message in error and "\n" not in error


def test_resume_with_another_loss_is_refused_naming_both(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--epochs", "2", "--stop-after", "1", "--loss", "ce", "--save-predictions", "none") == 0
    capsys.readouterr()
    assert train(out, "--epochs", "2", "--loss", "dice", "--save-predictions", "none",
                 "--resume", str(out / "checkpoints" / "last.pt")) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "loss" in error and "'ce'" in error and "'dice'" in error


def test_ctrl_c_prints_one_line_exits_130_and_names_the_checkpoint(tmp_path, capsys, monkeypatch):
    from segfuse.train.loop import Trainer

    run_epoch = Trainer.run_epoch

    def interrupted_in_epoch_2(self, epoch, bar):
        if epoch == 2:
            raise KeyboardInterrupt
        return run_epoch(self, epoch, bar)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted_in_epoch_2)
    out = tmp_path / "run"
    try:
        code = train(out, "--epochs", "3", "--save-predictions", "none")
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped segfuse train")
    assert code == 130
    error = capsys.readouterr().err.strip()
    checkpoint = out / "checkpoints" / "last.pt"
    assert "\n" not in error and "epoch 1" in error and f"--resume {checkpoint}" in error
    assert checkpoint.is_file()


def test_ctrl_c_before_the_first_checkpoint_says_there_is_none(tmp_path, capsys, monkeypatch):
    from segfuse.train.loop import Trainer

    def interrupted(self, epoch, bar):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run_epoch", interrupted)
    try:
        code = train(tmp_path / "run", "--epochs", "2")
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped segfuse train")
    error = capsys.readouterr().err.strip()
    assert code == 130 and "\n" not in error and "no checkpoint" in error


def test_building_the_train_and_study_parsers_does_not_import_torch():
    import subprocess
    import sys

    code = ("import argparse, sys\n"
            "from segfuse.cli import study, train\n"
            "subparsers = argparse.ArgumentParser().add_subparsers()\n"
            "train.add_parser(subparsers); study.add_parser(subparsers)\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'\n"
            "                or m in ('segfuse.train.loop', 'segfuse.train.study', 'segfuse.train.study_run'))\n"
            "print(loaded)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_help_gives_the_run_time(capsys):
    for command in ("train", "study"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert re.search(r"about \d+ (s|min)[^\n]* on 2 CPU cores", " ".join(capsys.readouterr().out.split())), command

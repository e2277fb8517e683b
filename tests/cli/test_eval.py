import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics
import torch
from PIL import Image

from segfuse.cli import main
from segfuse.cli.eval import sample_folder
from segfuse.cli.io_report import REPORT_FILES
from segfuse.metrics import semantic_metrics

NUM_CLASSES = 4


def make_folders(root: Path, count=5, size=(24, 32), seed=0, ignore=True):
    """Random gt / pred PNG folders (gt palette, pred L); returns the stacked arrays."""
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    gts, preds = [], []
    for i in range(count):
        gt = rng.integers(0, NUM_CLASSES, size, dtype=np.uint8)
        pred = np.where(rng.random(size) < 0.6, gt, rng.integers(0, NUM_CLASSES, size)).astype(np.uint8)
        if ignore:
            gt[rng.random(size) < 0.1] = 255
        palette_image = Image.fromarray(gt, mode="P")
        palette_image.putpalette([value for index in range(256) for value in (index, 255 - index, 0)])
        palette_image.save(gt_dir / f"img{i}.png")
        Image.fromarray(pred, mode="L").save(pred_dir / f"img{i}.png")
        gts.append(gt)
        preds.append(pred)
    return gt_dir, pred_dir, np.stack(gts), np.stack(preds)


def run_eval(*args):
    return main(["eval", *map(str, args)])


def library_scores(gts, preds, **kwargs):
    return semantic_metrics(torch.from_numpy(preds), torch.from_numpy(gts), NUM_CLASSES, ignore_index=255, **kwargs)


def test_report_files_table_and_plots_agree_with_the_library(tmp_path, capsys):
    gt_dir, pred_dir, gts, preds = make_folders(tmp_path)
    out = tmp_path / "report"
    code = run_eval("--gt", gt_dir, "--pred", pred_dir, "--num-classes", NUM_CLASSES, "--out", out, "--workers", 2, "--plots")
    assert code == 0
    expected = library_scores(gts, preds)
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    document = json.loads((out / "metrics.json").read_text())
    assert document["segfuse_version"] and document["arguments"]["num_classes"] == NUM_CLASSES
    assert document["metrics"]["miou"] == pytest.approx(float(expected.miou), abs=1e-12)
    assert document["metrics"]["acc"] == pytest.approx(float(expected.acc), abs=1e-12)
    keep = gts.reshape(-1) != 255
    sk = sklearn.metrics.confusion_matrix(gts.reshape(-1)[keep], preds.reshape(-1)[keep], labels=range(NUM_CLASSES))
    assert document["confusion_matrix"] == sk.tolist()
    with (out / "per_class.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["iou"]) for row in rows] == pytest.approx(expected.iou.tolist())
    assert [int(row["support"]) for row in rows] == sk.sum(1).tolist()
    with (out / "confusion_matrix.csv").open() as handle:
        matrix = [list(map(int, row[1:])) for row in list(csv.reader(handle))[1:]]
    assert matrix == sk.tolist()
    with (out / "per_image.csv").open() as handle:
        images = list(csv.DictReader(handle))
    assert [row["image"] for row in images] == [f"img{i}" for i in range(5)]
    for i, row in enumerate(images):
        single = library_scores(gts[i : i + 1], preds[i : i + 1])
        assert float(row["miou"]) == pytest.approx(float(single.miou))
        assert int(row["valid_pixels"]) == int((gts[i] != 255).sum())
    for name in ("per_class_iou.png", "confusion_matrix.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    table = capsys.readouterr().out
    mean_row = next(line for line in table.splitlines() if "mean" in line)
    assert f"{100 * float(expected.miou):.2f}" in mean_row
    class_row = next(line for line in table.splitlines() if line.strip("│┃ ").startswith("2 "))
    assert f"{100 * float(expected.recall[2]):.2f}" in class_row
    header = next(line for line in table.splitlines() if line.startswith("Class"))
    assert "Dice" in header and "F1" not in header  # F-beta equals Dice at beta = 1
    assert mean_row.split()[-1] == f"{100 * float(expected.mrecall):.2f}"  # no pixel total in the mean row


def test_json_per_image_class_names_and_inferred_num_classes(tmp_path, capsys, monkeypatch):
    gt_dir, pred_dir, gts, preds = make_folders(tmp_path, seed=1)
    monkeypatch.chdir(tmp_path)
    code = run_eval("--gt", gt_dir, "--pred", pred_dir, "--per-image", "--beta", 2, "--json")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt", "pred"]  # --json writes no report without --out
    captured = capsys.readouterr()
    assert "inferred 4 from the data" in captured.err
    document = json.loads(captured.out)
    expected = library_scores(gts, preds, per_image=True, beta=2.0)
    assert document["num_classes"] == NUM_CLASSES and document["num_classes_source"] == "data"
    assert document["metrics"]["mfscore"] == pytest.approx(float(expected.mfscore), abs=1e-12)
    assert [document["per_class"][str(c)]["iou"] for c in range(4)] == pytest.approx(expected.iou.tolist())
    named = run_eval("--gt", gt_dir, "--pred", pred_dir, "--class-names", "a,b,c,d", "--json", "--out", tmp_path / "n")
    assert named == 0 and list(json.loads(capsys.readouterr().out)["per_class"]) == ["a", "b", "c", "d"]


def test_convention_reduce_zero_label_npy_and_16_bit_png(tmp_path, capsys):
    rng = np.random.default_rng(2)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    gt_raw = rng.integers(0, NUM_CLASSES + 1, (3, 10, 12)).astype(np.uint16)
    preds = rng.integers(0, NUM_CLASSES, (3, 10, 12)).astype(np.int64)
    Image.fromarray(gt_raw[0]).save(tmp_path / "gt" / "a.png")  # 16-bit PNG
    np.save(tmp_path / "gt" / "b.npy", gt_raw[1].astype(np.int32))
    Image.fromarray(gt_raw[2].astype(np.uint8), mode="L").save(tmp_path / "gt" / "c.png")
    for name, pred in zip("abc", preds):
        np.save(tmp_path / "pred" / f"{name}.npy", pred)
    code = run_eval("--gt", tmp_path / "gt", "--pred", tmp_path / "pred", "--num-classes", NUM_CLASSES,
                    "--reduce-zero-label", "--json", "--out", tmp_path / "r")
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    mapped = np.where(gt_raw == 0, 255, gt_raw.astype(np.int64) - 1)  # mmseg: 0 -> 255, others - 1
    expected = semantic_metrics(torch.from_numpy(preds), torch.from_numpy(mapped), NUM_CLASSES, ignore_index=255)
    assert document["confusion_matrix"] == expected.confusion_matrix.tolist()


def test_bundled_sample_runs_without_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_eval("--workers", 0) == 0
    report = tmp_path / "segfuse-report"
    document = json.loads((report / "metrics.json").read_text())
    assert document["num_images"] == len(list((sample_folder() / "gt").glob("*.png"))) >= 15
    assert list(document["per_class"]) == (sample_folder() / "classes.txt").read_text().split()
    assert document["confusion_matrix"] and "person" in capsys.readouterr().out


def test_convention_existing_report_is_replaced_and_no_staging_left(tmp_path):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    out = tmp_path / "report"
    out.mkdir()
    (out / "metrics.json").write_text("old")
    (out / "notes.txt").write_text("keep me")
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--out", out, "--workers", 1) == 0
    assert json.loads((out / "metrics.json").read_text())["num_images"] == 5
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt", "pred", "report"]


def test_skip_missing_counts_the_unpaired(tmp_path, capsys):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    (pred_dir / "img0.png").unlink()
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--skip-missing", "--json", "--out", tmp_path / "r") == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["num_images"] == 4 and document["skipped"]["missing_prediction"] == 1
    assert "skipped 1 ground-truth files without a prediction" in captured.err


def break_missing_pair(gt_dir, pred_dir):
    (pred_dir / "img3.png").unlink()
    return gt_dir / "img3.png", "no prediction with the stem"


def break_corrupt_png(gt_dir, pred_dir):
    (pred_dir / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return pred_dir / "img2.png", "cannot read the PNG"


def break_size(gt_dir, pred_dir):
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(pred_dir / "img1.png")
    return pred_dir / "img1.png", "does not match the ground truth"


def break_label_range(gt_dir, pred_dir):
    labels = np.zeros((24, 32), np.uint8)
    labels[3, 4] = 9
    Image.fromarray(labels, mode="L").save(gt_dir / "img4.png")
    return gt_dir / "img4.png", "holds labels [9]; expected labels in [0, 4) or the ignore index 255 (C = 4 from --num-classes 4"


def break_pred_label_range(gt_dir, pred_dir):
    labels = np.zeros((24, 32), np.uint8)
    labels[0, :] = 7  # some of these pixels are not ignored in the truth
    Image.fromarray(labels, mode="L").save(pred_dir / "img0.png")
    return pred_dir / "img0.png", "predicts labels [7] at non-ignored pixels"


def break_empty_folder(gt_dir, pred_dir):
    for path in pred_dir.iterdir():
        path.unlink()
    return pred_dir, "no pred masks (.png or .npy) in the folder"


def break_rgb(gt_dir, pred_dir):
    Image.new("RGB", (32, 24)).save(pred_dir / "img0.png")
    return pred_dir / "img0.png", "an RGB colour mask; give --palette"


@pytest.mark.parametrize(
    "breaker",
    [break_missing_pair, break_corrupt_png, break_size, break_label_range, break_pred_label_range, break_empty_folder, break_rgb],
)
@pytest.mark.parametrize("workers", [1, 2])
def test_bad_input_exits_2_naming_the_file_and_leaves_no_report(tmp_path, capsys, breaker, workers):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    path, problem = breaker(gt_dir, pred_dir)
    out = tmp_path / "report"
    code = run_eval("--gt", gt_dir, "--pred", pred_dir, "--num-classes", NUM_CLASSES, "--out", out, "--workers", workers)
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("segfuse: error: ")
    assert str(path) in error[0] and problem in error[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt", "pred"]


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--gt", "x"], "--gt and --pred go together"),
        (["--num-classes", 3, "--class-names", "a,b"], "--class-names a,b has 2 names but --num-classes is 3"),
        (["--beta", 0], "--beta must be > 0"),
        (["--workers", -1], "--workers must be >= 0"),
        (["--class-names", "classes.txt"], "classes.txt: --class-names file not found"),
        (["--dataset", "citiscapes"], "citiscapes: no such preset file (built-in presets: ade20k, cityscapes"),
        (["--map-pred"], "--map-pred needs a label mapping"),
        (["--reduce-zero-label", "--ignore-index", "none"], "--reduce-zero-label needs"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, args, problem):
    assert run_eval(*args, "--out", tmp_path / "r") == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_nan_scores_are_undefined_in_json_csv_and_table(tmp_path, capsys):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--num-classes", 6, "--json", "--out", tmp_path / "r") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["per_class"]["5"]["iou"] is None
    assert not math.isnan(document["metrics"]["miou"])
    with (tmp_path / "r" / "per_class.csv").open() as handle:
        row = list(csv.DictReader(handle))[5]
    assert row["iou"] == row["recall"] == "n/a" and row["support"] == "0"
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--num-classes", 6, "--out", tmp_path / "t") == 0
    class_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("5 "))
    assert class_row.split() == ["5", "n/a", "n/a", "n/a", "n/a", "0"]

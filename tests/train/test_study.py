"""The loss study: one run's protocol, the learning-rate choice, the report's numbers, resume and reuse."""

import csv
import json
import math

import pytest
import torch

from segfuse.train import UNet
from segfuse.train.study import StudyFolderError, load_runs, run_study, select_lr
from segfuse.train.study_boundary import boundary_scores
from segfuse.train.study_config import StudySettings
from segfuse.train.study_run import build_task, evaluate, run_one, weights_path
from segfuse.train.study_stats import mean_interval

TINY = dict(train_samples=16, val_samples=8, test_samples=8, image_size=32, crop_size=16, batch_size=8,
            base_channels=4, depth=1, budgets=(3,), max_epochs=6, decay_epochs=1, patience=2)


def tiny(**overrides) -> StudySettings:
    return StudySettings(**{**TINY, **overrides})


def keras_plateau(curve, patience, min_delta):
    """The first epoch at which the validation mIoU has not beaten its best by min_delta for patience epochs."""
    best, waited = -math.inf, 0
    for point in curve:
        if point["val_miou"] > best + min_delta:
            best, waited = point["val_miou"], 0
        else:
            waited += 1
        if waited >= patience:
            return point["epoch"]
    return None


def test_budget_branches_leave_the_stable_run_unchanged(tmp_path):
    settings = tiny(max_epochs=6, patience=10)
    task = build_task("standard", settings)
    with_branch = run_one(task, "ce", 0.01, 0, settings, weights_dir=tmp_path)
    other_branch = run_one(task, "ce", 0.01, 0, tiny(max_epochs=6, patience=10, budgets=(5,)))
    # the same stable curve whichever epochs were branched
    assert [p["val_miou"] for p in with_branch["curve"]] == [p["val_miou"] for p in other_branch["curve"]]
    assert [p["train_loss"] for p in with_branch["curve"]] == [p["train_loss"] for p in other_branch["curve"]]
    point = with_branch["points"]["3"]
    assert point["epochs"] == 3 and point["steps"] == 3 * 2
    assert set(point["test"]) >= {"miou", "iou", "dice", "precision", "recall", "confusion_matrix"}
    assert sum(map(sum, point["test"]["confusion_matrix"])) == 8 * 32 * 32
    # no plateau within the cap: the converged branch starts at the last stable epoch and says so
    assert with_branch["plateau_epoch"] == 5 and with_branch["capped"]
    assert with_branch["points"]["converged"]["epochs"] == 6
    # the saved model of a point gives that point's test scores again
    model = UNet(3, 4, settings.base_channels, settings.depth)
    model.load_state_dict(torch.load(weights_path(tmp_path, "standard", "ce", 0.01, 0, "3"), weights_only=True))
    assert evaluate(model, task.test, 4)["confusion_matrix"] == point["test"]["confusion_matrix"]


def test_convergence_is_the_first_plateau_of_the_validation_miou():
    settings = tiny(max_epochs=12, patience=2, min_delta=0.05)
    run = run_one(build_task("hard", settings), "dice", 0.01, 1, settings)
    plateau = keras_plateau(run["curve"], 2, 0.05)
    assert plateau is not None and run["plateau_epoch"] == plateau and not run["capped"]
    assert run["points"]["converged"]["epochs"] == plateau + 1
    # the stable phase runs on to the last budget branch even after a plateau
    assert len(run["curve"]) == max(plateau, 2)
    lrs = [point["lr"] for point in run["curve"]]
    assert lrs[-1] == pytest.approx(0.01)


def test_the_chosen_learning_rate_has_the_best_mean_validation_miou_at_convergence():
    settings = tiny(lrs=(0.01, 0.03), seeds=(0, 1), tuning_seeds=(0, 1))

    def record(lr, seed, miou):
        return {"points": {"converged": {"val": {"miou": miou}}}, "lr": lr, "seed": seed}

    runs = {("standard", "ce", 0.01, 0): record(0.01, 0, 0.8), ("standard", "ce", 0.01, 1): record(0.01, 1, 0.6),
            ("standard", "ce", 0.03, 0): record(0.03, 0, 0.9), ("standard", "ce", 0.03, 1): record(0.03, 1, 0.55)}
    assert select_lr(runs, "standard", "ce", settings) == 0.03
    runs[("standard", "ce", 0.03, 1)] = record(0.03, 1, float("nan"))
    assert select_lr(runs, "standard", "ce", settings) == 0.01


def test_tiny_study_report_reuse_and_refusal(tmp_path, capsys):
    settings = tiny(tasks=("standard", "hard"), losses=("ce", "wce"), lrs=(0.01, 0.03), seeds=(0, 1, 2),
                    tuning_seeds=(0,))
    lines = []
    finals = run_study(settings, tmp_path, jobs=1, progress=False, log=lines.append)
    assert settings.total_runs() == 2 * 2 * (2 + 2) == 16
    records = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(records) == 16 and len(finals) == 2 * 2 * 3
    for name in ("summary.md", "summary.csv", "settings.json", "budgets_standard.png", "curves_standard.png",
                 "budgets_hard.png", "curves_hard.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    # the chosen lr is the tuning seed's better one, and the final seeds ran at it
    runs = load_runs(tmp_path / "runs.jsonl", settings)
    for task in ("standard", "hard"):
        for loss in ("ce", "wce"):
            scores = {lr: runs[(task, loss, lr, 0)]["points"]["converged"]["val"]["miou"] for lr in (0.01, 0.03)}
            chosen = max(scores, key=scores.get)
            assert {key[2] for key in runs if key[:2] == (task, loss) and key[3] in (1, 2)} == {chosen}
            # summary.csv's chosen row holds the mean over the 3 seeds' test scores
            rows = [row for row in csv.DictReader((tmp_path / "summary.csv").open())
                    if (row["task"], row["loss"], row["point"], row["metric"]) == (task, loss, "converged", "rare_iou")
                    and row["chosen"] == "True"]
            rare = 3
            expected = [runs[(task, loss, chosen, seed)]["points"]["converged"]["test"]["iou"][rare] for seed in (0, 1, 2)]
            assert len(rows) == 1 and float(rows[0]["mean"]) == pytest.approx(sum(expected) / 3)
            assert float(rows[0]["ci95"]) == pytest.approx(mean_interval(expected).half_width, nan_ok=True)
    summary = (tmp_path / "summary.md").read_text()
    assert "## Task 'hard'" in summary and "IoU of 'thread'" in summary and "| weighted CE |" in summary
    # the hard task's reported models were scored again with Boundary IoU and HD95 (2 points x 2 losses x 3 seeds)
    boundary = [json.loads(line) for line in (tmp_path / "boundary.jsonl").read_text().splitlines()]
    assert len(boundary) == 12 and {entry["task"] for entry in boundary} == {"hard"}
    entry = boundary[0]
    model = UNet(3, 4, settings.base_channels, settings.depth)
    model.load_state_dict(torch.load(weights_path(tmp_path / "weights", "hard", entry["loss"], entry["lr"],
                                                  entry["seed"], entry["point"]), weights_only=True))
    assert boundary_scores(model, build_task("hard", settings).test, 4) == entry["scores"]
    assert "Boundary IoU of 'thread'" in summary and "HD95 of 'thread'" in summary
    assert all((record["class_weights"] is None) == (record["loss"] == "ce") for record in records)
    assert all(len(record["class_weights"]) == 4 for record in records if record["loss"] == "wce")
    # a rerun with the same settings trains nothing and says so
    again = []
    run_study(settings, tmp_path, jobs=1, progress=False, log=again.append)
    assert again == [f"reusing 16 of 16 runs from {tmp_path / 'runs.jsonl'} (made with the same settings)"]
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 16
    assert len((tmp_path / "boundary.jsonl").read_text().splitlines()) == 12
    # a grid that only adds runs reuses the matching ones
    more = []
    run_study(tiny(tasks=("standard",), losses=("ce",), lrs=(0.01, 0.03), seeds=(0, 1, 2, 3), tuning_seeds=(0,)),
              tmp_path, jobs=1, progress=False, log=more.append)
    assert more[0].startswith("reusing 4 of 5 runs") and len(more) == 2
    # other run settings: refused, naming the difference
    with pytest.raises(StudyFolderError, match="other settings .*max_epochs 6 there, 7 now"):
        run_study(tiny(max_epochs=7, tasks=("standard",), losses=("ce",)), tmp_path, jobs=1, progress=False)


def test_two_worker_processes_give_the_same_runs_as_one(tmp_path):
    settings = tiny(tasks=("standard",), losses=("ce", "dice"), lrs=(0.01,), seeds=(0,), tuning_seeds=(0,))
    run_study(settings, tmp_path / "one", jobs=1, progress=False, log=None)
    run_study(settings, tmp_path / "two", jobs=2, progress=False, log=None)
    one = load_runs(tmp_path / "one" / "runs.jsonl", settings)
    two = load_runs(tmp_path / "two" / "runs.jsonl", settings)
    assert one.keys() == two.keys()
    for key in one:
        assert one[key]["points"] == two[key]["points"] and one[key]["curve"][-1]["val_miou"] == \
            two[key]["curve"][-1]["val_miou"]


def test_a_cut_off_last_line_is_redone_and_bad_settings_are_errors(tmp_path):
    settings = tiny(tasks=("standard",), losses=("ce",), lrs=(0.01,), seeds=(0, 1), tuning_seeds=(0,))
    run_study(settings, tmp_path, jobs=1, progress=False, log=None)
    path = tmp_path / "runs.jsonl"
    text = path.read_text().splitlines()
    path.write_text(text[0] + "\n" + text[1][: len(text[1]) // 2])
    assert len(load_runs(path, settings)) == 1
    with pytest.raises(ValueError, match="study losses must be among"):
        run_study(tiny(losses=("ce", "hinge")), tmp_path / "x", jobs=1, progress=False)
    with pytest.raises(ValueError, match="budgets must be <= max_epochs=6"):
        run_study(tiny(budgets=(3, 10)), tmp_path / "x", jobs=1, progress=False)
    with pytest.raises(ValueError, match="tuning_seeds must be among seeds"):
        run_study(tiny(seeds=(0, 1), tuning_seeds=(2,)), tmp_path / "x", jobs=1, progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        run_study(tiny(), tmp_path / "file", jobs=1, progress=False)

"""The trainer: it learns, it resumes bit-exactly, it validates with SemanticMetrics."""

import json

import pytest
import torch

from segfuse.metrics import SemanticMetrics
from segfuse.train import Trainer
from tests.train.helpers import tiny_config, tiny_datasets


def majority_miou(val_set) -> float:
    """mIoU of predicting the most frequent class everywhere (the background)."""
    metrics = SemanticMetrics(4)
    for index in range(len(val_set)):
        _, mask, _ = val_set[index]
        metrics.update(torch.zeros_like(mask)[None], mask[None])
    return float(metrics.compute().miou)


def test_short_training_lowers_the_loss_and_beats_the_majority_predictor():
    train_set, val_set = tiny_datasets(train_samples=96, val_samples=16, image_size=48)
    config = tiny_config(loss="ce+dice", epochs=5, base_channels=8, depth=2, lr=1e-2)
    history = Trainer(config, train_set, val_set, log=None).fit()
    losses = [record.train_loss for record in history]
    assert losses[-1] < 0.8 * losses[0]
    baseline = majority_miou(val_set)
    assert 0.2 < baseline < 0.25
    assert history[-1].miou > baseline + 0.1


def fit_weights(config, out_dir=None, stop_after=None, resume=None):
    train_set, val_set = tiny_datasets()
    trainer = Trainer(config, train_set, val_set, out_dir=out_dir, log=None)
    if resume is not None:
        trainer.resume(resume)
    history = trainer.fit(stop_after=stop_after)
    return trainer.model.state_dict(), trainer.optimizer.state_dict(), history


@pytest.mark.parametrize("loss", ["ce:1,dice:0.5", "lovasz"])
def test_resume_continues_exactly_where_an_uninterrupted_run_would(tmp_path, loss):
    config = tiny_config(loss=loss, epochs=2)
    weights, optimizer, history = fit_weights(config)
    fit_weights(config, out_dir=tmp_path, stop_after=1)
    assert json.loads((tmp_path / "history.json").read_text())["epochs"][-1]["epoch"] == 1
    # a fresh process-like start: the global RNG is elsewhere, the checkpoint restores it
    torch.manual_seed(12345)
    resumed_weights, resumed_optimizer, resumed_history = fit_weights(config, resume=tmp_path / "checkpoints/last.pt")
    assert [r.epoch for r in resumed_history] == [1, 2]
    for name, value in weights.items():
        assert torch.equal(value, resumed_weights[name]), name
    for state, resumed in zip(optimizer["state"].values(), resumed_optimizer["state"].values(), strict=True):
        assert all(torch.equal(state[key], resumed[key]) for key in state)
    for record, resumed in zip(history, resumed_history, strict=True):
        assert record.train_loss == resumed.train_loss and record.val_loss == resumed.val_loss
        assert record.train_terms == resumed.train_terms and record.iou == resumed.iou


def test_runs_with_one_seed_are_identical_and_other_seeds_differ():
    first = fit_weights(tiny_config(epochs=1))[2]
    again = fit_weights(tiny_config(epochs=1))[2]
    other = fit_weights(tiny_config(epochs=1, seed=1))[2]
    assert first[0].train_loss == again[0].train_loss and first[0].iou == again[0].iou
    assert first[0].train_loss != other[0].train_loss


def test_resume_with_another_epoch_count_is_an_error(tmp_path):
    fit_weights(tiny_config(epochs=2), out_dir=tmp_path, stop_after=1)
    with pytest.raises(ValueError, match="epochs must equal the checkpoint's planned 2 epochs .* got 3"):
        fit_weights(tiny_config(epochs=3), resume=tmp_path / "checkpoints/last.pt")
    with pytest.raises(ValueError, match="does not exist"):
        fit_weights(tiny_config(epochs=2), resume=tmp_path / "missing.pt")


def test_validation_writes_masks_that_give_the_reported_scores(tmp_path):
    from PIL import Image
    import numpy as np

    config = tiny_config(epochs=1, save_predictions="all")
    history = fit_weights(config, out_dir=tmp_path)[2]
    folder = tmp_path / "predictions" / "epoch_001"
    stems = sorted(path.stem for path in (folder / "pred").glob("*.png"))
    assert stems == sorted(p.stem for p in (folder / "gt").glob("*.png")) and len(stems) == 16
    metrics = SemanticMetrics(4)
    for stem in stems:
        pred = torch.from_numpy(np.asarray(Image.open(folder / "pred" / f"{stem}.png")).astype(np.int64))
        gt = torch.from_numpy(np.asarray(Image.open(folder / "gt" / f"{stem}.png")).astype(np.int64))
        metrics.update(pred[None], gt[None])
    scores = metrics.compute()
    assert scores.confusion_matrix.tolist() == history[-1].metrics["confusion_matrix"]
    assert float(scores.miou) == history[-1].miou
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["epoch"] == 1 and saved["confusion_matrix"] == history[-1].metrics["confusion_matrix"]


@pytest.mark.parametrize("overrides, message", [
    (dict(epochs=0), "epochs must be an int >= 1"),
    (dict(loss="ce:1,banana"), "loss term must be one of"),
    (dict(class_weights=[1.0, 2.0]), "class_weights must have num_classes=4 entries, got 2"),
    (dict(ignore_index=-100), r"ignore_index must be in \[0, 65535\]"),
    (dict(batch_size=1000), "batch_size must be <= the 64 training samples"),
    (dict(save_predictions="some"), "save_predictions must be one of"),
])
def test_bad_configs_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        fit_weights(tiny_config(**overrides))


def test_schedules_warm_up_then_cosine_or_constant_and_decay_linearly():
    from segfuse.train.loop import LearningRateSchedule

    total = 200  # warm-up: the first 10 steps
    cosine, constant = LearningRateSchedule("cosine", total), LearningRateSchedule("constant", total)
    assert [cosine(step) for step in range(10)] == [constant(step) for step in range(10)] == \
        [(step + 1) / 10 for step in range(10)]
    assert cosine(10) == 1.0 and cosine(105) == pytest.approx(0.5) and cosine(200) == pytest.approx(0.0)
    assert all(constant(step) == 1.0 for step in range(10, 400))
    constant.decay(start=50, length=20)
    assert constant(49) == 1.0 and constant(50) == 1.0 and constant(60) == pytest.approx(0.5)
    assert constant(69) == pytest.approx(0.05) and constant(70) == 0.0 and constant(90) == 0.0
    constant.clear_decay()
    assert constant(60) == 1.0
    with pytest.raises(ValueError, match="schedule must be one of"):
        LearningRateSchedule("step", 10)


def test_a_constant_schedule_resumes_exactly_too(tmp_path):
    config = tiny_config(epochs=2, schedule="constant")
    weights, _, history = fit_weights(config)
    fit_weights(config, out_dir=tmp_path, stop_after=1)
    resumed_weights, _, resumed_history = fit_weights(config, resume=tmp_path / "checkpoints/last.pt")
    assert all(torch.equal(value, resumed_weights[name]) for name, value in weights.items())
    assert [r.lr for r in history] == [r.lr for r in resumed_history]


@pytest.mark.parametrize("change, message", [
    (dict(loss="dice"), "loss must equal the checkpoint's 'ce' to resume, got 'dice'"),
    (dict(lr=0.1), "lr must equal the checkpoint's 0.01 to resume, got 0.1"),
    (dict(class_weights=[1.0, 1.0, 1.0, 2.0]), "class_weights must equal the checkpoint's None"),
    (dict(schedule="constant"), "schedule must equal the checkpoint's 'cosine'"),
])
def test_a_resume_that_would_change_the_run_is_refused(tmp_path, change, message):
    fit_weights(tiny_config(epochs=2), out_dir=tmp_path, stop_after=1)
    with pytest.raises(ValueError, match=message):
        fit_weights(tiny_config(epochs=2, **change), resume=tmp_path / "checkpoints/last.pt")
    # what does not change the run (device, predictions, checkpoints kept) may differ
    fit_weights(tiny_config(epochs=2, keep_checkpoints=True), resume=tmp_path / "checkpoints/last.pt")

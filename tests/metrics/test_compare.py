"""segfuse.metrics.compare: paired bootstrap deltas between two models.

Checked against a plain loop over the same resamples (with ``semantic_scores``), against
scipy.stats.bootstrap (paired, percentile) on the mIoU delta, and by the coverage of the
intervals on a synthetic pair of models whose population scores are known in closed form.
"""

import doctest
import math

import numpy as np
import pytest
import scipy.stats
import torch

import segfuse.metrics.compare as compare_module
from segfuse.metrics import per_image_confusion_matrix, semantic_scores
from segfuse.metrics.compare import (
    MEAN_SCORES,
    bootstrap_indices,
    compare_counts,
    compare_models,
    image_counts,
    scores_from_counts,
)
from segfuse.metrics.scores import CLASS_SCORES



@pytest.fixture(autouse=True)
def one_thread():
    """The tensors here are small: with two OpenMP threads on a loaded 2-core machine each op
    waits for a descheduled thread (10x slower). One thread keeps the module at a few seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- a synthetic pair of models with known population scores ------------------------------
# Each image has PIXELS pixels; its class proportions are Dirichlet(ALPHA) and its
# difficulty d ~ U(D_LOW, D_HIGH) is shared by both models (so they are correlated, as two
# models on the same images are). A pixel of class k is predicted correctly with
# probability q_k * d, otherwise as one of the other classes uniformly. Dataset-level IoU
# converges to E[TP] / E[TP + FP + FN], which is closed form. B moves 0.05 of accuracy
# from class 2 to class 1, so classes 0 and 3 have exactly the same population IoU.

ALPHA = np.array([2.0, 1.0, 1.0, 2.0])
QUALITY_A = np.array([0.9, 0.8, 0.7, 0.6])
QUALITY_B = np.array([0.9, 0.85, 0.65, 0.6])
PIXELS, D_LOW, D_HIGH = 400, 0.6, 1.0
NUM_CLASSES = len(ALPHA)


def population_scores(quality: np.ndarray) -> dict:
    expected_truth = PIXELS * ALPHA / ALPHA.sum()
    tp = expected_truth * quality * (D_LOW + D_HIGH) / 2
    fn = expected_truth - tp
    spilled = fn / (NUM_CLASSES - 1)
    fp = spilled.sum() - spilled
    iou = tp / (tp + fp + fn)
    return {"iou": iou, "miou": iou.mean(), "acc": tp.sum() / PIXELS}


def draw_models(rng: np.random.Generator, num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image confusion matrices (N, C, C) of models A and B on the same ground truth."""
    truth = rng.multinomial(PIXELS, rng.dirichlet(ALPHA, size=num_images))
    difficulty = rng.uniform(D_LOW, D_HIGH, size=num_images)
    matrices = []
    for quality in (QUALITY_A, QUALITY_B):
        correct = quality[None, :] * difficulty[:, None]
        probabilities = np.repeat(((1 - correct) / (NUM_CLASSES - 1))[:, :, None], NUM_CLASSES, axis=2)
        probabilities[:, np.arange(NUM_CLASSES), np.arange(NUM_CLASSES)] = correct
        matrices.append(torch.from_numpy(rng.multinomial(truth, probabilities)))
    return matrices[0], matrices[1]


def test_population_has_known_and_equal_classes():
    truth_a, truth_b = population_scores(QUALITY_A), population_scores(QUALITY_B)
    delta = truth_b["iou"] - truth_a["iou"]
    assert delta[1] > 0.015 and delta[2] < -0.015
    assert abs(delta[0]) < 1e-12 and abs(delta[3]) < 1e-12
    # the simulation converges to the closed form (large sample, loose check of the generator)
    conf_a, _ = draw_models(np.random.default_rng(0), 20000)
    empirical = semantic_scores(conf_a.sum(0))
    np.testing.assert_allclose(empirical.iou.numpy(), truth_a["iou"], atol=3e-3)


def binomial_band(trials: int, rate: float, checks: int, family_alpha: float = 1e-3) -> tuple[int, int]:
    """Two-sided acceptance region of a Binomial(trials, rate) count, Bonferroni over ``checks``."""
    alpha = family_alpha / checks
    return int(scipy.stats.binom.ppf(alpha / 2, trials, rate)), int(scipy.stats.binom.isf(alpha / 2, trials, rate))


def test_intervals_cover_the_true_difference_at_the_stated_rate():
    """400 synthetic evaluation sets of 100 images: per-class IoU, mIoU and aAcc deltas.

    The percentile interval's coverage error shrinks as 1/N; at 100 images it measured
    0.93-0.95 for 0.95 over 1000 sets, inside the band below.
    """
    trials, num_images, resamples = 400, 100, 500
    truth_a, truth_b = population_scores(QUALITY_A), population_scores(QUALITY_B)
    true_delta = {
        "iou": truth_b["iou"] - truth_a["iou"],
        "miou": truth_b["miou"] - truth_a["miou"],
        "acc": truth_b["acc"] - truth_a["acc"],
    }
    levels = (0.95, 0.8)
    covered = {level: np.zeros(NUM_CLASSES + 2, dtype=int) for level in levels}
    for seed in range(trials):
        conf_a, conf_b = draw_models(np.random.default_rng(1000 + seed), num_images)
        counts_a, counts_b = image_counts(conf_a), image_counts(conf_b)
        for level in levels:
            result = compare_counts(counts_a, counts_b, resamples=resamples, confidence=level, seed=seed)
            per_class = result.per_class["iou"]
            hits = list((per_class.low.numpy() <= true_delta["iou"]) & (true_delta["iou"] <= per_class.high.numpy()))
            for name in ("miou", "acc"):
                mean = result.means[name]
                hits.append(float(mean.low) <= true_delta[name] <= float(mean.high))
            covered[level] += np.array(hits, dtype=int)
    checks = len(levels) * (NUM_CLASSES + 2)
    for level in levels:
        low, high = binomial_band(trials, level, checks)
        assert np.all((covered[level] >= low) & (covered[level] <= high)), (level, covered[level], (low, high))


def test_a_against_itself_is_within_noise_on_every_class():
    conf_a, _ = draw_models(np.random.default_rng(5), 30)
    result = compare_models(conf_a, conf_a.clone(), resamples=300, seed=1)
    for delta in (*result.per_class.values(), *result.means.values()):
        assert torch.all(delta.delta == 0) and torch.all(delta.low == 0) and torch.all(delta.high == 0)
        verdicts = delta.verdict if isinstance(delta.verdict, list) else [delta.verdict]
        assert verdicts == ["within noise"] * len(verdicts)


def rare_class_confusions():
    """12 images, 4 classes; class 3 is in the truth of image 5 only, and A never predicts it."""
    rng = np.random.default_rng(3)
    gt = torch.from_numpy(rng.integers(0, 3, (12, 10, 10)))
    gt[5, :3] = 3
    pred_a = torch.where(torch.from_numpy(rng.random((12, 10, 10))) < 0.7, gt, torch.from_numpy(rng.integers(0, 3, (12, 10, 10))))
    pred_a[gt == 3] = 0
    pred_b = torch.where(torch.from_numpy(rng.random((12, 10, 10))) < 0.8, gt, torch.from_numpy(rng.integers(0, 4, (12, 10, 10))))
    return per_image_confusion_matrix(pred_a, gt, 4), per_image_confusion_matrix(pred_b, gt, 4)


def test_replicates_equal_a_loop_over_the_same_resamples():
    conf_a, conf_b = rare_class_confusions()
    resamples, seed = 200, 9
    result = compare_models(conf_a, conf_b, resamples=resamples, seed=seed, beta=2.0, keep_replicates=True)
    indices = bootstrap_indices(conf_a.shape[0], resamples, seed)
    assert indices.shape == (resamples, conf_a.shape[0])
    expected = {name: [] for name in (*CLASS_SCORES, *MEAN_SCORES)}
    for row in indices:
        scores_a = semantic_scores(conf_a[row].sum(0), beta=2.0)
        scores_b = semantic_scores(conf_b[row].sum(0), beta=2.0)
        for name in expected:
            expected[name].append(getattr(scores_b, name) - getattr(scores_a, name))
    for name, values in expected.items():
        torch.testing.assert_close(result.replicates[name], torch.stack(values), rtol=0, atol=1e-12, equal_nan=True)
    assert torch.isnan(result.replicates["iou"][:, 3]).any()  # the rare class is missed by some resamples


def test_percentile_bounds_equal_numpy_quantiles():
    conf_a, conf_b = draw_models(np.random.default_rng(2), 40)
    result = compare_models(conf_a, conf_b, resamples=333, confidence=0.9, seed=4, keep_replicates=True)
    for name in ("iou", "dice", "miou", "acc", "fwiou"):
        replicates = result.replicates[name].numpy()
        delta = result.per_class.get(name) or result.means[name]
        np.testing.assert_allclose(delta.low.numpy(), np.quantile(replicates, 0.05, axis=0), rtol=0, atol=1e-15)
        np.testing.assert_allclose(delta.high.numpy(), np.quantile(replicates, 0.95, axis=0), rtol=0, atol=1e-15)


def test_interval_agrees_with_scipy_paired_bootstrap():
    """scipy.stats.bootstrap(paired=True, method="percentile") on the dataset-level mIoU delta.

    The two use different random streams, so the bounds agree up to Monte Carlo error:
    the number of our replicates below scipy's bound is Binomial(R, F(bound)) with
    F(bound) itself estimated from R resamples, so its sd is sqrt(2 R p (1 - p)); the
    standard errors agree to a relative sd of 1 / sqrt(R). Both are checked at 4 sd.
    """
    num_images, resamples = 60, 4000
    conf_a, conf_b = draw_models(np.random.default_rng(8), num_images)
    counts_a, counts_b = image_counts(conf_a), image_counts(conf_b)
    ours = compare_counts(counts_a, counts_b, resamples=resamples, seed=2, keep_replicates=True)
    samples = [row for counts in (counts_a, counts_b) for row in counts.permute(1, 2, 0).reshape(-1, num_images).double().numpy()]

    def miou_delta(*data, axis=-1):
        sums = np.stack(data).sum(axis=axis)
        tp, fp, fn = sums.reshape(2, 3, NUM_CLASSES, *sums.shape[1:]).transpose(1, 0, 2, *range(3, sums.ndim + 2))
        miou = (tp / (tp + fp + fn)).mean(axis=1)
        return miou[1] - miou[0]

    theirs = scipy.stats.bootstrap(
        samples, miou_delta, paired=True, vectorized=True, n_resamples=resamples, batch=1000,
        confidence_level=0.95, method="percentile", rng=np.random.default_rng(11),
    )
    observed = float(ours.means["miou"].delta)
    assert miou_delta(*samples) == pytest.approx(observed, abs=1e-12)
    replicates = ours.replicates["miou"].numpy()
    for bound, p in ((theirs.confidence_interval.low, 0.025), (theirs.confidence_interval.high, 0.975)):
        rank = int((replicates < bound).sum())
        assert abs(rank - p * resamples) <= 4 * math.sqrt(2 * resamples * p * (1 - p)) + 1, (rank, p)
    ratio = replicates.std(ddof=1) / theirs.standard_error
    assert abs(ratio - 1) <= 4 / math.sqrt(resamples)


def test_convention_interval_is_of_the_dataset_level_difference():
    conf_a, conf_b = rare_class_confusions()
    result = compare_models(conf_a, conf_b, resamples=50)
    pooled_a, pooled_b = semantic_scores(conf_a.sum(0)), semantic_scores(conf_b.sum(0))
    for name in (*CLASS_SCORES, *MEAN_SCORES):
        delta = result.per_class.get(name) or result.means[name]
        torch.testing.assert_close(delta.a, getattr(pooled_a, name), equal_nan=True)
        torch.testing.assert_close(delta.b, getattr(pooled_b, name), equal_nan=True)
        torch.testing.assert_close(delta.delta, getattr(pooled_b, name) - getattr(pooled_a, name), equal_nan=True)
    per_image_mean = semantic_scores(conf_b).miou.nanmean() - semantic_scores(conf_a).miou.nanmean()
    assert not torch.isclose(result.means["miou"].delta, per_image_mean)
    torch.testing.assert_close(result.image_miou_a, semantic_scores(conf_a).miou)
    torch.testing.assert_close(result.image_miou_b, semantic_scores(conf_b).miou)


def test_convention_undefined_resamples_count_against_the_verdict():
    """Class 3 lives in one image of 12 and A never predicts it: its delta is undefined in
    every resample without that image (about (11/12)^12 = 35%), so its interval is unbounded
    both ways and the verdict stays "within noise", though B is clearly better on it."""
    conf_a, conf_b = rare_class_confusions()
    resamples, seed = 400, 0
    result = compare_models(conf_a, conf_b, resamples=resamples, seed=seed)
    iou = result.per_class["iou"]
    assert float(iou.delta[3]) > 0.2
    with_image = (bootstrap_indices(12, resamples, seed) == 5).any(dim=1).double().mean()
    assert float(iou.defined[3]) == pytest.approx(float(with_image), abs=1e-12)
    assert 0.5 < float(iou.defined[3]) < 0.8
    assert float(iou.low[3]) == -math.inf and float(iou.high[3]) == math.inf
    assert iou.verdict[3] == "within noise"
    assert torch.all(iou.defined[:3] == 1) and torch.isfinite(iou.low[:3]).all()
    # with zero_division=0 the class always scores, and the interval is finite
    zero = compare_models(conf_a, conf_b, resamples=resamples, seed=seed, zero_division=0)
    assert float(zero.per_class["iou"].defined[3]) == 1 and math.isfinite(float(zero.per_class["iou"].low[3]))


def test_convention_absent_class_has_verdict_absent():
    conf_a, conf_b = rare_class_confusions()
    padded = [torch.nn.functional.pad(conf, (0, 1, 0, 1)) for conf in (conf_a, conf_b)]  # class 4: nowhere
    padded[1][0, 0, 4] += 1  # ... but B predicts it once (on a class-0 pixel): IoU_B = 0, IoU_A undefined
    padded[1][0, 0, 0] -= 1
    result = compare_models(*padded, resamples=100)
    for name in CLASS_SCORES:
        delta = result.per_class[name]
        assert delta.verdict[4] == "absent"
        assert math.isnan(float(delta.delta[4])) and math.isnan(float(delta.low[4])) and math.isnan(float(delta.high[4]))
    assert float(result.per_class["iou"].b[4]) == 0 and math.isnan(float(result.per_class["iou"].a[4]))


def test_verdicts_follow_the_bounds():
    conf_a, conf_b = draw_models(np.random.default_rng(4), 80)
    result = compare_models(conf_a, conf_b, resamples=400, seed=3)
    seen = set()
    for delta in (*result.per_class.values(), *result.means.values()):
        verdicts = delta.verdict if isinstance(delta.verdict, list) else [delta.verdict]
        for verdict, low, high in zip(verdicts, delta.low.reshape(-1).tolist(), delta.high.reshape(-1).tolist()):
            expected = "better" if low > 0 else "worse" if high < 0 else "within noise"
            assert verdict == expected
            assert low <= high
            seen.add(verdict)
    assert seen == {"better", "worse", "within noise"}


def test_seed_reproduces_and_changes_the_resamples():
    conf_a, conf_b = draw_models(np.random.default_rng(6), 25)
    first = compare_models(conf_a, conf_b, resamples=200, seed=5)
    again = compare_models(conf_a, conf_b, resamples=200, seed=5)
    other = compare_models(conf_a, conf_b, resamples=200, seed=6)
    assert torch.equal(first.per_class["iou"].low, again.per_class["iou"].low)
    assert not torch.equal(first.per_class["iou"].low, other.per_class["iou"].low)
    torch.testing.assert_close(first.per_class["iou"].delta, other.per_class["iou"].delta)


def test_resamples_drawn_in_chunks_match_one_draw(monkeypatch):
    conf_a, conf_b = draw_models(np.random.default_rng(6), 25)
    whole = compare_models(conf_a, conf_b, resamples=130, seed=1, keep_replicates=True)
    monkeypatch.setattr(compare_module, "CHUNK_ELEMENTS", 25 * 7)  # chunks of 7 resamples
    chunked_indices = bootstrap_indices(25, 130, 1)
    chunked = compare_models(conf_a, conf_b, resamples=130, seed=1, keep_replicates=True)
    assert chunked_indices.shape == (130, 25)
    # another chunking draws other (equally valid) resamples; the statistic is unchanged
    torch.testing.assert_close(chunked.per_class["iou"].delta, whole.per_class["iou"].delta)
    assert chunked.replicates["miou"].shape == whole.replicates["miou"].shape == (130,)


def test_scores_from_counts_equal_semantic_scores():
    conf_a, _ = rare_class_confusions()
    counts = image_counts(conf_a)
    for zero_division in ("nan", 0, 1):
        ours = scores_from_counts(counts, beta=0.5, zero_division=zero_division)
        reference = semantic_scores(conf_a, beta=0.5, zero_division=zero_division)
        for name in (*CLASS_SCORES, *MEAN_SCORES):
            torch.testing.assert_close(ours[name], getattr(reference, name), equal_nan=True)


def test_to_dict_is_plain_python():
    conf_a, conf_b = rare_class_confusions()
    result = compare_models(conf_a, conf_b, resamples=20, class_names=["a", "b", "c", "d"])
    document = result.to_dict()
    assert document["class_names"] == ["a", "b", "c", "d"] and document["resamples"] == 20
    assert set(document["means"]) == set(MEAN_SCORES) and set(document["per_class"]) == set(CLASS_SCORES)
    assert isinstance(document["per_class"]["iou"]["low"][0], float)
    assert document["means"]["miou"]["verdict"] in ("better", "worse", "within noise")


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda a, b: (a[:1], b[:1]), ValueError, "at least 2 images"),
        (lambda a, b: (a, b[:-1]), ValueError, "same shape"),
        (lambda a, b: (a, b.flip(0)), ValueError, "same ground truth"),
        (lambda a, b: (a.float(), b), TypeError, "integer counts"),
        (lambda a, b: (a[..., 0], b[..., 0]), ValueError, r"\(N, C, C\)"),
    ],
)
def test_bad_confusions_raise(change, error, match):
    conf_a, conf_b = rare_class_confusions()
    with pytest.raises(error, match=match):
        compare_models(*change(conf_a, conf_b))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"resamples": 0}, ValueError, "resamples must be >= 1, got 0"),
        ({"resamples": 10.0}, TypeError, "resamples must be an int"),
        ({"seed": "1"}, TypeError, "seed must be an int"),
        ({"confidence": 1.0}, ValueError, r"confidence must be in \(0, 1\), got 1.0"),
        ({"confidence": 0}, ValueError, "confidence must be in"),
        ({"beta": -1.0}, ValueError, "beta"),
        ({"zero_division": 2}, ValueError, "zero_division"),
        ({"class_names": ["x"]}, ValueError, "class_names"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    conf_a, conf_b = rare_class_confusions()
    with pytest.raises(error, match=match):
        compare_models(conf_a, conf_b, **kwargs)


def test_docstring_example_runs():
    result = doctest.testmod(compare_module, extraglobs={"torch": torch})
    assert result.failed == 0 and result.attempted > 0


# ---- per-image averaged statistic (per_image=True, convention="monai") -----------------------------


def per_image_reference(confusions, **kwargs):
    """SemanticMetrics' per-image averaged scores of the images (repeats count as often as they occur)."""
    from segfuse.metrics import SemanticMetrics

    metric = SemanticMetrics(NUM_CLASSES, **kwargs)
    metric.update_confusion(confusions)
    return metric.compute()


@pytest.mark.parametrize(
    "kwargs",
    [dict(per_image=True), dict(per_image=True, per_image_average="pooled"), dict(convention="monai"),
     dict(convention="torchmetrics", per_image=True, zero_division=0)],
)
def test_per_image_statistic_equals_semantic_metrics_on_every_resample(kwargs):
    conf_a, conf_b = rare_class_confusions()
    resamples, seed = 40, 5
    result = compare_models(conf_a, conf_b, resamples=resamples, seed=seed, keep_replicates=True, **kwargs)
    assert result.per_image and result.to_dict()["per_image"] is True
    observed_a, observed_b = per_image_reference(conf_a, **kwargs), per_image_reference(conf_b, **kwargs)
    assert result.per_image_average == observed_a.per_image_average
    for name in ("iou", "dice", "recall"):
        torch.testing.assert_close(result.per_class[name].a, getattr(observed_a, name), equal_nan=True)
        torch.testing.assert_close(result.per_class[name].b, getattr(observed_b, name), equal_nan=True)
    for name in ("miou", "mdice", "acc", "fwiou"):
        torch.testing.assert_close(result.means[name].delta, getattr(observed_b, name) - getattr(observed_a, name))
    for row, indices in enumerate(bootstrap_indices(conf_a.shape[0], resamples, seed)):
        a, b = per_image_reference(conf_a[indices], **kwargs), per_image_reference(conf_b[indices], **kwargs)
        torch.testing.assert_close(result.replicates["miou"][row], b.miou - a.miou, equal_nan=True)
        torch.testing.assert_close(result.replicates["iou"][row], b.iou - a.iou, equal_nan=True)


def test_per_image_false_with_a_per_image_convention_raises():
    conf_a, conf_b = rare_class_confusions()
    with pytest.raises(ValueError, match="scores each image"):
        compare_models(conf_a, conf_b, convention="monai", per_image=False)

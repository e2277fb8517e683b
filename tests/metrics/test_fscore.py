import pytest
import torch
import torch.nn.functional as F

from segfuse.metrics import fscore


def seed_f_score(inputs, target, beta=1, smooth=1e-5, threhold=0.5):
    """Seed 000's f_score, verbatim: inputs (n, c, h, w), target one-hot (n, h, w, c + 1)."""
    n, c, h, w = inputs.size()
    nt, ht, wt, ct = target.size()
    if h != ht and w != wt:
        inputs = F.interpolate(inputs, size=(ht, wt), mode="bilinear", align_corners=True)
    temp_inputs = torch.softmax(inputs.transpose(1, 2).transpose(2, 3).contiguous().view(n, -1, c), -1)
    temp_target = target.view(n, -1, ct)
    temp_inputs = torch.gt(temp_inputs, threhold).float()
    tp = torch.sum(temp_target[..., :-1] * temp_inputs, axis=[0, 1])
    fp = torch.sum(temp_inputs, axis=[0, 1]) - tp
    fn = torch.sum(temp_target[..., :-1], axis=[0, 1]) - tp
    score = ((1 + beta**2) * tp + smooth) / ((1 + beta**2) * tp + beta**2 * fn + fp + smooth)
    return torch.mean(score)


def seed_target(labels, num_classes):
    """The seed's target: one-hot with an extra last "white border" channel for ignored pixels."""
    return F.one_hot(labels.clamp(max=num_classes), num_classes + 1).float()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta, threshold", [(1.0, 0.5), (0.5, 0.3), (2.0, 0.2)])
def test_fscore_equals_seed_without_ignored_pixels(seed, beta, threshold):
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(2, 4, 9, 11, generator=generator)
    labels = torch.randint(0, 4, (2, 9, 11), generator=generator)
    expected = seed_f_score(logits, seed_target(labels, 4), beta=beta, threhold=threshold)
    torch.testing.assert_close(fscore(logits, labels, beta=beta, threshold=threshold), expected)


def test_fscore_resizes_logits_like_the_seed():
    generator = torch.Generator().manual_seed(3)
    logits = 2 * torch.randn(2, 3, 5, 6, generator=generator)
    labels = torch.randint(0, 3, (2, 10, 12), generator=generator)
    expected = seed_f_score(logits, seed_target(labels, 3))
    torch.testing.assert_close(fscore(logits, labels), expected)


def test_convention_ignored_pixels_are_excluded_not_false_positives():
    generator = torch.Generator().manual_seed(4)
    logits = 2 * torch.randn(2, 3, 8, 8, generator=generator)
    labels = torch.randint(0, 3, (2, 8, 8), generator=generator)
    ignored = torch.rand(2, 8, 8, generator=generator) < 0.3
    labels_with_ignore = labels.masked_fill(ignored, 255)
    # the seed counts predictions on the white border as false positives ...
    seed_value = seed_f_score(logits, seed_target(labels_with_ignore, 3))
    ours = fscore(logits, labels_with_ignore, ignore_index=255)
    assert not torch.allclose(ours, seed_value)
    # ... we score exactly the seed on the valid pixels only (same counts as dropping them)
    keep = ~ignored.reshape(-1)
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, 3)[keep].T.reshape(1, 3, -1, 1)
    flat_labels = labels.reshape(-1)[keep].reshape(1, -1, 1)
    torch.testing.assert_close(ours, seed_f_score(flat_logits, seed_target(flat_labels, 3)))


def test_absent_class_scores_one_through_smoothing_and_3d_input():
    logits = torch.zeros(1, 3, 2, 2, 2)
    logits[:, 0] = 5.0
    labels = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    assert fscore(logits, labels) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(beta=0.0), ValueError, "beta must be > 0"),
        (dict(threshold=1.5), ValueError, "threshold"),
        (dict(smooth=-1.0), ValueError, "smooth"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fscore(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 3, dtype=torch.long), **kwargs)


def test_bad_tensors():
    with pytest.raises(ValueError, match=r"target must hold labels in \[0, 2\)"):
        fscore(torch.zeros(1, 2, 3, 3), torch.full((1, 3, 3), 2))
    with pytest.raises(TypeError, match="logits"):
        fscore(torch.zeros(1, 2, 3, 3, dtype=torch.long), torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="target must have shape"):
        fscore(torch.zeros(1, 2, 3, 3), torch.zeros(2, 3, 3, dtype=torch.long))

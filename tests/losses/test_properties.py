"""Hypothesis properties of every loss: range, finite gradients, ignored pixels, batch order."""

import torch
from hypothesis import given
from hypothesis import strategies as st

import segfuse.functional as SF
from tests.losses.helpers import make_inputs

OVERLAP = {
    "dice": SF.dice_loss,
    "fbeta": lambda x, t, **kw: SF.fbeta_loss(x, t, beta=0.5, **kw),
    "tversky": lambda x, t, **kw: SF.tversky_loss(x, t, 0.7, 0.3, **kw),
    "jaccard": SF.jaccard_loss,
    "generalized_dice": SF.generalized_dice_loss,
}
ALL_LOSSES = {
    **OVERLAP,
    # focal is a per-pixel mean: per_image has no meaning for it
    "focal": lambda x, t, mode, per_image=False, **kw: SF.focal_loss(x, t, mode, **kw),
    "lovasz": lambda x, t, mode, **kw: SF.lovasz_loss(x, t, mode, **kw),
    "dice_ce": SF.dice_ce_loss,
    "dice_focal": SF.dice_focal_loss,
}


def call(name, x, t, mode, **kw):
    fn = ALL_LOSSES[name]
    if name in ("focal", "lovasz"):
        return fn(x, t, mode, **kw)
    return fn(x, t, mode=mode, **kw)


cases = st.fixed_dictionaries({
    "mode": st.sampled_from(["multiclass", "binary", "multilabel"]),
    "n": st.integers(1, 3),
    "c": st.integers(2, 5),
    "spatial": st.sampled_from([(5,), (3, 4), (2, 3, 2)]),
    "seed": st.integers(0, 10_000),
    "scale": st.sampled_from([0.1, 1.0, 10.0]),
    "per_image": st.booleans(),
})


def inputs(case, ignore_index=None):
    logits, target = make_inputs(case["mode"], n=case["n"], c=case["c"], spatial=case["spatial"], seed=case["seed"],
                                 ignore_index=ignore_index, ignore_fraction=0.3)
    return logits * case["scale"], target


@given(case=cases, name=st.sampled_from(sorted(OVERLAP)))
def test_overlap_losses_lie_in_unit_interval(case, name):
    logits, target = inputs(case, ignore_index=255)
    loss = call(name, logits, target, case["mode"], per_image=case["per_image"], ignore_index=255)
    assert 0.0 <= float(loss) <= 1.0


@given(case=cases, name=st.sampled_from(sorted(ALL_LOSSES)))
def test_gradients_are_finite(case, name):
    logits, target = inputs(case, ignore_index=255)
    logits.requires_grad_(True)
    call(name, logits, target, case["mode"], per_image=case["per_image"], ignore_index=255).backward()
    assert torch.isfinite(logits.grad).all()


def ignored_pixel_mask(target, mode, shape):
    ignored = target == 255
    return ignored.unsqueeze(1).expand(shape) if mode == "multiclass" else ignored.expand(shape)


@given(case=cases, name=st.sampled_from(sorted(ALL_LOSSES)))
def test_ignored_pixels_change_neither_value_nor_gradient(case, name):
    logits, target = inputs(case, ignore_index=255)
    ignored = ignored_pixel_mask(target, case["mode"], logits.shape)
    noise = torch.randn_like(logits) * 5
    results = []
    for x in (logits, torch.where(ignored, logits + noise, logits)):
        x = x.clone().requires_grad_(True)
        loss = call(name, x, target, case["mode"], per_image=case["per_image"], ignore_index=255)
        loss.backward()
        results.append((loss.detach(), x.grad))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)
    assert torch.all(results[0][1][ignored] == 0)


@given(case=cases, name=st.sampled_from(sorted(ALL_LOSSES)))
def test_losses_are_invariant_to_batch_order(case, name):
    logits, target = inputs(case, ignore_index=255)
    order = torch.randperm(logits.shape[0], generator=torch.Generator().manual_seed(case["seed"]))
    a = call(name, logits, target, case["mode"], per_image=case["per_image"], ignore_index=255)
    b = call(name, logits[order], target[order], case["mode"], per_image=case["per_image"], ignore_index=255)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@given(case=cases)
def test_per_image_losses_follow_the_batch_permutation(case):
    case = {**case, "mode": "multiclass"}
    logits, target = inputs(case, ignore_index=255)
    order = torch.randperm(logits.shape[0], generator=torch.Generator().manual_seed(case["seed"]))
    per = SF.dice_loss(logits, target, per_image=True, ignore_index=255, reduction="none")
    permuted = SF.dice_loss(logits[order], target[order], per_image=True, ignore_index=255, reduction="none")
    torch.testing.assert_close(per[order], permuted)


@given(case=cases)
def test_classes_absent_from_target_and_prediction(case):
    """skip_absent="drop": adding a class that no pixel has and no logit predicts changes nothing."""
    case = {**case, "mode": "multiclass"}
    logits, target = inputs(case)
    extra = torch.full_like(logits[:, :1], -1e4)
    widened = torch.cat([logits, extra], 1)
    for fn in (SF.dice_loss, SF.jaccard_loss):
        base = fn(logits, target, skip_absent="drop", per_image=case["per_image"])
        torch.testing.assert_close(fn(widened, target, skip_absent="drop", per_image=case["per_image"]), base)
        # without skip_absent the absent, unpredicted class scores s / (0 + s) = 1: loss 0 in the mean
        per_class = fn(widened, target, per_image=case["per_image"], reduction="none")
        assert torch.all(per_class[..., -1] < 1e-6)

"""The compiled (numba) matching and accumulation against the numpy ones: the same arrays, bit for bit.

Every pycocotools / lvis / faster-coco-eval equality case already runs on both paths (the
``coco_path`` fixture); these tests compare the two paths directly, on the internals the
references do not expose (the matches, the precision sums), and the loader's fallbacks.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from segfuse import _accelerate
from segfuse.coco import _pipeline, evaluate
from tests.coco.helpers import make_dataset, make_lvis_dataset

numba = pytest.importorskip("numba")

CASES = [
    dict(seed=0),
    dict(seed=1, iou_thresholds=[0.0, 0.3, 0.95, 1.0]),
    dict(seed=2, max_dets=(1, 3, 6)),
    dict(seed=3, max_dets=(2, 2, 50)),  # a repeated cap: pycocotools' literal path in the summary
    dict(seed=4, area_ranges={"all": (0, 1e10), "tiny": (0, 200), "big": (200, 1e10)}),
    dict(seed=5, use_cats=False),
    dict(seed=6, image_ids=None, min_score=0.4),
]


def both_paths(monkeypatch, *args, **kwargs):
    """``evaluate`` with the compiled kernels, then with them off."""
    out = []
    for kernels in (_accelerate.compiled("segfuse.coco._compiled"), None):
        with monkeypatch.context() as patch:
            patch.setattr(_pipeline, "kernels", lambda work=0, kernels=kernels: kernels)
            out.append(evaluate(*args, **kwargs))
    return out


def assert_identical(compiled, plain):
    np.testing.assert_array_equal(compiled._matched.matched, plain._matched.matched)
    for name in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(getattr(compiled, name), getattr(plain, name), err_msg=name)
    np.testing.assert_array_equal(compiled._curves.precision_sums(), plain._curves.precision_sums())
    assert compiled.stats == plain.stats  # to the bit: evaluating twice in a process gives the same numbers
    assert compiled.per_category == plain.per_category or _same_with_nan(compiled.per_category, plain.per_category)


def _same_with_nan(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].keys() == b[k].keys() and all(x == y or (x != x and y != y) for x, y in zip(a[k].values(), b[k].values()))
        for k in a)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(k for k in c if k != "seed") or "default")
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_compiled_and_numpy_paths_agree(case, iou_type, monkeypatch):
    case = dict(case)
    gt, dt = make_dataset(case.pop("seed"), n_images=10, max_dt=25, tie_rate=0.4)
    assert_identical(*both_paths(monkeypatch, gt, dt, iou_type, **case))


def test_compiled_and_numpy_paths_agree_on_id_zero_and_lvis(monkeypatch):
    gt, dt = make_dataset(7)
    for ann in gt["annotations"]:
        ann["id"] -= 1  # one ground truth has id 0: a match to it counts as no match
    assert_identical(*both_paths(monkeypatch, gt, dt, "bbox"))
    gt, dt = make_lvis_dataset(1)
    assert_identical(*both_paths(monkeypatch, gt, dt, "segm", mode="lvis"))


def test_dense_arrays_come_from_a_second_pass_with_the_same_recall_and_sums(monkeypatch):
    gt, dt = make_dataset(8)
    curves = both_paths(monkeypatch, gt, dt, "bbox")[0]._curves
    recall, sums = curves.recall.copy(), curves.precision_sums().copy()
    precision, _, scores, dense_sums = curves._kernel(*curves._arguments, True)
    np.testing.assert_array_equal(curves.precision(), precision)
    np.testing.assert_array_equal(curves.scores(), scores)
    np.testing.assert_array_equal(dense_sums, sums)
    np.testing.assert_array_equal(curves.recall, recall)
    assert curves._kernel(*curves._arguments, False)[0].size == 0  # the sparse pass builds no dense array


def test_loader_falls_back_to_none(monkeypatch):
    _accelerate.compiled.cache_clear()
    try:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
        assert _accelerate.compiled("segfuse.coco._compiled") is None  # numba missing
        monkeypatch.undo()
        _accelerate.compiled.cache_clear()
        assert _accelerate.compiled("segfuse.coco._no_such_kernels") is None  # a module that does not load
        assert _accelerate.compiled("segfuse.coco._compiled") is not None
        _accelerate.compiled.cache_clear()
        monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
        assert _accelerate.compiled("segfuse.coco._compiled") is None  # interpreted kernels: the numpy path is faster
    finally:
        _accelerate.compiled.cache_clear()


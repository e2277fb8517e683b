"""Segmentation fields -> runs: the chunked compressed-RLE path, int32 and int64 positions."""

from __future__ import annotations

import numpy as np
import pytest

from segfuse.coco import _counts, _segmentation


def _compressed(counts, h, w) -> dict:
    batch = _counts.Counts(np.asarray(counts, np.int64), np.array([0, len(counts)]), np.array([h]), np.array([w]))
    return {"size": [h, w], "counts": _counts.encode_strings(batch)[0].decode("ascii")}


def test_huge_masks_keep_int64_positions():
    h = w = 50_000  # 2.5e9 pixels: positions do not fit int32
    counts = [2**31 + 5, 10, 7, 3, h * w - 2**31 - 25]
    runs = _segmentation.to_runs([_compressed(counts, h, w)], np.array([h]), np.array([w]), str)
    assert runs.starts.dtype == np.int64
    np.testing.assert_array_equal(runs.starts, [2**31 + 5, 2**31 + 22])
    np.testing.assert_array_equal(runs.ends, [2**31 + 15, 2**31 + 25])


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_chunked_decoding_equals_one_pass(monkeypatch, chunk):
    rng = np.random.default_rng(3)
    segms, heights, widths = [], [], []
    for _ in range(25):
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        cuts = np.sort(rng.integers(0, h * w + 1, int(rng.integers(0, 12))))
        segms.append(_compressed(np.diff(np.r_[0, cuts, h * w]), h, w))
        heights.append(h)
        widths.append(w)
    heights, widths = np.array(heights), np.array(widths)
    expected = _segmentation.to_runs(segms, heights, widths, str)
    monkeypatch.setattr(_segmentation, "CHUNK_CHARS", chunk)
    runs = _segmentation.to_runs(segms, heights, widths, str)
    assert runs.starts.dtype == np.int32
    for got, want in zip(runs[:3], expected[:3]):
        np.testing.assert_array_equal(got, want)
    dense = [_counts.decode_dense(_counts.decode_strings([s["counts"].encode()], [h], [w]))[:, :, 0]
             for s, h, w in zip(segms, heights, widths)]
    for i, mask in enumerate(dense):
        flat = np.flatnonzero(mask.reshape(-1, order="F"))
        own = [np.arange(a, b) for a, b in zip(runs.starts[runs.offsets[i]:runs.offsets[i + 1]],
                                               runs.ends[runs.offsets[i]:runs.offsets[i + 1]])]
        np.testing.assert_array_equal(np.concatenate(own) if own else np.zeros(0, int), flat)

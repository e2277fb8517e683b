"""The batch string decoder against a scalar port of pycocotools' rleFrString and pycocotools itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segfuse.coco import _counts, _runs
from tests.coco.helpers import coco_mask


def scalar_decode(string: bytes) -> list[int]:
    """pycocotools' rleFrString, one character at a time."""
    counts, p = [], 0
    while p < len(string):
        x, k, more = 0, 0, True
        while more:
            c = string[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def scalar_runs(counts: list[int]) -> list[tuple[int, int]]:
    """(start, end) of every non-empty run of 1s."""
    runs, position = [], 0
    for m, c in enumerate(counts):
        if m % 2 == 1 and c > 0:
            runs.append((position, position + c))
        position += c
    return runs


def long_run_masks(rng, h: int, w: int, n: int) -> np.ndarray:
    """Masks made of a few long runs (column-major), so counts exceed 2^16."""
    flat = np.zeros((n, h * w), dtype=np.uint8)
    for row in flat:
        cuts = np.sort(rng.integers(0, h * w + 1, int(rng.integers(0, 6))))
        for a, b in zip(cuts[0::2], cuts[1::2]):
            row[a:b] = 1
    return np.asfortranarray(flat.reshape(n, w, h).transpose(2, 1, 0))


def mask_batch(rng, n: int) -> list[dict]:
    """RLEs of random masks of odd sizes and densities, with empty and full masks."""
    rles = []
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        density = rng.choice([0.0, 0.02, 0.3, 0.9, 1.0])
        rles += coco_mask.encode(np.asfortranarray((rng.random((h, w, 2)) < density).astype(np.uint8)))
    rles += coco_mask.encode(long_run_masks(rng, 517, 389, 4))
    return rles


def check_batch(rles: list[dict]) -> None:
    strings = [r["counts"] for r in rles]
    counts = _counts.decode_strings(strings, [r["size"][0] for r in rles], [r["size"][1] for r in rles])
    runs = _runs.from_counts(counts)
    for i, (rle, string) in enumerate(zip(rles, strings)):
        own = counts.counts[counts.offsets[i] : counts.offsets[i + 1]].tolist()
        assert own == scalar_decode(string)
        mine = list(zip(runs.starts[runs.offsets[i] : runs.offsets[i + 1]].tolist(),
                        runs.ends[runs.offsets[i] : runs.offsets[i + 1]].tolist()))
        assert mine == scalar_runs(own)
    np.testing.assert_array_equal(_counts.areas(counts), coco_mask.area(rles))
    np.testing.assert_array_equal(_runs.areas(runs), coco_mask.area(rles))
    np.testing.assert_array_equal(_runs.boxes(runs), coco_mask.toBbox(rles))


@pytest.mark.parametrize("seed", range(4))
def test_batch_decode_matches_scalar_decoder_and_pycocotools(seed):
    rng = np.random.default_rng(seed)
    rles = mask_batch(rng, 30)
    rng.shuffle(rles)
    check_batch(rles)


def test_long_runs_need_several_characters():
    rles = coco_mask.encode(long_run_masks(np.random.default_rng(1), 600, 700, 6))
    assert max(max(scalar_decode(r["counts"])) for r in rles) > 2**16
    check_batch(rles)


def test_empty_strings_and_empty_masks():
    zeros = coco_mask.encode(np.zeros((3, 5, 1), dtype=np.uint8, order="F"))[0]["counts"]
    ones = coco_mask.encode(np.ones((3, 5, 1), dtype=np.uint8, order="F"))[0]["counts"]
    counts = _counts.decode_strings([b"", zeros, b"", ones, b""], [0, 3, 0, 3, 0], [0, 5, 0, 5, 0])
    assert counts.offsets.tolist() == [0, 0, 1, 1, 3, 3]
    assert counts.counts.tolist() == [15, 0, 15]
    runs = _runs.from_counts(counts)
    assert runs.offsets.tolist() == [0, 0, 0, 0, 1, 1] and (runs.starts.tolist(), runs.ends.tolist()) == ([0], [15])
    assert _counts.decode_strings([], [], []).counts.tolist() == []


@given(st.lists(st.lists(st.integers(-(2**40), 2**40), max_size=12), max_size=6))
def test_decode_inverts_encode_on_any_integers(batches):
    """Arbitrary (even negative) counts survive encode -> decode, string boundaries included."""
    lengths = np.array([len(b) for b in batches], dtype=np.int64)
    flat = np.array([v for b in batches for v in b], dtype=np.int64)
    batch = _counts.Counts(flat, np.r_[0, np.cumsum(lengths)].astype(np.int64), np.ones(len(batches), np.int64),
                           np.ones(len(batches), np.int64))
    strings = _counts.encode_strings(batch)
    decoded = _counts.decode_strings(strings, batch.heights, batch.widths)
    assert decoded.counts.tolist() == flat.tolist()
    assert decoded.offsets.tolist() == batch.offsets.tolist()
    assert [scalar_decode(s) for s in strings] == [list(b) for b in batches]


@pytest.mark.parametrize("string, message", [(b"1`", "middle of a count"), (b"p", "characters"),
                                             (b"_" * 13 + b"0", "longer than")])
def test_malformed_strings_raise(string, message):
    with pytest.raises(ValueError, match=message):
        _counts.decode_strings([string], [1], [1])

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segfuse.metrics import BinaryPRCurve, SemanticMetrics, confusion_matrix, semantic_metrics

NUM_CLASSES = 5
SHARDS = [(0, 1), (1, 4)]  # uneven: rank 0 gets 1 image, rank 1 gets 3


def data():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, NUM_CLASSES, (4, 16, 16), generator=generator)
    target[torch.rand(4, 16, 16, generator=generator) < 0.2] = 255
    pred = torch.randint(0, NUM_CLASSES, (4, 16, 16), generator=generator)
    scores = torch.rand(4, 16, 16, generator=generator)
    return pred, target, scores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(rank, port, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        pred, target, scores = data()
        start, stop = SHARDS[rank]
        dataset, per_image = SemanticMetrics(NUM_CLASSES, 255), SemanticMetrics(NUM_CLASSES, 255, per_image=True)
        curve = BinaryPRCurve(thresholds=20, ignore_index=255)
        for metric in (dataset, per_image):
            metric.update(pred[start:stop], target[start:stop])
        binary = (target[start:stop] % 2).masked_fill(target[start:stop] == 255, 255)
        curve.update(scores[start:stop], binary)
        results[rank] = {
            "confusion": dataset.compute().confusion_matrix,
            "local": dataset.confusion.clone(),
            "per_image_miou": float(per_image.compute().miou),
            "curve_counts": curve.compute(),
        }
    finally:
        dist.destroy_process_group()


def test_convention_two_gloo_processes_with_uneven_shards_equal_a_single_process():
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(free_port(), results), nprocs=2, join=True)
    pred, target, scores = data()
    expected = confusion_matrix(pred, target, NUM_CLASSES, ignore_index=255)
    for rank in (0, 1):
        assert torch.equal(results[rank]["confusion"], expected)
    assert not torch.equal(results[0]["local"], expected)  # the reduction did the work
    single = semantic_metrics(pred, target, NUM_CLASSES, 255, per_image=True)
    assert results[0]["per_image_miou"] == pytest.approx(float(single.miou), abs=1e-12)
    curve = BinaryPRCurve(thresholds=20, ignore_index=255)
    curve.update(scores, (target % 2).masked_fill(target == 255, 255))
    for ours, theirs in zip(results[1]["curve_counts"], curve.compute()):
        torch.testing.assert_close(ours, theirs, equal_nan=True)

"""SurfaceMetrics and BoundaryIoU under torch.distributed (two gloo processes) equal one process."""

from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segfuse.metrics import BoundaryIoU, SurfaceMetrics

SHARDS = [(0, 1), (1, 4)]  # uneven: rank 0 gets 1 image, rank 1 gets 3


def data():
    generator = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, 4, (4, 4, 4), generator=generator)
    target = torch.nn.functional.interpolate(coarse[:, None].float(), size=(16, 16), mode="nearest")[:, 0].long()
    pred = torch.roll(target, 1, dims=2)
    target[:, :2] = 255
    return pred, target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make():
    return SurfaceMetrics(4, tolerances=(1.0,), ignore_index=255, empty="nan"), BoundaryIoU(4, boundary_width=1, ignore_index=255)


def worker(rank, port, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        pred, target = data()
        start, stop = SHARDS[rank]
        surface, boundary = make()
        surface.update(pred[start:stop], target[start:stop])
        boundary.update(pred[start:stop], target[start:stop])
        summary = surface.compute()
        results[rank] = {"hd95": summary.per_class["hd95"], "images": summary.images, "biou": boundary.compute().iou}
    finally:
        dist.destroy_process_group()


def test_convention_two_gloo_processes_with_uneven_shards_equal_a_single_process():
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(free_port(), results), nprocs=2, join=True)
    pred, target = data()
    surface, boundary = make()
    surface.update(pred, target)
    boundary.update(pred, target)
    single = surface.compute()
    for rank in (0, 1):
        torch.testing.assert_close(results[rank]["hd95"], single.per_class["hd95"], equal_nan=True)
        assert torch.equal(results[rank]["images"], single.images)
        torch.testing.assert_close(results[rank]["biou"], boundary.compute().iou, equal_nan=True)

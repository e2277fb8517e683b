"""Timing and memory of losses, forward + backward, against the installed peers.

Used by ``segfuse bench`` and ``benchmarks/``: medians of repeated runs, peak memory
of the call (CUDA: the allocator's peak; CPU: the running sum of the profiler's
allocation events), and each peer measured in the same run on the same inputs, the
implementations taking turns in every round.

CPU runs happen in a fresh process started with ``OMP_WAIT_POLICY=PASSIVE``
(:func:`run_isolated`): importing MONAI or kornia loads a second OpenMP runtime whose
busy-waiting threads otherwise compete with torch's for the cores, which made every
timing bimodal (up to 8x slower) on a 2-core machine, whichever library was timed.

Importing this module does not import torch (``segfuse bench --help`` stays instant).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

# The losses ``segfuse bench`` times, in table order, and the peers each is compared with.
LOSS_PEERS = {
    "CrossEntropyLoss": ("torch",),
    "DiceLoss": ("monai",),
    "JaccardLoss": ("monai",),
    "TverskyLoss": ("monai",),
    "GeneralizedDiceLoss": ("monai",),
    "FocalLoss": ("kornia",),
    "LovaszLoss": ("kornia",),
    "DiceCELoss": ("monai",),
}
LOSS_NAMES = tuple(LOSS_PEERS)
PEER_INSTALL = {"monai": "pip install monai", "kornia": "pip install kornia"}
# Kineto (torch.profiler's backend) writes these to fd 2 at every profile start / stop.
PROFILER_NOISE = ("USDT:", "SyncActivityProfilerHandler")


@dataclass
class Measurement:
    loss: str
    implementation: str
    median_ms: float
    peak_mb: float
    shape: tuple
    dtype: str

    def to_dict(self) -> dict:
        return asdict(self)


def unknown_losses(names) -> list[str]:
    """The names that ``segfuse bench --losses`` does not know."""
    return [name for name in names or () if name not in LOSS_PEERS]


def missing_peers(losses=None) -> dict[str, list[str]]:
    """{peer: [losses that lose that peer's row]} for each peer that is not installed."""
    missing: dict[str, list[str]] = {}
    for loss, peers in LOSS_PEERS.items():
        if losses and loss not in losses:
            continue
        for peer in peers:
            if peer in PEER_INSTALL and importlib.util.find_spec(peer) is None:
                missing.setdefault(peer, []).append(loss)
    return missing


@contextlib.contextmanager
def quiet_native_stderr(noise=PROFILER_NOISE):
    """Drop native (C++) log lines containing any of ``noise`` from fd 2 inside the block;
    every other line written to fd 2 meanwhile is passed on when the block ends."""
    fd = 2  # native code writes to fd 2 whatever sys.stderr is
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not any(marker in line for marker in noise)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward_backward(fn, logits, target, repeats: int = 5, warmup: int = 3) -> float:
    """Median milliseconds of ``fn(logits, target).backward()``."""
    return time_interleaved([fn], logits, target, repeats, warmup)[0]


def time_interleaved(fns: list, logits, target, repeats: int = 5, warmup: int = 3) -> list[float]:
    """Median milliseconds of each ``fn(logits, target).backward()``, the functions taking
    turns in every round so that they share the machine's state (load, caches)."""
    times: list[list[float]] = [[] for _ in fns]
    for round_index in range(warmup + repeats):
        for fn, samples in zip(fns, times):
            x = logits.detach().requires_grad_(True)
            _synchronize(logits.device)
            start = time.perf_counter()
            fn(x, target).backward()
            _synchronize(logits.device)
            if round_index >= warmup:
                samples.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(samples) for samples in times]


def peak_memory_mb(fn, logits, target) -> float:
    """Peak extra memory (MiB) of one forward + backward, beyond the inputs."""
    import torch

    x = logits.detach().requires_grad_(True)
    if logits.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(x, target).backward()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(x, target).backward()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    )
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak / 2**20


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _monai(name: str, **kwargs) -> Optional[Callable]:
    losses = _optional("monai.losses")
    if losses is None:
        return None
    loss = getattr(losses, name)(**kwargs)
    return lambda x, y: loss(x, y.unsqueeze(1))


def _kornia(name: str, **kwargs) -> Optional[Callable]:
    losses = _optional("kornia.losses")
    if losses is None:
        return None
    fn = getattr(losses, name)
    return lambda x, y: fn(x, y.long(), **kwargs)


def _kornia_focal(gamma: float) -> Optional[Callable]:
    """kornia's ``focal_loss(alpha=None)`` times C: kornia's mean divides by N * C * S
    (every entry of its one-hot loss tensor), segfuse's by the N * S pixels."""
    fn = _kornia("focal_loss", alpha=None, gamma=gamma, reduction="mean")
    return None if fn is None else lambda x, y: fn(x, y) * x.shape[1]


ONEHOT = dict(softmax=True, to_onehot_y=True, batch=True)


def loss_table(losses=None) -> dict[str, tuple[Callable, dict[str, Optional[Callable]]]]:
    """Each multiclass segfuse loss (or only those in ``losses``) with the peers that share
    its semantics (LOSS_PEERS); a peer that is not installed is None. Peers are imported
    only for the losses asked for.

    Each peer gives segfuse's value on the same inputs (tests/cli/test_bench.py): MONAI
    with ``softmax=True, to_onehot_y=True, batch=True``; for Jaccard segfuse's smoothing
    halved (MONAI's ratio is (2 tp + s) / (2 (tp + fp + fn) + s)); kornia's focal loss with
    ``alpha=None``, rescaled by C (its mean is over N * C * S); kornia's Lovasz softmax
    against segfuse's ``per_image=True, classes="all"``."""
    import torch

    import segfuse.functional as SF

    torch_ce = lambda x, y: torch.nn.functional.cross_entropy(x, y.long())  # noqa: E731
    builders = {
        "CrossEntropyLoss": lambda: (SF.cross_entropy, {"torch": torch_ce}),
        "DiceLoss": lambda: (SF.dice_loss, {"monai": _monai("DiceLoss", **ONEHOT)}),
        "JaccardLoss": lambda: (lambda x, y: SF.jaccard_loss(x, y, smooth=5e-6),
                                {"monai": _monai("DiceLoss", jaccard=True, **ONEHOT)}),
        "TverskyLoss": lambda: (SF.tversky_loss, {"monai": _monai("TverskyLoss", **ONEHOT)}),
        "GeneralizedDiceLoss": lambda: (SF.generalized_dice_loss, {"monai": _monai("GeneralizedDiceLoss", **ONEHOT)}),
        "FocalLoss": lambda: (SF.focal_loss, {"kornia": _kornia_focal(gamma=2.0)}),
        "LovaszLoss": lambda: (lambda x, y: SF.lovasz_loss(x, y, per_image=True, classes="all"),
                               {"kornia": _kornia("lovasz_softmax_loss")}),
        "DiceCELoss": lambda: (SF.dice_ce_loss, {"monai": _monai("DiceCELoss", **ONEHOT)}),
    }
    assert tuple(builders) == LOSS_NAMES
    return {name: build() for name, build in builders.items() if not losses or name in losses}


ISOLATED_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE", "KINETO_LOG_LEVEL": "6"}


def run_isolated(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fresh spawned process with :data:`ISOLATED_ENVIRONMENT`.

    ``fn`` must be importable (module level) and its result picklable.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    saved = {key: os.environ.get(key) for key in ISOLATED_ENVIRONMENT}
    os.environ.update({key: os.environ.get(key) or value for key, value in ISOLATED_ENVIRONMENT.items()})
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(fn, *args, **kwargs).result()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_inputs(shape, dtype=None, device="cpu", seed=0):
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    logits = torch.randn(shape, generator=generator).to(device=device, dtype=dtype or torch.float32)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator).to(device)
    return logits, target


def run_loss_bench(shape=(4, 21, 256, 256), dtype=None, device="cpu", repeats=5, losses=None,
                   memory=True, progress=None) -> list[Measurement]:
    """Time (and measure) each segfuse loss and its peers on the same inputs."""
    import torch

    unknown = unknown_losses(losses)
    if unknown:
        raise ValueError(f"unknown loss names {unknown}; valid names: {', '.join(LOSS_NAMES)}")
    dtype = dtype or torch.float32
    logits, target = make_inputs(shape, dtype, torch.device(device))
    rows = []
    for name, (ours, peers) in loss_table(losses).items():
        contenders = [(implementation, fn) for implementation, fn in [("segfuse", ours), *peers.items()] if fn]
        if progress:
            progress(f"{name}: {', '.join(implementation for implementation, _ in contenders)}")
        medians = time_interleaved([fn for _, fn in contenders], logits, target, repeats)
        for (implementation, fn), median in zip(contenders, medians):
            peak = peak_memory_mb(fn, logits, target) if memory else float("nan")
            rows.append(Measurement(name, implementation, median, peak, tuple(shape), str(dtype)))
    return rows


def run_memory_bench(shape=(1, 14, 128, 128, 128), device="cpu") -> list[Measurement]:
    """Peak memory of DiceCELoss against MONAI's on a 3D volume."""
    import torch

    import segfuse.functional as SF

    logits, target = make_inputs(shape, torch.float32, torch.device(device))
    _, peers = loss_table(["DiceCELoss"])["DiceCELoss"]
    rows = []
    for implementation, fn in [("segfuse", SF.dice_ce_loss), *peers.items()]:
        if fn is not None:
            rows.append(Measurement("DiceCELoss", implementation, float("nan"), peak_memory_mb(fn, logits, target),
                                    tuple(shape), "torch.float32"))
    return rows

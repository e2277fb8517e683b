"""segfuse.kernels.bench without a GPU: a clear error, and the table format."""

import pytest
import torch

from segfuse.kernels import bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_without_cuda_the_bench_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        bench.run_cuda_bench()


def test_format_table_renders_every_row_kind():
    rows = [
        {"case": "DiceCE fwd+bwd", "impl": "segfuse DiceCELoss (fused kernels)", "shape": "16x21x512x512",
         "dtype": "float32", "forward_ms": 0.2, "backward_ms": 0.3, "total_ms": 0.5, "floor_ms": 0.4,
         "x_floor": 1.25, "peak_extra_mib": 352.0, "grad_mib": 352.0, "vs_fused": 1.0, "copy_gbps": 2900.0,
         "device": "GPU"},
        {"case": "DiceCE fwd+bwd", "impl": "MONAI DiceCELoss", "shape": "16x21x512x512", "dtype": "float32",
         "error": "OutOfMemoryError: CUDA out of memory", "copy_gbps": 2900.0},
        {"case": "confusion update", "impl": "torch argmax + bincount", "shape": "16x21x512x512",
         "dtype": "float32", "total_ms": 1.0, "floor_ms": 0.2, "x_floor": 5.0, "bandwidth_fraction": 0.2,
         "copy_gbps": 2900.0},
    ]
    table = bench.format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| case |") and len(lines) == 2 + len(rows) + 2
    assert "1.25" in lines[2] and "352 (352)" in lines[2] and "failed: OutOfMemoryError" in lines[3]
    assert "20% of copy bw" in lines[4] and "2900 GB/s" in lines[-1]

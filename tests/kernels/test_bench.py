"""segfuse.kernels.bench without a GPU: a clear error, the table format, a missing peer
printed as a row saying why, and the whole benchmark on tiny CPU shapes (interpreter)."""

import builtins

import pytest
import torch

from segfuse.kernels import bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_without_cuda_the_bench_raises_a_clear_error():
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        bench.run_cuda_bench()


def test_the_3d_case_is_sized_beyond_the_l2():
    (_, _), (shape, dtype) = bench.DEFAULT_CASES
    nbytes = torch.Size(shape).numel() * torch.empty(0, dtype=dtype).element_size()
    assert nbytes > 2 * 60e6  # the H200's L2 is 60 MB


def test_format_table_renders_every_row_kind():
    rows = [
        {"case": "DiceCE fwd+bwd", "impl": "segfuse DiceCELoss", "shape": "16x21x512x512", "dtype": "float32",
         "kernel_total_ms": 0.3, "graph_total_ms": 0.31, "eager_forward_ms": 0.2, "eager_backward_ms": 0.3,
         "eager_total_ms": 0.5, "floor_ms": 0.4, "x_floor": 1.25, "kernels": 3, "peak_extra_mib": 352.0,
         "grad_mib": 352.0, "vs_segfuse": 1.0, "copy_gbps": 4300.0, "device": "GPU"},
        {"case": "DiceCE fwd+bwd", "impl": "MONAI DiceCELoss", "shape": "16x21x512x512", "dtype": "float32",
         "floor_ms": 0.4, "error": "missing: No module named 'monai'; pip install monai", "copy_gbps": 4300.0},
        {"case": "confusion from scores", "impl": "torch argmax + bincount (scores)", "shape": "16x21x512x512",
         "dtype": "float32", "kernel_total_ms": 1.0, "floor_ms": 0.2, "x_floor": 5.0, "bandwidth_fraction": 0.2,
         "copy_gbps": 4300.0},
    ]
    lines = bench.format_table(rows).splitlines()
    assert lines[0].startswith("| case |") and len(lines) == 2 + len(rows) + 2
    assert "1.25" in lines[2] and "352 (352)" in lines[2] and "| 3 |" in lines[2] and "0.310" in lines[2]
    assert "missing: No module named 'monai'; pip install monai" in lines[3]
    assert "20% of copy bw" in lines[4] and "4300 GB/s" in lines[-1]


def test_a_missing_monai_is_a_row_saying_why(monkeypatch):
    real_import = builtins.__import__

    def no_monai(name, *args, **kwargs):
        if name.startswith("monai"):
            raise ImportError("No module named 'monai'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_monai)
    rows = bench.dice_ce_implementations(3)
    name, fn, _, missing = rows[-1]
    assert name == "MONAI DiceCELoss" and fn is None
    assert "No module named 'monai'" in missing and "pip install monai" in missing


@pytest.mark.usefixtures("interpreted_kernels")
def test_the_whole_benchmark_runs_on_cpu():
    """Every row kind on tiny CPU shapes (the device check's --smoke uses this path)."""
    rows = bench.run_cuda_bench(shapes=[(1, 3, 8, 8)], repeats=1, device="cpu")
    implementations = [row["impl"] for row in rows]
    assert "segfuse fused_multiclass_loss" in implementations and "MONAI DiceCELoss" in implementations
    fused = next(row for row in rows if row["impl"] == "segfuse fused_multiclass_loss")
    assert fused["kernel_total_ms"] > 0 and fused["eager_total_ms"] > 0 and fused["graph_total_ms"] is None
    assert not any("error" in row for row in rows), [row.get("error") for row in rows]
    assert any(row["case"] == "confusion from class map" for row in rows)
    assert bench.format_table(rows).count("\n") >= len(rows) + 1

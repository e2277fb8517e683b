"""benchmarks/device_check.py: the whole GPU verdict script, smoke-run on CPU (every stage
under the Triton interpreter), and its verdict table from recorded results."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "device_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("device-check")
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--seed", "7"],
                            capture_output=True, text=True, cwd=ROOT, timeout=900)
    return result, out


def test_smoke_runs_every_stage(smoke):
    result, out = smoke
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    statuses = {r["stage"]: r["status"] for r in records if r["kind"] == "status"}
    assert statuses == {stage: "ok" for stage in _module().STAGES}
    kinds = {r["kind"] for r in records}
    assert {"env", "metric", "check", "dice_ce", "confusion", "registers", "matrix", "bench", "sweep"} <= kinds
    checks = [r for r in records if r["kind"] == "check"]
    assert checks and all(c["passed"] for c in checks)
    matrix = next(r for r in records if r["kind"] == "matrix")
    assert matrix["passed"] >= 1 and matrix["failed"] == 0 and matrix["seed"] == 7
    monai = [r for r in records if r["kind"] == "dice_ce" and r["impl"] == "MONAI DiceCELoss"]
    assert monai and "eager_total_ms" in monai[0]


def test_smoke_output_fits_the_device_tool(smoke):
    """At most 60 table lines printed last; at most 8 plain files under $OUT, none nested."""
    result, out = smoke
    table = result.stdout[result.stdout.index("segfuse device check"):].strip().splitlines()
    assert 20 <= len(table) <= 60
    assert table == (out / "summary.md").read_text().strip().splitlines()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.parent == out and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    assert (out / "cuda_bench.md").exists()


def _records(kernel_ms=0.30, eager_ms=0.36, monai_ms=3.0, peak=352.0, fraction=0.7):
    floor = 0.25
    base = {"stage": "performance", "kind": "dice_ce", "shape": "16x21x512x512", "dtype": "float32",
            "labels": "int64", "floor_ms": floor, "grad_mib": 352.0}
    return [
        {"stage": "env", "kind": "env", "gpu": "NVIDIA H200", "torch": "2.11", "triton": "3.6.0", "monai": "1.6.1"},
        {"stage": "env", "kind": "status", "status": "ok", "seconds": 5.0},
        {"stage": "correctness", "kind": "check", "name": "DiceCE terms float32", "passed": True,
         "errors": {"tp": 1e-7}},
        dict(base, impl="segfuse DiceCELoss", eager_total_ms=eager_ms, x_floor=eager_ms / floor, kernels=3,
             peak_extra_mib=peak, graph_total_ms=0.31),
        dict(base, impl="segfuse fused_multiclass_loss", eager_total_ms=0.33, x_floor=0.33 / floor,
             kernel_forward_ms=0.1, kernel_backward_ms=kernel_ms - 0.1, kernel_total_ms=kernel_ms),
        dict(base, impl="MONAI DiceCELoss", eager_total_ms=monai_ms, x_floor=monai_ms / floor),
        {"stage": "performance", "kind": "confusion", "case": "confusion from scores", "shape": "16x21x512x512",
         "impl": "segfuse confusion kernel (argmax fused)", "kernel_total_ms": 0.1, "bandwidth_fraction": fraction},
        {"stage": "matrix", "kind": "matrix", "seed": 1, "passed": 30, "failed": 0, "skipped": 1, "failures": []},
    ]


def test_verdicts_follow_the_goals():
    module = _module()
    table = module.summary(_records())
    assert "kernel-only forward + backward within 1.3x of the floor: PASS (1.20x" in table
    assert "DiceCELoss eager within 1.5x of the floor: PASS (1.44x" in table
    assert "at least 5x faster than MONAI: PASS (8.33x" in table
    assert "extra memory no more than the gradient (peak extra / gradient): PASS (1.00x" in table
    assert "at C=21: fraction of copy bandwidth: PASS (0.70" in table
    assert "at C=150, 90% background: fraction of copy bandwidth: NOT MEASURED" in table
    failing = module.summary(_records(kernel_ms=0.40, eager_ms=0.5, monai_ms=2.0, peak=700.0, fraction=0.3))
    assert failing.count(": FAIL (") == 5


def test_the_table_is_capped_at_60_lines():
    records = _records() + [{"stage": "correctness", "kind": "check", "name": f"check {i}", "passed": False,
                             "message": "AssertionError: x"} for i in range(100)]
    records += [{"stage": "performance", "kind": "confusion", "case": "c", "shape": f"s{i}", "impl": "i",
                 "kernel_total_ms": 1.0, "bandwidth_fraction": 0.1} for i in range(100)]
    lines = _module().summary(records).splitlines()
    assert len(lines) == 60 and lines[-1].startswith("... (")


def test_a_stage_without_time_is_skipped_and_reported(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--stages", "env", "--budget", "1", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert "skipped (no time left)" in result.stdout and "segfuse device check" in result.stdout


def test_pytest_outcomes_are_read_from_verbose_output_even_when_cut_short():
    text = ("[gw0] [ 10%] PASSED tests/kernels/test_cuda.py::test_a[x-1] \n"
            "[gw1] [ 20%] FAILED tests/kernels/test_cuda.py::test_b \n"
            "tests/kernels/test_cuda.py::test_c PASSED                     [ 30%]\n"
            "tests/kernels/test_cuda.py::test_d SKIPPED (needs two GPUs)   [ 40%]\n"
            "tests/kernels/test_cuda.py::test_e ")  # killed here
    assert _module().parse_pytest_verbose(text) == {
        "tests/kernels/test_cuda.py::test_a[x-1]": "PASSED", "tests/kernels/test_cuda.py::test_b": "FAILED",
        "tests/kernels/test_cuda.py::test_c": "PASSED", "tests/kernels/test_cuda.py::test_d": "SKIPPED"}

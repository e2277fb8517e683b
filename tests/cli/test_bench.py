"""``segfuse bench`` runs, compares against the installed peers and writes its rows; the
rough edges of issue 11 (unknown loss names, profiler noise, silent missing peers,
truncated tables, torch imported to build the parser) stay removed."""

import io
import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from segfuse import benchmarking
from segfuse.cli import bench, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_cpu_small_shape_writes_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--shape", "1,3,8,8", "--repeats", "1", "--memory-shape", "1,2,4,4,4",
                 "--losses", "DiceLoss", "DiceCELoss", "CrossEntropyLoss", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    implementations = {(row["loss"], row["implementation"]) for row in result["losses"]}
    assert {("DiceLoss", "segfuse"), ("DiceLoss", "monai"), ("CrossEntropyLoss", "torch"),
            ("DiceCELoss", "monai")} <= implementations
    for row in result["losses"]:
        assert row["median_ms"] > 0 and row["peak_mb"] >= 0
        if row["implementation"] == "segfuse":
            assert row["time_vs_segfuse"] == 1.0
    assert {row["implementation"] for row in result["memory"]} == {"segfuse", "monai"}
    assert "forward + backward" in capsys.readouterr().out


def test_bench_rejects_a_bad_shape(capsys):
    assert main(["bench", "--shape", "4,x"]) == 2
    assert "--shape must be comma-separated integers" in capsys.readouterr().err


def test_an_unknown_loss_name_exits_2_naming_the_valid_names(capsys):
    """Issue 11: `segfuse bench --losses Dice` printed an empty table and exited 0."""
    assert main(["bench", "--losses", "Dice", "--repeats", "1"]) == 2
    captured = capsys.readouterr()
    assert "'Dice'" in captured.err and "did you mean DiceLoss?" in captured.err
    assert all(name in captured.err for name in benchmarking.LOSS_NAMES)
    assert captured.out == ""


def test_the_loss_names_are_the_benchmarked_ones():
    assert tuple(benchmarking.loss_table()) == benchmarking.LOSS_NAMES


def test_no_profiler_lines_and_no_truncation_in_piped_output():
    """Issue 11: ~34 'USDT ... SyncActivityProfilerHandler' lines leaked into the output, and
    piped tables cut names ('CrossEntro…')."""
    result = subprocess.run(  # the per-loss peak memory runs torch.profiler, which printed those lines
        [sys.executable, "-m", "segfuse", "bench", "--shape", "1,3,8,8", "--repeats", "1", "--memory-shape",
         "none", "--losses", "CrossEntropyLoss"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "40"}, timeout=300)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "USDT" not in output and "SyncActivityProfilerHandler" not in output
    assert "…" not in result.stdout
    assert "CrossEntropyLoss" in result.stdout and "implementation" in result.stdout
    assert "x segfuse memory" in result.stdout


def test_quiet_native_stderr_keeps_other_lines(capfd):
    with benchmarking.quiet_native_stderr():
        os.write(2, b"USDT: profiler_start\nreal warning\nSyncActivityProfilerHandler.cpp] stop\n")
    assert capfd.readouterr().err == "real warning\n"


def _table():
    return [{"loss": "GeneralizedDiceLoss", "implementation": "segfuse", "median_ms": 123456.7,
             "time_vs_segfuse": 1.0, "peak_mb": 98765.4, "memory_vs_segfuse": 1.0},
            {"loss": "GeneralizedDiceLoss", "implementation": "monai", "median_ms": 2.5,
             "time_vs_segfuse": 0.0000203, "peak_mb": 1.0, "memory_vs_segfuse": 0.0000101}]


@pytest.mark.parametrize("terminal, width", [(False, 80), (True, 30), (True, 200)])
def test_tables_never_cut_names_or_numbers(terminal, width):
    buffer = io.StringIO()
    bench.print_table("title", _table(), Console(file=buffer, force_terminal=terminal, width=width))
    text = buffer.getvalue()
    assert "…" not in text
    for token in ("GeneralizedDiceLoss", "123456.7", "98765.4", "implementation", "x segfuse memory"):
        assert token in text, (token, text)


def test_missing_peers_are_named_with_how_to_install(monkeypatch, capsys):
    """Issue 11: peers that are not installed were dropped without a word."""
    real = benchmarking.importlib.util.find_spec
    monkeypatch.setattr(benchmarking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "kornia" else real(name, *a))
    assert benchmarking.missing_peers() == {"kornia": ["FocalLoss", "LovaszLoss"]}
    assert benchmarking.missing_peers(["DiceLoss"]) == {}
    bench.report_missing_peers(None)
    err = capsys.readouterr().err
    assert "kornia is not installed: no kornia row for FocalLoss, LovaszLoss (pip install kornia)" in err


def test_help_builds_without_importing_torch():
    """Issue 11: building the parser imported torch (seconds before --help printed)."""
    code = ("import sys, argparse; import segfuse.cli.bench as b; p = argparse.ArgumentParser(); "
            "b.add_parser(p.add_subparsers()); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("name", benchmarking.LOSS_NAMES)
def test_each_peer_row_computes_the_segfuse_value(name):
    """A peer row of `segfuse bench` times the same loss: on the bench's inputs
    (make_inputs, a small shape, float64) each peer's value and gradient equal segfuse's.
    The kornia focal row is kornia's focal_loss(alpha=None) times C (its mean is over
    N * C * S); before, alpha=1.0 weighted the classes (0, 1, 1, ...)."""
    import torch

    logits, target = benchmarking.make_inputs((2, 5, 12, 10), torch.float64, seed=3)
    ours, peers = benchmarking.loss_table([name])[name]
    assert set(peers) == set(benchmarking.LOSS_PEERS[name])
    x = logits.clone().requires_grad_(True)
    expected = ours(x, target)
    expected_grad, = torch.autograd.grad(expected, x)
    for peer, fn in peers.items():
        assert fn is not None, f"{peer} is not installed (a test dependency)"
        value = fn(x, target)
        grad, = torch.autograd.grad(value, x)
        torch.testing.assert_close(value, expected, rtol=1e-9, atol=0, msg=lambda m: f"{name} vs {peer}: {m}")
        torch.testing.assert_close(grad, expected_grad, rtol=1e-7, atol=1e-12,
                                   msg=lambda m: f"{name} gradient vs {peer}: {m}")


def test_the_cuda_bench_monai_row_computes_the_segfuse_value():
    """`segfuse bench --device cuda` times MONAI DiceCELoss against segfuse's DiceCELoss:
    the same value (Dice over the batch, batch=True) on the same inputs."""
    import torch

    from segfuse.kernels import bench as cuda_bench

    rows = {name: fn for name, fn, _, _ in cuda_bench.dice_ce_implementations(4)}
    logits, target = cuda_bench.make_inputs((2, 4, 9, 7), torch.float64, "cpu")
    torch.testing.assert_close(rows["MONAI DiceCELoss"](logits, target), rows["segfuse DiceCELoss"](logits, target),
                               rtol=1e-9, atol=0)

"""``segfuse bench`` runs, compares against the installed peers and writes its rows."""

import json

from segfuse.cli import main


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

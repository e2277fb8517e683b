"""``segfuse coco`` end to end: summary, --json, --out files, exit code 2 on bad input."""

from __future__ import annotations

import json

import pytest

from segfuse.cli import main
from tests.coco.helpers import make_dataset, reference_eval


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    gt, dt = make_dataset(0)
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dt.json").write_text(json.dumps(dt))
    return folder, gt, dt


def test_summary_and_table_printed(files, capsys):
    folder, gt, dt = files
    code = main(["coco", "--gt", str(folder / "gt.json"), "--dt", str(folder / "dt.json"), "--iou-thrs", "0.1", "0.5"])
    out = capsys.readouterr().out
    assert code == 0
    reference = reference_eval(gt, dt, "segm", [0.1, 0.5])
    assert f"Average Precision  (AP) @[ IoU=0.10:0.50 | area=   all | maxDets=100 ] = {reference.stats[0]:0.3f}" in out
    assert "IoU=0.10      | area=   all | maxDets=100 ]" in out
    assert "Per-category AP" in out and "c1" in out


def test_json_output_parses(files, capsys):
    folder, gt, dt = files
    code = main(["coco", "--gt", str(folder / "gt.json"), "--dt", str(folder / "dt.json"), "--json",
                 "--iou-type", "bbox", "--max-dets", "1", "10", "100"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    reference = reference_eval(gt, dt, "bbox")
    assert payload["stats"]["AP"] == pytest.approx(reference.stats[0], abs=1e-9)
    assert payload["iou_type"] == "bbox"


def test_out_writes_results_and_plots(files, tmp_path, capsys):
    folder, _, _ = files
    out = tmp_path / "report"
    code = main(["coco", "--gt", str(folder / "gt.json"), "--dt", str(folder / "dt.json"), "--iou-thrs", "0.5", "0.75",
                 "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["pr_AP50.png", "pr_AP75.png", "results.json"]
    assert (out / "pr_AP50.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "AP50" in json.loads((out / "results.json").read_text())["stats"]


def test_bad_file_exits_2_with_one_line(files, tmp_path, capsys):
    folder, _, dt = files
    broken = tmp_path / "broken.json"
    broken.write_text("[{\"image_id\": 12345, \"category_id\": 1, \"score\": 0.5, \"bbox\": [0, 0, 1, 1]}]")
    code = main(["coco", "--gt", str(folder / "gt.json"), "--dt", str(broken), "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "wrong dataset" in err
    assert not (tmp_path / "never").exists()
    assert main(["coco", "--gt", str(tmp_path / "nope.json"), "--dt", str(broken)]) == 2


def test_python_m_segfuse_coco_runs(files):
    import subprocess
    import sys

    folder, _, _ = files
    done = subprocess.run([sys.executable, "-m", "segfuse", "coco", "--gt", str(folder / "gt.json"), "--dt",
                           str(folder / "dt.json"), "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stats" in json.loads(done.stdout)

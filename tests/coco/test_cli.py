"""``segfuse coco`` end to end: summary, tables, --json, --out report, modes, exit codes 2 and 130."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from segfuse.cli import main
from tests.coco.helpers import coco100, make_dataset, make_lvis_dataset, reference_eval


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    gt, dt = make_dataset(0)
    gt["categories"][0]["name"] = "a category name much longer than a narrow terminal column"
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dt.json").write_text(json.dumps(dt))
    return folder, gt, dt


def coco_args(folder, *extra):
    return ["coco", "--gt", str(folder / "gt.json"), "--dt", str(folder / "dt.json"), *extra]


def test_summary_and_table_printed(files, capsys):
    folder, gt, dt = files
    code = main(coco_args(folder, "--iou-thrs", "0.1", "0.5"))
    out = capsys.readouterr().out
    assert code == 0
    reference = reference_eval(gt, dt, "segm", [0.1, 0.5])
    assert f"Average Precision  (AP) @[ IoU=0.10:0.50 | area=   all | maxDets=100 ] = {reference.stats[0]:0.3f}" in out
    assert "IoU=0.10      | area=   all | maxDets=100 ]" in out
    assert "Per category" in out and "c2" in out and "score thr" in out
    assert "one score threshold" in out


def test_max_dets_without_100_prints_the_ap_at_the_largest_cap(files, capsys):
    """Regression (issue 11, item 5): the headline read maxDets=100 = -1.000 while per-category AP was defined."""
    folder, gt, dt = files
    assert main(coco_args(folder, "--max-dets", "1", "5")) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert "maxDets=  5 ]" in first and not first.endswith("-1.000")
    assert "hard-codes maxDets=100" in out


def test_python_m_segfuse_coco_never_truncates_when_piped_or_narrow(files):
    """Regression (issue 11): piped or narrow output cut cells to '0.…' and names to 'a categ…'."""
    folder, gt, _ = files
    env = dict(os.environ, COLUMNS="40")
    done = subprocess.run([sys.executable, "-m", "segfuse", *coco_args(folder)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    assert "a category name much longer than a narrow terminal column" in done.stdout
    row = next(line for line in done.stdout.splitlines() if "much longer" in line)
    assert row.count("0.") + row.count("1.000") >= 4  # AP, AP50, AP75, P... printed in full


def test_json_output_parses(files, capsys):
    folder, gt, dt = files
    code = main(coco_args(folder, "--json", "--iou-type", "bbox", "--max-dets", "1", "10", "100"))
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    reference = reference_eval(gt, dt, "bbox")
    assert payload["stats"]["AP"] == pytest.approx(reference.stats[0], abs=1e-9)
    assert payload["iou_type"] == "bbox" and payload["analysis"]["iou_threshold"] == 0.5


def test_out_writes_the_report_readable_by_others(files, tmp_path, capsys):
    """Regression (issue 11): --out files were created 0600; they get open()'s 0666 minus the umask."""
    folder, gt, _ = files
    out = tmp_path / "report"
    assert main(coco_args(folder, "--out", str(out))) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["results.json", "per_class.csv", "detections.csv", "ground_truths.csv", "pr_curves.csv",
                            "f1_confidence.csv", "pr_curves.png", "pr_per_class.png", "f1_confidence.png"])
    umask = os.umask(0)
    os.umask(umask)
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert (out / "pr_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads((out / "results.json").read_text())
    with (out / "detections.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(json.loads((folder / "dt.json").read_text()))
    assert {r["outcome"] for r in rows} <= {"tp", "fp", "ignored", "not_evaluated"}
    with (out / "per_class.csv").open() as handle:
        per_class = list(csv.DictReader(handle))
    assert len(per_class) == len(gt["categories"]) == len(document["analysis"]["per_class"])
    assert main(coco_args(folder, "--out", str(out), "--no-plots")) == 0  # an existing folder is updated


@pytest.mark.parametrize("extra", [["--lvis"], ["--iou-type", "boundary"], ["--class-agnostic"],
                                   ["--image-ids", "1,2,3", "--category-ids", "1 2"], ["--min-score", "0.5"]])
def test_modes(files, extra, tmp_path, capsys):
    folder, _, _ = files
    if extra == ["--lvis"]:
        gt, dt = make_lvis_dataset(1, n_images=6)
        (tmp_path / "gt.json").write_text(json.dumps(gt))
        (tmp_path / "dt.json").write_text(json.dumps(dt))
        folder = tmp_path
    assert main(coco_args(folder, *extra)) == 0
    out = capsys.readouterr().out
    if extra == ["--lvis"]:
        assert "catIds=  r ]" in out and "maxDets=300" in out


def test_bad_input_exits_2_with_one_line(files, tmp_path, capsys):
    folder, _, dt = files
    broken = tmp_path / "broken.json"
    broken.write_text("[{\"image_id\": 12345, \"category_id\": 1, \"score\": 0.5, \"bbox\": [0, 0, 1, 1]}]")
    code = main(["coco", "--gt", str(folder / "gt.json"), "--dt", str(broken), "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "wrong dataset" in err
    assert not (tmp_path / "never").exists()
    assert main(["coco", "--gt", str(tmp_path / "nope.json"), "--dt", str(broken)]) == 2
    (tmp_path / "file").write_text("x")
    assert main(coco_args(folder, "--out", str(tmp_path / "file"))) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(coco_args(folder, "--image-ids", "1,x")) == 2
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if not os.access(locked, os.W_OK):  # root can write anywhere
        assert main(coco_args(folder, "--out", str(locked / "report"))) == 2
        assert "is not writable" in capsys.readouterr().err
    assert main(coco_args(folder, "--analysis-iou", "0.3")) == 2


INTERRUPTED_CHILD = """
import pathlib, sys, time
from segfuse.coco import _pipeline
marker = pathlib.Path(sys.argv.pop())
real = _pipeline.match_images
def slow(*args, **kwargs):
    marker.touch()  # a worker has started
    time.sleep(60)
    return real(*args, **kwargs)
_pipeline.match_images = slow
from segfuse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _as_from_a_terminal() -> None:
    """The child starts with Ctrl-C's default action, as from a terminal, even where the test run itself was
    started in the background with SIGINT ignored (an ignored signal is inherited, and Python then keeps it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_prints_one_line_and_exits_130(files, tmp_path):
    """Regression (issue 11): Ctrl-C printed tracebacks from the main process and every worker."""
    folder, _, _ = files
    started = tmp_path / "started"
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED_CHILD, *coco_args(folder, "--workers", "2"),
                              str(started)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=_as_from_a_terminal)
    deadline = time.monotonic() + 240
    while not started.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(child.pid, signal.SIGINT)  # as a terminal does: the whole process group
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err == "segfuse: interrupted\n"


def test_real_coco100_report(tmp_path, capsys):
    gt, dt = coco100()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    assert main(coco_args(tmp_path, "--out", str(tmp_path / "report"))) == 0
    out = capsys.readouterr().out
    assert "traffic light" in out and "toothbrush" in out

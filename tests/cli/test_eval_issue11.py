"""Regression tests for issue 11's ``segfuse eval`` and CLI-wide defects (each failed before its fix)."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segfuse.cli.eval_pairs as eval_pairs
import segfuse.cli.io_masks as io_masks
from segfuse.cli import main
from tests.cli.test_eval import NUM_CLASSES, make_folders, run_eval

REPO = Path(__file__).resolve().parents[2]


def mmseg_intersect_and_union(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int):
    """mmseg 1.x ``IoUMetric.intersect_and_union`` (mmseg/evaluation/metrics/iou_metric.py), ported with torch.histc."""
    pred, label = torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(label.astype(np.int64))
    mask = label != ignore_index
    pred, label = pred[mask], label[mask]
    intersect = pred[pred == label]
    histc = lambda x: torch.histc(x.float(), bins=num_classes, min=0, max=num_classes - 1)  # noqa: E731
    area_intersect, area_pred, area_label = histc(intersect), histc(pred), histc(label)
    return area_intersect, area_pred + area_label - area_intersect, area_pred, area_label


def test_defect_4_ignore_valued_predictions_are_misses_like_mmseg(tmp_path, capsys):
    gt_dir, pred_dir, gts, preds = make_folders(tmp_path, count=3, seed=4)
    rng = np.random.default_rng(4)
    for i in range(3):  # "no decision" pixels in the predictions
        preds[i][rng.random(preds[i].shape) < 0.15] = 255
        Image.fromarray(preds[i], mode="L").save(pred_dir / f"img{i}.png")
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--json") == 0  # no --num-classes
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["num_classes"] == NUM_CLASSES  # never inferred from the ignore value
    sums = [sum(parts) for parts in zip(*(mmseg_intersect_and_union(p, g, NUM_CLASSES, 255) for p, g in zip(preds, gts)))]
    intersect, union, _, label = (area.double() for area in sums)  # histc counts are exact in float32
    iou = (intersect / union).tolist()
    assert [document["per_class"][str(c)]["iou"] for c in range(NUM_CLASSES)] == pytest.approx(iou, abs=1e-12)
    assert document["metrics"]["acc"] == pytest.approx(float(intersect.sum() / label.sum()), abs=1e-12)
    misses = int(((preds == 255) & (gts != 255)).sum())
    assert misses > 0 and document["unpredicted_pixels"] == misses
    assert f"{misses} prediction pixels hold the ignore value 255: counted as misses" in captured.err
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--num-classes", NUM_CLASSES, "--json") == 0  # no error
    assert json.loads(capsys.readouterr().out)["confusion_matrix"] == document["confusion_matrix"]


def test_defect_6_masks_above_the_bomb_limit_read_without_warning(tmp_path, monkeypatch, capsys):
    from PIL import Image as PILImage

    gt_dir, pred_dir, _, _ = make_folders(tmp_path, count=2)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # 24 x 32 masks are > 2x this "bomb" limit
    monkeypatch.setattr(io_masks, "_pyspng", lambda: None)  # Pillow decodes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--workers", 0, "--json") == 0
    assert "error" not in capsys.readouterr().err
    assert PILImage.MAX_IMAGE_PIXELS == 100  # the limit is restored for everything else


def test_class_names_file_bom_and_count_mismatch_name_the_option(tmp_path, capsys):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    names = tmp_path / "names.txt"
    names.write_bytes("\ufeffsky\nroad\ncar\nperson\n".encode("utf-8"))
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--class-names", names, "--json") == 0
    assert json.loads(capsys.readouterr().out)["class_names"] == ["sky", "road", "car", "person"]
    names.write_text("sky\nroad\ncar\n")
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--class-names", names, "--json") == 2
    error = capsys.readouterr().err
    assert f"C = 3 from --class-names {names} (3 names)" in error and "holds labels [3]" in error
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--class-names", tmp_path / "missing.txt") == 2
    assert "missing.txt: --class-names file not found" in capsys.readouterr().err


def test_tables_never_cut_names_or_numbers_when_piped(tmp_path, capsys):
    gt_dir, pred_dir, gts, preds = make_folders(tmp_path)
    names = [f"ade_class_name_number_{c}_with_a_long_tail" for c in range(NUM_CLASSES)]
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--class-names", ",".join(names), "--beta", 2,
                    "--out", tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "…" not in out
    for name in names:
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert len(row.split()) == 7 and all(cell.replace(".", "").isdigit() for cell in row.split()[1:])
    assert "F2" in out.splitlines()[1]  # beta != 1: the F-beta column is shown


def _as_from_a_terminal() -> None:
    """The child starts with Ctrl-C's default action, as from a terminal, even where the test run itself was
    started in the background with SIGINT ignored (an ignored signal is inherited, and Python then keeps it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_in_the_main_process_prints_one_line_and_exits_130(tmp_path, capsys, monkeypatch):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(eval_pairs, "count_pair", interrupted)
    assert main(["eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--workers", "0", "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err == "segfuse: interrupted\n"
    assert not (tmp_path / "r").exists()


def test_ctrl_c_with_workers_prints_one_line_and_exits_130(tmp_path):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path, count=40)
    code = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
import segfuse.cli.eval_pairs as eval_pairs
slow = eval_pairs.count_pair
def count_pair(*args):
    time.sleep(0.5)
    return slow(*args)
eval_pairs.count_pair = count_pair
from segfuse.cli import main
print("started", flush=True)
sys.exit(main(["eval", "--gt", {str(gt_dir)!r}, "--pred", {str(pred_dir)!r}, "--workers", "2", "--out", {str(tmp_path / "r")!r}]))
"""
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=_as_from_a_terminal)
    assert process.stdout.readline().strip() == "started"
    time.sleep(1.5)  # the workers are reading
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["segfuse: interrupted"], stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("make_out", ["file", "under_a_file"])
def test_out_that_cannot_be_written_fails_before_reading(tmp_path, capsys, monkeypatch, make_out):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    out = tmp_path / "taken" if make_out == "file" else tmp_path / "taken" / "report"

    def no_reading(*args, **kwargs):
        raise AssertionError("masks were read before --out was checked")

    monkeypatch.setattr("segfuse.cli.eval.read_pairs", no_reading)
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--out", out) == 2
    assert str(out) in capsys.readouterr().err


def test_workers_0_reads_in_process_and_small_sets_start_no_process(tmp_path, capsys, monkeypatch):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    pairs = io_masks.pair_masks(gt_dir, pred_dir).pairs
    assert eval_pairs.default_workers(pairs=pairs) == 0  # a few kB of masks: processes would cost more than they save

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(eval_pairs.multiprocessing, "get_context", no_pool)
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--workers", 0, "--json") == 0
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--json") == 0  # the default, for this small set


def test_default_workers_never_exceed_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(eval_pairs, "usable_cores", lambda: 2)
    monkeypatch.setattr(eval_pairs, "BYTES_PER_WORKER", 1)
    gt_dir, pred_dir, _, _ = make_folders(tmp_path, count=8)
    assert eval_pairs.default_workers(pairs=io_masks.pair_masks(gt_dir, pred_dir).pairs) == 2


def test_npy_masks_with_a_singleton_channel_are_accepted(tmp_path, capsys):
    rng = np.random.default_rng(5)
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    gt = rng.integers(0, 3, (1, 8, 9))
    pred = rng.integers(0, 3, (8, 9, 1))
    np.save(tmp_path / "gt" / "a.npy", gt)
    np.save(tmp_path / "pred" / "a.npy", pred)
    assert run_eval("--gt", tmp_path / "gt", "--pred", tmp_path / "pred", "--num-classes", 3, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    expected = np.zeros((3, 3), dtype=int)
    np.add.at(expected, (gt[0].ravel(), pred[..., 0].ravel()), 1)
    assert document["confusion_matrix"] == expected.tolist()


def _fresh_python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["eval", "--help"]])
def test_version_and_help_do_not_import_torch(argv):
    code = f"""
import contextlib, io, sys
from segfuse.cli import main
with contextlib.redirect_stdout(io.StringIO()) as text:
    try:
        main({argv!r})
    except SystemExit:
        pass
print("torch" in sys.modules, "matplotlib" in sys.modules, "eval" in text.getvalue() or "segfuse 0" in text.getvalue())
"""
    assert _fresh_python(code).split() == ["False", "False", "True"]


def test_eval_on_the_sample_imports_neither_torch_nor_matplotlib(tmp_path):
    code = f"""
import contextlib, io, sys
from segfuse.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["eval", "--out", {str(tmp_path / "r")!r}])
print(code, "torch" in sys.modules, "matplotlib" in sys.modules)
"""
    assert _fresh_python(code).split() == ["0", "False", "False"]


class _Terminal:
    """A stdout stand-in that says it is a terminal."""

    def __init__(self):
        import io

        self.buffer = io.StringIO()

    def isatty(self):
        return True

    def write(self, text):
        return self.buffer.write(text)

    def flush(self):
        pass


@pytest.mark.parametrize("columns", [40, 200])
def test_tables_in_a_terminal_are_drawn_when_they_fit_and_plain_when_narrow(monkeypatch, columns):
    import shutil

    from segfuse.cli.eval_table import print_scores
    from segfuse.metrics.scores import semantic_scores

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((columns, 24)))
    counts = np.array([[5, 1, 0], [2, 7, 1]])  # (C, C + 1): the last column holds the misses
    scores = semantic_scores(counts[:, :2], class_names=["a_class_with_a_long_name", "b"], misses=counts[:, 2])
    terminal = _Terminal()
    print_scores(scores, stream=terminal)
    text = terminal.buffer.getvalue()
    assert "a_class_with_a_long_name" in text and "…" not in text
    assert ("┃" in text) == (columns == 200)  # rich's box when it fits, plain rows otherwise

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from segfuse.cli import main
from tests.cli.test_eval import make_folders

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_convention_torchrun_eval_equals_a_single_process(tmp_path):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path, count=5)  # 5 files: uneven shards 3 + 2
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    common = ["--gt", str(gt_dir), "--pred", str(pred_dir), "--per-image", "--workers", "1"]
    assert main(["eval", *common, "--out", str(single)]) == 0
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "segfuse", "eval", *common, "--out", str(sharded),
    ]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    ours, theirs = (json.loads((path / "metrics.json").read_text()) for path in (sharded, single))
    assert ours["processes"] == 2 and theirs["processes"] == 1
    assert ours["confusion_matrix"] == theirs["confusion_matrix"]
    assert ours["num_images"] == theirs["num_images"] == 5
    for name, value in theirs["metrics"].items():
        assert abs(ours["metrics"][name] - value) < 1e-12, name
    with (sharded / "per_image.csv").open() as a, (single / "per_image.csv").open() as b:
        assert list(csv.DictReader(a)) == list(csv.DictReader(b))


def test_torchrun_bad_input_exits_2_on_every_rank(tmp_path):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path, count=4)
    (pred_dir / "img3.png").write_bytes(b"not a png")  # only rank 1 reads it
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        "-m", "segfuse", "eval", "--gt", str(gt_dir), "--pred", str(pred_dir), "--workers", "1",
        "--out", str(tmp_path / "report"),
    ]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode != 0
    assert f"{pred_dir / 'img3.png'}: cannot read the PNG" in finished.stderr
    assert not (tmp_path / "report").exists()

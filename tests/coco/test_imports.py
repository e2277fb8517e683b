"""Process-level behaviour of the COCO path, in fresh processes: no torch import (``import segfuse.coco``, the
``coco`` subcommand), and which evaluation loads the compiled kernels."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.coco.helpers import make_dataset


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_segfuse_coco_does_not_import_torch():
    done = run_python("import sys, segfuse.coco, segfuse.coco.report; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def write_dataset(tmp_path, n_images: int) -> None:
    gt, dt = make_dataset(0, n_images=n_images)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))


def test_coco_subcommand_does_not_import_torch(tmp_path):
    write_dataset(tmp_path, 4)
    code = (
        "import argparse, sys\n"
        "from segfuse.cli import coco\n"
        "parser = argparse.ArgumentParser(); coco.add_parser(parser.add_subparsers())\n"
        f"args = parser.parse_args(['coco', '--gt', {str(tmp_path / 'gt.json')!r}, '--dt', {str(tmp_path / 'dt.json')!r},"
        f" '--out', {str(tmp_path / 'out')!r}, '--json'])\n"
        "code = args.run(args)\n"
        "print('TORCH', 'torch' in sys.modules, code, file=sys.stderr)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "TORCH False 0" in done.stderr
    assert (tmp_path / "out" / "pr_curves.png").is_file()


def test_convention_a_small_first_evaluation_runs_on_numpy_and_later_ones_compiled(tmp_path):
    pytest.importorskip("numba")
    write_dataset(tmp_path, 3)
    call = f"evaluate({str(tmp_path / 'gt.json')!r}, {str(tmp_path / 'dt.json')!r}, 'bbox')"
    code = (
        "import sys\n"
        "from segfuse.coco import _pipeline, evaluate\n"
        "print(_pipeline.kernels(_pipeline.FIRST_CALL_WORK - 1) is None, 'numba' in sys.modules)\n"
        f"first = {call}\n"
        "print(type(first._curves).__name__, 'numba' in sys.modules)\n"
        f"second = {call}\n"
        "print(type(second._curves).__name__, 'numba' in sys.modules, first.stats == second.stats)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[:3] == ["True False", "Curves False", "CompiledCurves True True"]  # the same stats, to the bit
    # a first evaluation large enough to repay the load takes the kernels at once
    done = run_python("from segfuse.coco import _pipeline; print(_pipeline.kernels(_pipeline.FIRST_CALL_WORK) is None)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"

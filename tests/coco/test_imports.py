"""The COCO path never imports torch: ``import segfuse.coco`` and the ``coco`` subcommand, in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.coco.helpers import make_dataset


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_segfuse_coco_does_not_import_torch():
    done = run_python("import sys, segfuse.coco, segfuse.coco.report; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_coco_subcommand_does_not_import_torch(tmp_path):
    gt, dt = make_dataset(0, n_images=4)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
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

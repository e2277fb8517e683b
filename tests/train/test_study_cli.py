"""``segfuse study`` from the command line: a fresh default folder, Ctrl-C and resume, plots, progress."""

import io
import json

import pytest

from segfuse.cli import main

TINY = ["--tasks", "standard", "--losses", "ce", "--lrs", "0.01,0.03", "--seeds", "0,1", "--tuning-seeds", "0",
        "--train-samples", "16", "--val-samples", "8", "--test-samples", "8", "--image-size", "32",
        "--crop-size", "16", "--batch-size", "8", "--base-channels", "4", "--depth", "1", "--budgets", "3",
        "--max-epochs", "5", "--decay-epochs", "1", "--patience", "2", "--jobs", "1", "--no-progress"]


def test_the_default_output_is_a_fresh_folder_never_the_committed_study(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "benchmarks" / "loss-study"
    committed.mkdir(parents=True)
    (committed / "runs.jsonl").write_text('{"key": "ce", "seed": 0}\n')
    assert main(["study", *TINY]) == 0
    assert main(["study", *TINY]) == 0
    assert (committed / "runs.jsonl").read_text() == '{"key": "ce", "seed": 0}\n'
    assert sorted(path.name for path in committed.iterdir()) == ["runs.jsonl"]
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(folder.name.startswith("study-") for folder in folders)
    assert all(len((folder / "runs.jsonl").read_text().splitlines()) == 3 for folder in folders)
    out = capsys.readouterr().out
    assert out.count("segfuse study: writing to runs/study-") == 2 and "reusing" not in out


def test_ctrl_c_prints_one_line_exits_130_and_the_printed_command_resumes(tmp_path, monkeypatch, capsys):
    import shlex

    from segfuse.train import study_run

    calls, run_one = [], study_run.run_one

    def interrupted_at_the_third_run(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run_one(*args, **kwargs)

    monkeypatch.setattr(study_run, "run_one", interrupted_at_the_third_run)
    out = tmp_path / "study"
    try:
        code = main(["study", "--out", str(out), *TINY])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped segfuse study")
    assert code == 130
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and f"2 finished runs are saved in {out}/runs.jsonl" in error
    command = error.split("to resume, run: ")[1]
    assert command.startswith(f"segfuse study --out {out} --tasks standard --losses ce --lrs 0.01,0.03")
    monkeypatch.setattr(study_run, "run_one", run_one)
    assert main(shlex.split(command)[1:] + ["--jobs", "1", "--no-progress"]) == 0
    assert f"reusing 2 of 3 runs from {out}/runs.jsonl" in capsys.readouterr().out
    assert len((out / "runs.jsonl").read_text().splitlines()) == 3


def test_a_folder_with_other_settings_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["study", "--out", str(out), *TINY, "--max-epochs", "6"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "other settings (max_epochs 5 there, 6 now)" in error


def test_every_epoch_axis_has_integer_ticks(tmp_path, monkeypatch):
    from segfuse.train import study_plots

    ticks, save = [], study_plots._save

    def record(figure, path):
        for axes in figure.axes:
            low, high = axes.get_xlim()
            ticks.append([tick for tick in axes.get_xticks() if low <= tick <= high])
        save(figure, path)

    monkeypatch.setattr(study_plots, "_save", record)
    assert main(["study", "--out", str(tmp_path), *TINY]) == 0
    assert len(ticks) == 2 * 2 and all(len(axis) >= 2 for axis in ticks)
    assert all(float(tick).is_integer() for axis in ticks for tick in axis), ticks


def test_the_progress_bar_counts_finished_runs():
    from rich.console import Console

    from segfuse.train.progress import StudyProgress

    text = io.StringIO()
    with StudyProgress(144, console=Console(file=text, width=80), initial=3) as bar:
        bar.tick("standard CE lr 0.01 seed 3", 12)
        bar.finish("standard CE lr 0.01 seed 3")
    assert "4/144" in text.getvalue() and "eta" in text.getvalue()


def test_settings_json_records_the_grid(tmp_path):
    assert main(["study", "--out", str(tmp_path), *TINY]) == 0
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["lrs"] == [0.01, 0.03] and settings["seeds"] == [0, 1] and settings["crop_size"] == 16

from pathlib import Path

import pytest

from segfuse.report.files import staged_folder, write_file_atomically, write_folder_atomically


def test_folder_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_folder_atomically(out, {"a.txt": b"1", "b.txt": b"2"})
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    (out / "keep.txt").write_bytes(b"mine")
    write_folder_atomically(out, {"a.txt": b"3"})
    assert (out / "a.txt").read_bytes() == b"3" and (out / "keep.txt").read_bytes() == b"mine"
    original = Path.write_bytes
    calls = []

    def failing(self, data):
        calls.append(self.name)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)
    with pytest.raises(OSError, match="disk full"):
        write_folder_atomically(out, {"a.txt": b"4", "b.txt": b"5"})
    monkeypatch.undo()
    assert (out / "a.txt").read_bytes() == b"3" and (out / "b.txt").read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_file_replaces_atomically_and_refuses_a_file_as_folder(tmp_path):
    path = write_file_atomically(tmp_path / "x" / "page.html", b"<html>")
    assert path.read_bytes() == b"<html>" and oct(path.stat().st_mode & 0o777) != oct(0o600)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        write_folder_atomically(tmp_path / "file", {"a": b""})


def test_stale_names_are_removed_only_when_this_set_does_not_write_them(tmp_path):
    out = write_folder_atomically(tmp_path / "out", {"a.png": b"1", "b.png": b"2", "notes.txt": b"mine"})
    write_folder_atomically(out, {"a.png": b"3"}, stale=("a.png", "b.png"))
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "notes.txt"]  # b.png gone, notes.txt kept
    assert (out / "a.png").read_bytes() == b"3"
    with pytest.raises(RuntimeError):
        with staged_folder(out, stale=("a.png",)) as staging:
            (staging / "c.png").write_bytes(b"4")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "notes.txt"]  # nothing moved, nothing removed

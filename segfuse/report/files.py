"""Writing report files so that a failed run leaves nothing half-written.

Convention:
    A single file is written to a temporary name in its folder and renamed into place
    (``os.replace``, atomic on one file system). A set of files is written into a fresh
    temporary folder beside the target; a new target folder is then renamed into place,
    an existing one receives each file by ``os.replace``. Other files in it are kept, except
    those named ``stale`` (an earlier run's files that this run does not write, such as a
    plot that would not match the new numbers), which are removed. On an error nothing moves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping


def _use_umask(path: Path, mode: int) -> None:
    """mkstemp / mkdtemp create private entries (0600 / 0700); give the ones open/mkdir would."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, mode & ~mask)


def write_file_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        _use_umask(Path(temporary), 0o666)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def staged_folder(out: Path, stale: Iterable[str] = ()) -> Iterator[Path]:
    """A fresh folder beside ``out`` to write a set of files into; they go into ``out`` when
    the block ends without an error (see the module Convention)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _use_umask(staging, 0o777)
        yield staging
        if not out.exists():
            os.rename(staging, out)
            return
        written = {path.name for path in staging.iterdir()}
        for name in written:
            os.replace(staging / name, out / name)
        for name in set(stale) - written:
            (out / name).unlink(missing_ok=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_folder_atomically(out: Path, files: Mapping[str, bytes], stale: Iterable[str] = ()) -> Path:
    """Write ``{name: data}`` into the folder ``out``, all or nothing; remove the ``stale``
    names this set does not hold (see the module Convention)."""
    with staged_folder(out, stale) as staging:
        for name, data in files.items():
            (staging / name).write_bytes(data)
    return Path(out)

"""Writing report files so that a failed run leaves nothing half-written.

Convention:
    A single file is written to a temporary name in its folder and renamed into place
    (``os.replace``, atomic on one file system). A set of files is written into a fresh
    temporary folder beside the target; a new target folder is then renamed into place,
    an existing one receives each file by ``os.replace`` (other files in it are kept).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping


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


def write_folder_atomically(out: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``{name: data}`` into the folder ``out``, all or nothing (see the module Convention)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _use_umask(staging, 0o777)
        for name, data in files.items():
            (staging / name).write_bytes(data)
        if not out.exists():
            os.rename(staging, out)
            return out
        for name in files:
            os.replace(staging / name, out / name)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out

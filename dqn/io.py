"""Atomic file and folder writes: a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_dir_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp)`` on a new folder beside ``final``, then rename it into place.

    A failure (or Ctrl-C) while filling removes the temporary folder and leaves any previous
    ``final`` untouched: a reader never sees half a folder.
    """
    final = Path(final)
    tmp = fresh_tmp_dir(final)
    try:
        fill(tmp)
        commit_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def fresh_tmp_dir(final: Path) -> Path:
    """A new empty folder beside ``final``, to fill and then ``commit_dir`` into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def commit_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place, replacing any previous folder at ``final``.

    A file at ``final`` is refused (NotADirectoryError), not replaced: no caller means to swap
    a file for a folder, and the file would be lost (it used to be left as ``.<name>.old``).
    """
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise NotADirectoryError(f"{final} exists and is not a folder; not replaced")
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)

"""The benchmark scripts' command lines: a usage error is one line (exit 2), as the dqn
commands' are, and a count or a duration that must be positive is refused there, not by a
traceback from a worker minutes later."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse named as the script is run (``python -m benchmarks.bench``, not ``bench.py``),
    described by its docstring's first paragraph, with a usage error in one line naming the
    problem and ``--help``: argparse's own prints the whole usage first, 2 to 5 lines."""

    def __init__(self, file: str, doc: str | None, **kwargs) -> None:
        prog = f"python -m benchmarks.{Path(file).stem}"
        kwargs.setdefault("allow_abbrev", False)  # --seed is not --seeds, as in the commands
        super().__init__(prog=prog, description=(doc or "").split("\n\n")[0], **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def out_problem(path: Path, option: str = "--out") -> str | None:
    """Why the file ``path`` could not be written at the end of a run, or None: checked before
    the run, by making a file (removed again) in the nearest folder of ``path`` that exists,
    since a folder that exists can still refuse files (read-only, /proc) and the table or rows
    would be lost after the whole run. No folder is made: a refused or failed run leaves none
    behind; the write at the end makes the missing ones."""
    if path.is_dir():
        return f"{option} {path} is a folder; give the file to write"
    # lexists, not exists: a folder that cannot be looked into raises no traceback here; the
    # file made in its parent then names the problem.
    folder = next(p for p in path.parents if os.path.lexists(p))
    if not folder.is_dir():  # the write would make folders under a file
        return f"cannot write {option} {path}: {folder} is not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as exc:
        return (
            f"cannot write {option} {path}: no file can be made in {folder} "
            f"({exc.strerror}); give {option} in a folder you can write"
        )
    return None

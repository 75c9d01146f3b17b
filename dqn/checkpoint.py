"""The run folder on disk: ``checkpoints/step-<env_step:09d>/`` folders, their manifests, pruning.

No TensorFlow here: what goes into a checkpoint is the caller's business (see
``dqn.run_state``); this module makes writing one atomic and reading one safe.

- A checkpoint is filled in a hidden temporary folder beside its final name and renamed into
  place, so a crash (even SIGKILL) leaves either the old set of checkpoints or the new one.
- ``manifest.json`` is written last and lists the sha256 of every other file. A checkpoint
  without a manifest, with a missing or extra file or a checksum mismatch is not "good"; resume
  falls back to the newest good one.
- Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from dqn.config import DQNConfig
from dqn.errors import CheckpointError, CheckpointWarning
from dqn.io import atomic_write_text, write_dir_atomically

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step-(\d{9})$")
_FORMAT_VERSION = 1


def make_run_dir(config: DQNConfig) -> Path:
    """A new folder ``output_dir/<env>-<loss>-seed<k>-<timestamp>`` (OSError if impossible)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    name = f"{config.env_id.replace('/', '_')}-{config.loss}-seed{config.seed}-{stamp}"
    path = Path(config.output_dir) / name
    path.mkdir(parents=True, exist_ok=False)
    return path


def checkpoint_dir(run_dir: Path, env_step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{env_step:09d}"


def checkpoint_step(path: Path) -> int:
    match = _STEP_DIR.match(Path(path).name)
    if match is None:
        raise CheckpointError(f"{path} is not a checkpoint folder (expected step-<env_step>)")
    return int(match.group(1))


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders of a run, newest first (temporary and set-aside folders excluded)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(found, key=checkpoint_step, reverse=True)


# ---------------------------------------------------------------------- writing
def write_checkpoint(run_dir: Path, env_step: int, fill: Callable[[Path], None], keep: int) -> Path:
    """Call ``fill(tmp_folder)``, add the manifest, rename into place, prune to ``keep``."""

    def fill_and_sign(folder: Path) -> None:
        fill(folder)
        write_manifest(folder, env_step)  # last: a folder with a manifest is complete

    final = write_dir_atomically(checkpoint_dir(run_dir, env_step), fill_and_sign)
    for old in list_checkpoints(run_dir)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_manifest(folder: Path, env_step: int) -> None:
    files = {rel: _sha256(folder / rel) for rel in _files(folder)}
    manifest = {"format_version": _FORMAT_VERSION, "env_step": env_step, "sha256": files}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1))


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------- reading
def verify_checkpoint(folder: Path) -> None:
    """Raise CheckpointError saying what is wrong unless every file matches the manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        expected = dict(manifest["sha256"])
    except FileNotFoundError:
        raise CheckpointError(f"{folder.name}: no {MANIFEST} (incomplete)") from None
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{folder.name}: {MANIFEST} is unreadable") from None
    present = set(_files(folder))
    missing = sorted(set(expected) - present)
    if missing:
        raise CheckpointError(f"{folder.name}: missing {', '.join(missing)}")
    for rel in sorted(expected):
        if _sha256(folder / rel) != expected[rel]:
            raise CheckpointError(
                f"{folder.name}: {rel} does not match its checksum (truncated or corrupt)"
            )


class Found(NamedTuple):
    """The newest good checkpoint of a run, and why each newer one was skipped."""

    path: Path
    skipped: list[str]  # "step-...: why", one per skipped checkpoint


def latest_good_checkpoint(run_dir: Path) -> Found:
    """The newest checkpoint that passes ``verify_checkpoint``; CheckpointError if none does."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder not found: {run_dir}")
    candidates = list_checkpoints(run_dir)
    if not candidates:
        raise CheckpointError(
            f"{run_dir} is not a run folder with checkpoints (no {CHECKPOINTS}/step-* inside)"
        )
    skipped = []
    for path in candidates:
        try:
            verify_checkpoint(path)
        except CheckpointError as exc:
            skipped.append(str(exc))
            continue
        return Found(path, skipped)
    raise CheckpointError(f"no intact checkpoint in {run_dir}: {'; '.join(skipped)}")


def resolve_agent_dir(path: Path) -> Path:
    """The agent folder to load for ``path``: a run folder (its newest good checkpoint, with a
    CheckpointWarning per newer one skipped), a checkpoint folder (verified) or an agent folder.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no run, checkpoint or agent folder at {path}")
    if (path / CHECKPOINTS).is_dir():
        found = latest_good_checkpoint(path)
        for line in found.skipped:
            warnings.warn(
                f"skipping checkpoint {line}; using {found.path.name}",
                CheckpointWarning,
                stacklevel=2,
            )
        return found.path / "agent"
    if (path / MANIFEST).is_file() or _STEP_DIR.match(path.name):
        verify_checkpoint(path)
        return path / "agent"
    return path


def set_aside(run_dir: Path, after_step: int) -> list[Path]:
    """Rename checkpoints newer than ``after_step`` to ``corrupt-step-...`` (kept, not listed).

    Called when a run resumes from an older checkpoint because the newer ones are bad: the
    resumed run recomputes those steps, and the bad folders stay for inspection.
    """
    moved = []
    for path in list_checkpoints(run_dir):
        if checkpoint_step(path) > after_step:
            target = path.with_name(f"corrupt-{path.name}")
            shutil.rmtree(target, ignore_errors=True)
            path.rename(target)
            moved.append(target)
    return moved

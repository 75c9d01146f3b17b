"""The run folder on disk: creating it, writing checkpoint folders atomically, pruning.

No TensorFlow here: what goes into a checkpoint is the caller's business (see
``dqn.run_state``); this module makes writing one atomic. The names a run's checkpoints have
(``checkpoints/step-<env_step:09d>/``) and the manifest check that reading one relies on are in
``dqn.agent_files``, because ``DQNAgent.load`` finds an agent inside a run folder through them.

- A checkpoint is filled in a hidden temporary folder beside its final name and renamed into
  place, so a crash (even SIGKILL) leaves either the old set of checkpoints or the new one.
- ``manifest.json`` is written last and lists the sha256 of every other file. A checkpoint
  without a manifest, with a missing file, a file its manifest does not list (for a run's
  checkpoint, any of ``CHECKPOINT_FILES`` missing), a checksum mismatch or an archive that is
  not one is not "good" (``verify_checkpoint``); resume falls back to the newest good one.
- Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dqn.agent_files import (
    CHECKPOINTS,
    MANIFEST,
    POPULATION_FILE,
    STEP_FILE,
    check_not_nested,
    check_outside_checkpoints,
    checkpoint_dir,
    checkpoint_step,
    checksums,
    list_checkpoints,
)
from dqn.config import DQNConfig, output_folder
from dqn.errors import ConfigError, OutputError, writing
from dqn.io import (
    atomic_write_text,
    check_named,
    check_not_held,
    remove_whole,
    write_dir_atomically,
)

_FORMAT_VERSION = 1


def make_run_dir(config: DQNConfig) -> Path:
    """A new folder ``output_dir/<env>-<loss>-seed<k>-<timestamp>`` (OSError if impossible)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    env = re.sub(r"[/:]", "_", config.env_id)  # ALE/Pong-v5, module:EnvId: one folder name
    name = f"{env}-{config.loss}-seed{config.seed}-{stamp}"
    path = output_folder(config) / name
    path.mkdir(parents=True, exist_ok=False)
    return path


def check_new_folder(
    path: str | Path,
    what: str = "run folder",
    resume: str = "dqn-train --resume",
    *,
    nested_ok: bool = False,
) -> None:
    """ConfigError unless ``path`` is absent or an empty folder outside the package's other
    folders (``check_not_nested``): a run, or a population, never writes over or into another
    (its config.yaml, metrics and checkpoints would be mixed with the new run's). ``resume``
    names what continues a stopped one. ``nested_ok``: a folder that lies inside another by
    design (a study's runs, a population's members), still never inside a run's checkpoints."""
    check_named(path, what)
    path = Path(path)
    if nested_ok:
        check_outside_checkpoints(path, what, "give a folder elsewhere")
    else:
        check_not_nested(path, what, "give a folder elsewhere")
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise ConfigError(f"{what} {path} is a file: give a folder that does not exist yet")
    if path.is_dir() and any(path.iterdir()):
        check_not_held(path)  # a run another process is training: not one to delete
        # A run that failed before its first checkpoint (a full disk there, an env that broke:
        # a run writes its config.yaml first) has nothing to resume; naming the resume there
        # sent users to a refusal. A population alike: its population.json without the step
        # marker that its first checkpoint writes (killed in its first seconds).
        if _never_checkpointed(path):
            raise ConfigError(
                f"{what} {path} already exists and is not empty, and holds no checkpoint to "
                "continue from: delete it or give a new folder"
            )
        raise ConfigError(
            f"{what} {path} already exists and is not empty: give a new folder (a stopped "
            f"one continues with {resume})"
        )


# A folder's hold (dqn.io.LOCK_FILE) and what dqn.io's atomic writes leave when killed.
_OWN_LEFTOVER = re.compile(r"^\.(lock|.+\.tmp)$")


def _never_checkpointed(path: Path) -> bool:
    """A run folder with its config.yaml and no checkpoint, or a population folder with its
    population.json and no step marker: started, stopped before its first checkpoint. Also a
    folder of the package's hidden leftovers only (a run killed between taking its .lock and
    writing its config.yaml, or during that write): nothing there for a resume either. (A
    project's own hidden files, .git or .gitkeep, are no such leftovers.)"""
    if all(_OWN_LEFTOVER.match(entry.name) for entry in path.iterdir()):
        return True
    if (path / "config.yaml").is_file():
        return not list_checkpoints(path)
    return (path / POPULATION_FILE).is_file() and not (path / STEP_FILE).is_file()


def write_checkpoint(
    run_dir: Path, env_step: int, fill: Callable[[Path], None], keep: int | None
) -> Path:
    """Call ``fill(tmp_folder)``, add the manifest, rename into place, prune to ``keep`` (None:
    the caller prunes, with ``prune_checkpoints``, once the step is resumable)."""

    def fill_and_sign(folder: Path) -> None:
        fill(folder)
        write_manifest(folder, env_step)  # last: a folder with a manifest is complete

    final = checkpoint_dir(run_dir, env_step)
    # Named as the checkpoint, with the system's reason (``writing``): a file error names the
    # hidden temporary folder it was written in, and the agent's own error its folder inside
    # that one (a study's failure line showed ".../checkpoints/.step-000001000.x1y2.tmp/agent:
    # No space left on device"), which the user never sees.
    with writing("checkpoint", final):
        try:
            write_dir_atomically(final, fill_and_sign)
        except OutputError as exc:
            raise OSError(exc.reason) from None
    if keep is not None:
        prune_checkpoints(run_dir, keep)
    return final


# What a write or a prune killed half-way leaves in checkpoints/: write_dir_atomically's
# temporary folder (.step-N.<random>.tmp, its files possibly truncated), commit_dir's replaced
# folder (.step-N.old) and prune_checkpoints' own (.step-N.trash). Hidden, never listed.
_LEFTOVER = re.compile(r"^\.step-(\d{9}|[1-9]\d{9,})\.(.+\.tmp|old|trash)$")


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints of a run, and the leftovers of writes and
    prunes that were killed half-way. Each old checkpoint is renamed to a hidden name before it
    is deleted: killed in between, a prune leaves a hidden folder the next one removes, never a
    visible half of a checkpoint. Only the process that writes the run may call it."""
    for old in list_checkpoints(run_dir)[keep:]:
        remove_whole(old)
    remove_leftovers(run_dir)


def remove_leftovers(run_dir: Path) -> None:
    """Delete the hidden folders killed checkpoint writes and prunes left (``_LEFTOVER``)."""
    folder = Path(run_dir) / CHECKPOINTS
    if folder.is_dir():
        for path in folder.iterdir():
            if _LEFTOVER.match(path.name) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)


def write_manifest(folder: Path, env_step: int) -> None:
    files = checksums(folder)
    manifest = {"format_version": _FORMAT_VERSION, "env_step": env_step, "sha256": files}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1))


def set_aside(run_dir: Path, after_step: int) -> list[Path]:
    """Rename checkpoints newer than ``after_step`` to ``corrupt-step-...`` (kept, not listed).

    Called when a run resumes from an older checkpoint because the newer ones are bad: the
    resumed run recomputes those steps, and the bad folders stay for inspection.
    """
    return [
        set_aside_one(path)
        for path in list_checkpoints(run_dir)
        if checkpoint_step(path) > after_step
    ]


SET_ASIDE = "corrupt-"  # the prefix of a checkpoint set aside as damaged: kept, not listed


def set_aside_one(path: Path) -> Path:
    """Rename one checkpoint folder to ``corrupt-step-...``, replacing an earlier one so named."""
    target = path.with_name(f"{SET_ASIDE}{path.name}")
    shutil.rmtree(target, ignore_errors=True)
    path.rename(target)
    return target

"""How a DQNAgent is saved, and where a saved one is found. No TensorFlow here: the command
line checks a checkpoint before it imports TF.

An agent folder (``DQNAgent.save``) holds ``AGENT_FILES``: the config, ``agent.json`` (format
version, input and output sizes, gradient steps, exploration RNG state), both networks as
``.keras`` files and Adam's state in ``optimizer.npz``.

A run saves its agent inside each checkpoint, ``<run>/checkpoints/step-<env_step:09d>/agent/``;
a checkpoint is good when every file matches its ``manifest.json`` (sha256, written last). The
run layer writes checkpoints (``dqn.checkpoint``) and what they hold besides the agent
(``dqn.run_state``). The reading side of those names and of the manifest is here, because
``DQNAgent.load`` takes a run folder, a checkpoint folder or an agent folder
(``resolve_agent_dir``) and the agent does not import the run layer.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import NamedTuple

from dqn.config import DQNConfig
from dqn.errors import CheckpointError, CheckpointWarning, ConfigError

FORMAT_VERSION = 1  # of agent.json
AGENT_FILES = ("config.yaml", "agent.json", "online.keras", "target.keras", "optimizer.npz")
CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step-(\d{9})$")


# ---------------------------------------------------------------------- the agent folder
def check_agent_files(agent_dir: Path) -> None:
    """CheckpointError unless ``agent_dir`` holds every file ``DQNAgent.save`` writes."""
    agent_dir = Path(agent_dir)
    if not agent_dir.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {agent_dir}")
    missing = [f for f in AGENT_FILES if not (agent_dir / f).is_file()]
    if missing:
        raise CheckpointError(
            f"{agent_dir} is not a complete checkpoint: missing {', '.join(missing)}"
        )


def read_agent_config(agent_dir: Path) -> DQNConfig:
    """The config saved with an agent (``<checkpoint>/agent/config.yaml``)."""
    check_agent_files(agent_dir)
    try:
        return DQNConfig.from_yaml(Path(agent_dir) / "config.yaml")
    except ConfigError as exc:
        raise CheckpointError(f"the agent in {agent_dir} has a bad config: {exc}") from None


def check_agent_fits(agent_dir: Path, env_id: str, obs_dim: int, n_actions: int) -> None:
    """CheckpointError unless the saved agent's input and output sizes match the env's."""
    agent_json = Path(agent_dir) / "agent.json"
    try:
        meta = json.loads(agent_json.read_text())
        saved = (int(meta["obs_dim"]), int(meta["n_actions"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{agent_json} is missing or unreadable") from None
    if saved != (obs_dim, n_actions):
        raise CheckpointError(
            f"the agent in {agent_dir} was saved for observations of shape ({saved[0]},) and "
            f"{saved[1]} actions, but {env_id} has ({obs_dim},) and {n_actions}"
        )


# ---------------------------------------------------------------------- checkpoints of a run
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


def checksums(folder: Path) -> dict[str, str]:
    """The sha256 of every file under ``folder`` but the manifest, by relative path."""
    return {rel: _sha256(folder / rel) for rel in _files(folder)}


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

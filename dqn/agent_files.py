"""How a DQNAgent is saved, and where a saved one is found. No TensorFlow here: the command
line checks a checkpoint before it imports TF.

An agent folder (``DQNAgent.save``) holds ``AGENT_FILES``: the config, ``agent.json`` (format
version, input and output sizes, gradient steps, exploration RNG state), both networks as
``.keras`` files and Adam's state in ``optimizer.npz``.

A run saves its agent inside each checkpoint, ``<run>/checkpoints/step-<env_step:09d>/agent/``;
a checkpoint is good when its ``manifest.json`` (sha256, written last) lists every file it holds,
and a run's checkpoint every file of ``CHECKPOINT_FILES``, and each file matches it. The run
layer writes checkpoints (``dqn.checkpoint``) and what they hold besides the agent
(``dqn.run_state``). The reading side of those names and of the manifest is here, because
``DQNAgent.load`` takes a run folder, a checkpoint folder or an agent folder
(``resolve_agent_dir``) and the agent does not import the run layer.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dqn.config import DQNConfig, read_saved_config
from dqn.envs import check_env
from dqn.errors import (
    CheckpointError,
    CheckpointWarning,
    ConfigError,
    DQNError,
    OutputError,
    few,
    writing,
)
from dqn.io import check_named, folder_mark, followed, mount_point_problem

FORMAT_VERSION = 1  # of agent.json
AGENT_FILES = ("config.yaml", "agent.json", "online.keras", "target.keras", "optimizer.npz")
# What a run's checkpoint holds besides its agent (written by dqn.run_state.save_run_state).
RUN_STATE_FILES = ("replay.npz", "loop.npz", "loop.json", "metrics.csv")
CHECKPOINT_FILES = (*(f"agent/{name}" for name in AGENT_FILES), *RUN_STATE_FILES)
CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
# dqn-compare keeps each run's folder inside an entry beside its result.json:
# <study>/runs/<variant>-seed<k>/run (``dqn.study_runs``).
STUDY_RUN = "run"
# A population folder's files (dqn.population_files writes them): the members, and the step
# marker its first checkpoint writes. Here, where folders are told apart without TensorFlow.
POPULATION_FILE = "population.json"
STEP_FILE = "population-step.json"
# Nine digits, more past 999,999,999 env steps (total_env_steps goes to 10**12).
_STEP_DIR = re.compile(r"^step-(\d{9}|[1-9]\d{9,})$")
# How many times a reader goes back to a training run's newest checkpoint when the one it read
# was deleted under it (``latest_good_checkpoint``, ``read_newest``).
PRUNED_RETRIES = 10
# Both are zip archives: a file that is not one is reported as such, not by what the reader
# guesses from its first bytes (np.load calls any non-zip "pickled data").
_ARCHIVES = {".keras": "a valid Keras file", ".npz": "a valid npz archive"}


# ---------------------------------------------------------------------- the agent folder
def check_agent_files(agent_dir: Path) -> None:
    """CheckpointError unless ``agent_dir`` holds every file ``DQNAgent.save`` writes."""
    agent_dir = Path(agent_dir)
    if not agent_dir.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {agent_dir}")
    missing = [f for f in AGENT_FILES if not (agent_dir / f).is_file()]
    if missing:
        raise CheckpointError(
            f"{agent_dir} is not a complete checkpoint or saved agent: missing {', '.join(missing)}"
        )


def read_agent_config(agent_dir: Path) -> DQNConfig:
    """The config saved with an agent (``<checkpoint>/agent/config.yaml``)."""
    check_agent_files(agent_dir)
    try:
        return read_saved_config(Path(agent_dir) / "config.yaml")
    except ConfigError as exc:
        raise CheckpointError(f"the agent in {agent_dir} has a bad config: {exc}") from None


def check_agent_fits(agent_dir: Path, env_id: str, obs_dim: int, n_actions: int) -> None:
    """CheckpointError unless the saved agent's input and output sizes match the env's."""
    meta = read_agent_meta(agent_dir)
    saved = (meta.obs_dim, meta.n_actions)
    if saved != (obs_dim, n_actions):
        # With the default env id, most often an agent built with DQNAgent(spaces, DQNConfig())
        # for another env, whose config kept CartPole-v1: say where the id came from. (With
        # another id, the env registered under it has changed since the agent was saved.)
        hint = (
            f" ({env_id} is DQNConfig()'s default env_id, kept by the config it was saved "
            "with: build an agent for another env with DQNConfig(env_id=...))"
            if env_id == DQNConfig().env_id
            else ""
        )
        raise CheckpointError(
            f"the agent in {agent_dir} was saved for observations of shape ({saved[0]},) and "
            f"{saved[1]} actions, but {env_id} has ({obs_dim},) and {n_actions}{hint}"
        )


def corrupt_file(path: Path, problem: str) -> CheckpointError:
    """The one-line error for a saved file that is there but wrong: names it, what holds it (a
    run's checkpoint, or an agent saved with ``save``) and the problem."""
    path = Path(path)
    what = "checkpoint" if checkpoint_around(path) is not None else "saved agent"
    return CheckpointError(f"corrupt {what} in {path.parent}: {path.name}: {problem}")


class AgentMeta(NamedTuple):
    """``agent.json``, checked: what ``DQNAgent.load`` needs besides the networks and Adam."""

    obs_dim: int
    n_actions: int
    grad_steps: int
    rng_state: dict  # of the exploration generator (numpy's default_rng, PCG64)


def read_agent_meta(agent_dir: Path) -> AgentMeta:
    """``agent.json`` of an agent folder; CheckpointError naming the field that is wrong."""
    path = Path(agent_dir) / "agent.json"
    try:
        meta = json.loads(path.read_text())
    except OSError:
        raise CheckpointError(f"{path} is missing or unreadable") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise corrupt_file(path, "not JSON") from None
    if not isinstance(meta, dict):
        raise corrupt_file(path, "not a JSON object")
    version = _field(meta, "format_version", path)
    if version != FORMAT_VERSION:
        raise corrupt_file(path, f"format_version {version!r} is not {FORMAT_VERSION}")
    return AgentMeta(
        obs_dim=_count(meta, "obs_dim", path, least=1),
        n_actions=_count(meta, "n_actions", path, least=1),
        grad_steps=_count(meta, "grad_steps", path, least=0),
        rng_state=_rng_state(meta, path),
    )


def _field(meta: dict, key: str, path: Path):
    if key not in meta:
        raise corrupt_file(path, f"{key} is missing")
    return meta[key]


def _count(meta: dict, key: str, path: Path, least: int) -> int:
    value = _field(meta, key, path)
    # bool is an int to Python: a JSON true must not pass for 1. The learners count in int64.
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value < 2**63:
        raise corrupt_file(path, f"{key} must be an integer in [{least}, 2**63), got {value!r}")
    return value


def _rng_state(meta: dict, path: Path) -> dict:
    state = _field(meta, "rng_state", path)
    try:  # the generator the agent explores with takes it, or says why not
        np.random.default_rng().bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise corrupt_file(path, "rng_state is not a numpy PCG64 generator state") from None
    return state


def check_checkpoints_folder(run_dir: Path) -> None:
    """CheckpointError if ``run_dir/checkpoints`` is a link. A resume sets aside, prunes and
    writes there: through a link, a crafted or copied run folder had the checkpoints of the run
    it led to deleted. A run that needs another disk lives there whole (its ``run_dir``)."""
    folder = Path(run_dir) / "checkpoints"
    if folder.is_symlink():
        raise CheckpointError(
            f"{folder} is a link: a resume deletes and writes checkpoints there, so they must be "
            "the run's own folder (a run on another disk: move the whole run folder there)"
        )


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read without pickle. ValueError (or zipfile's and
    numpy's own errors) for one whose header claims more data than the file holds for it: a
    few KB of deflated zeros can claim gigabytes, which np.load allocates before reading them.
    dqn writes its files uncompressed, so an array's data is never larger than its entry."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version in ((2, 0), (3, 0)):
                    # 3.0 is 2.0 with a UTF-8 header (field names beyond latin-1), read here as
                    # latin-1: those names come out garbled, the shape and item size do not.
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise ValueError(f"{info.filename} is a .npy of format {version}")
            size = math.prod(shape) * dtype.itemsize
            if size > info.compress_size:
                raise ValueError(
                    f"{info.filename} claims {size:,} bytes of data ({dtype} {shape}), more than "
                    f"the file holds for it ({info.compress_size:,})"
                )
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def archive_problem(path: Path) -> str | None:
    """Why ``path``, a ``.keras`` or ``.npz`` file, is not the zip archive these are ("not a
    valid npz archive (not a zip archive)"), or None."""
    kind = _ARCHIVES.get(Path(path).suffix)
    if kind is None or zipfile.is_zipfile(path):
        return None
    if not os.path.lexists(path):  # deleted under its reader: not a damaged file
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    return f"not {kind} (not a zip archive)"


def check_network_fits(
    agent_dir: Path, name: str, sizes: tuple[int | None, int | None], meta: AgentMeta
) -> None:
    """CheckpointError unless the network in file ``name``, of (input, output) ``sizes`` (None:
    not one [batch, k] tensor), takes agent.json's observations and gives its actions.

    Its hidden layers are not compared with config.yaml: a network of your own (``network_fn``)
    has layers of its own, whatever the config's hidden_sizes say.
    """
    agent_dir = Path(agent_dir)
    if None in sizes:
        raise corrupt_file(agent_dir / name, "not a Q-network with one [batch, obs_dim] input")
    for key, saved, real, what in (
        ("obs_dim", meta.obs_dim, sizes[0], "takes observations of size"),
        ("n_actions", meta.n_actions, sizes[1], "gives Q-values for"),
    ):
        if saved != real:
            raise corrupt_file(
                agent_dir / "agent.json", f"{key} is {saved} but {name} {what} {real}"
            )


def check_config_env(agent_dir: Path, config: DQNConfig, meta: AgentMeta) -> None:
    """In a run's checkpoint, CheckpointError unless config.yaml's env_id has agent.json's sizes.

    Only there is env_id known to be the env the networks were built for: a bare
    ``DQNAgent.save`` holds an agent built for any spaces, with whatever env_id its config has.
    An env that cannot be made here (an extra not installed, an id its training script
    registered) is not checked: the networks load without it.
    """
    agent_dir = Path(agent_dir)
    if not (agent_dir.parent / MANIFEST).is_file():
        return
    try:
        sizes = check_env(config.env_id, config.env_kwargs)
    except ConfigError:
        return
    except DQNError as exc:  # an env whose spaces DQN cannot handle was never trained here
        raise corrupt_file(agent_dir / "config.yaml", f"env_id: {exc}") from None
    except Exception:  # noqa: BLE001 (the env's own __init__ failed: a simulator not running)
        return
    if sizes != (meta.obs_dim, meta.n_actions):
        raise corrupt_file(
            agent_dir / "config.yaml",
            f"env_id {config.env_id} has observations of shape ({sizes[0]},) and {sizes[1]} "
            f"actions, but the networks take ({meta.obs_dim},) and give {meta.n_actions}",
        )


def check_save_target(path: Path) -> None:
    """OutputError unless ``DQNAgent.save`` may write ``path``, before anything is written.

    Allowed: a new path, an empty folder, or an earlier agent save (a folder holding nothing
    but ``AGENT_FILES``), which is replaced as a whole. Anything else would be lost with it: a
    file, a run folder, a folder of the user's, or the agent inside a checkpoint (its manifest
    would no longer match and the run would lose that checkpoint).
    """
    path = Path(path)
    if (around := checkpoint_around(path)) is not None:
        why = f"it is inside {around}, {BREAKS}; save outside it"
    elif (found := keeper_around(path)) is not None:
        # Accepted, it made the earlier save a folder of more than an agent's files, which the
        # next save of the latest agent there then refused to replace (a study's rerun alike).
        why = (
            f"it is inside the {found[1]} {found[0]}, whose next write would refuse it; save "
            "outside it"
            if found[1] == "study"
            else f"it is inside the saved agent {found[0]}, which a save there replaces whole; "
            "save outside it"
        )
    elif not path.exists() and not path.is_symlink():
        return
    elif path.is_symlink() or not path.is_dir():  # a link left is one that loops
        why = "it exists and is not a folder"
    elif mount := mount_point_problem(path):
        why = mount
    elif others := sorted(
        p.name for p in path.iterdir() if p.name not in AGENT_FILES or not p.is_file()
    ):
        why = (
            f"it holds {few(others)}, which an agent save would replace; save to a new folder, "
            "an empty one or an earlier agent save"
        )
    else:
        return
    raise OutputError(f"cannot save the agent to {path}: {why}", why)


def save_agent_to(
    directory: str | Path, write: Callable[[Path], object], checked: bool = True
) -> Path:
    """What ``DQNAgent.save`` and a population member's ``save`` do around ``write(folder)``,
    which writes the folder whole: the name checked (``check_named``), a link followed, the
    folder refused where ``check_save_target`` refuses it (``checked``; a checkpoint's own agent
    is written inside checkpoints/ by the package itself), errors in one line."""
    check_named(directory, "the agent folder")
    directory = followed(directory)
    with writing("the agent folder", directory):  # in one line, as the CLI would say it
        if checked:
            check_save_target(directory)
        write(directory)
    return directory


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
    """Raise CheckpointError saying what is wrong unless the checkpoint is good: its manifest
    lists every file it holds (and, for a run's checkpoint, every file of CHECKPOINT_FILES),
    each file matches its checksum, and each archive (.keras, .npz) is one."""
    folder = Path(folder)
    expected = _read_manifest(folder)
    problem = _listing_problem(expected, set(_files(folder))) or _content_problem(folder, expected)
    if problem:
        raise CheckpointError(f"{folder.name}: {problem}")


def _read_manifest(folder: Path) -> dict[str, str]:
    try:
        expected = json.loads((folder / MANIFEST).read_text())["sha256"]
    except FileNotFoundError:
        raise CheckpointError(f"{folder.name}: no {MANIFEST} (incomplete)") from None
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{folder.name}: {MANIFEST} is unreadable") from None
    if not isinstance(expected, dict):
        raise CheckpointError(f"{folder.name}: {MANIFEST} is unreadable")
    return expected


def _listing_problem(expected: dict[str, str], present: set[str]) -> str | None:
    """What is wrong with the manifest's list of files, or None.

    A file the manifest does not list was never checked, so it cannot count as good. Which
    files a checkpoint needs is its writer's business (``dqn.checkpoint`` writes whatever it
    is given); a checkpoint holding any of a run's files must hold them all, or resuming from
    it fails where falling back to an older one would not.
    """
    needed = set(CHECKPOINT_FILES) if set(CHECKPOINT_FILES) & (present | set(expected)) else set()
    if missing := sorted((set(expected) | needed) - present):
        return f"missing {', '.join(missing)}"
    if unlisted := sorted(present - set(expected)):
        return f"{MANIFEST} does not list {few(unlisted)} (incomplete manifest)"
    if not expected:
        return f"{MANIFEST} lists no files"
    return None


def _content_problem(folder: Path, expected: dict[str, str]) -> str | None:
    """The first listed file that does not match its checksum or is no archive, or None."""
    for rel in sorted(expected):
        if _sha256(folder / rel) != expected[rel]:
            return f"{rel} does not match its checksum (truncated or corrupt)"
        if why := archive_problem(folder / rel):  # a manifest signed over garbage
            return f"{rel} is {why}"
    return None


class Found(NamedTuple):
    """The newest good checkpoint of a run, and why each newer one was skipped."""

    path: Path
    skipped: list[str]  # "step-...: why", one per skipped checkpoint


def folder_exists(path: Path) -> bool:
    """``path.is_dir()``, or a CheckpointError where the path cannot even be looked at (a name
    too long for the filesystem, which ``is_dir`` raises rather than answers)."""
    try:
        return path.is_dir()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def latest_good_checkpoint(run_dir: Path) -> Found:
    """The newest checkpoint that passes ``verify_checkpoint``; CheckpointError if none does.

    A run that is training may delete a checkpoint while it is verified here, once a newer one
    is in place (with ``keep_checkpoints: 1``, the only other one): one that is gone, or whose
    files went, was not corrupt and is not named; if every checkpoint listed failed and newer
    ones came meanwhile, the run's checkpoints are listed again (``PRUNED_RETRIES`` times)."""
    run_dir = Path(run_dir)
    if not folder_exists(run_dir):
        if run_dir.is_file():
            raise CheckpointError(f"{run_dir} is a file, not a run folder")
        raise CheckpointError(f"run folder not found: {run_dir}")
    candidates = list_checkpoints(run_dir)
    if not candidates:
        raise CheckpointError(
            f"{run_dir} is not a run folder with checkpoints (no {CHECKPOINTS}/step-* inside)"
            + _what_it_is(run_dir)
        )
    for _ in range(PRUNED_RETRIES):
        skipped = []
        for path in candidates:
            try:
                verify_checkpoint(path)
            except CheckpointError as exc:
                if path.is_dir():
                    skipped.append(str(exc))
                continue
            except OSError as exc:  # a file deleted under the reader, or one it may not read
                if isinstance(exc, PermissionError):
                    # Intact, perhaps, and unreadable to this user: not to be skipped, which a
                    # resume follows by setting it aside as damaged and training its steps again.
                    raise CheckpointError(
                        f"cannot read {exc.filename or path}: {exc.strerror} (checkpoint "
                        f"{path.name} of {run_dir}; nothing was changed)"
                    ) from None
                if path.is_dir() and exc.filename and Path(exc.filename).exists():
                    skipped.append(f"{path.name}: cannot read {exc.filename}: {exc.strerror}")
                continue
            if problem := _foreign_problem(run_dir, path, candidates):
                skipped.append(f"{path.name}: {problem}")
                continue
            return Found(path, skipped)
        listed, candidates = candidates, list_checkpoints(run_dir)
        if set(candidates) <= set(listed):  # nothing newer came: they are corrupt, or gone
            break
    raise CheckpointError(f"no intact checkpoint in {run_dir}: {'; '.join(skipped)}")


def _foreign_problem(run_dir: Path, path: Path, checkpoints: list[Path]) -> str | None:
    """Why an intact checkpoint is not this run's, or None. A checkpoint copied in from another
    run (another env, network or step) passes its own manifest's checksums: dqn-evaluate,
    dqn-export and ``DQNAgent.load`` used it without a word. Its manifest's step must be its
    folder's; and its agent's config must be the run's config.yaml where another of the run's
    ``checkpoints`` has that config (where none has, it is config.yaml that was edited, or
    every checkpoint is another run's: the resume's check of config.yaml names it)."""
    try:
        step = json.loads((path / MANIFEST).read_text()).get("env_step")
    except (OSError, ValueError, AttributeError):
        return None  # unreadable here: verify_checkpoint's to name
    if step is not None and step != checkpoint_step(path):
        return f"its manifest is of env step {step}: a checkpoint copied in from elsewhere?"
    ours = _yaml_mapping(run_dir / "config.yaml")
    theirs = _yaml_mapping(path / "agent" / "config.yaml")
    if ours is None or theirs is None or ours == theirs:
        return None
    if not any(
        other != path and _yaml_mapping(other / "agent" / "config.yaml") == ours
        for other in checkpoints
    ):
        return None
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    return (
        f"its agent was trained with another config than this run's config.yaml and its other "
        f"checkpoints ({few(keys)}): a checkpoint of another run?"
    )


def _yaml_mapping(path: Path) -> dict | None:
    """The mapping a YAML file holds (the package's own loader), or None if it is missing,
    unreadable or no mapping."""
    from dqn.yaml_files import load_yaml

    try:
        data = load_yaml(path)
    except ConfigError:
        return None
    return data if isinstance(data, dict) else None


# What a file written inside a checkpoint does to it (checkpoint_around).
RUN_MARKS = ("config.yaml", "metrics.csv")  # a run's, once it has written a checkpoint
BREAKS = "which a file written there would break (a resume would set it aside as corrupt)"


def checkpoint_around(path: Path) -> Path | None:
    """The checkpoint, or the run's ``checkpoints/`` folder, that ``path`` would be written
    into at any depth, else None. A checkpoint's manifest lists its files, so one more file
    anywhere in it makes resume and evaluation set it aside as corrupt, and a new folder in
    ``checkpoints/`` is taken for a broken checkpoint (a GIF, an export or a saved agent put
    there by hand cost the run its newest checkpoint). Only the package's own count: a
    ``step-<9 digits>`` folder with its manifest, a ``checkpoints/`` folder beside a run's
    config.yaml and metrics.csv or holding such a folder (a web project's manifest.json is
    none). The path is resolved first: ``..`` and links lead where the write would land."""
    for above in Path(os.path.realpath(path)).parents:
        if _STEP_DIR.match(above.name) and (above / MANIFEST).is_file():
            return above
        if above.name == CHECKPOINTS and _runs_checkpoints(above):
            return above
    return None


def _runs_checkpoints(folder: Path) -> bool:
    """Whether ``folder``, named checkpoints/, is a run's: beside its config.yaml and
    metrics.csv, or holding a checkpoint of the package's (a run that lost one of those files
    still resumes from it)."""
    if all((folder.parent / f).is_file() for f in RUN_MARKS):
        return True
    try:
        return any((step / MANIFEST).is_file() for step in list_checkpoints(folder.parent))
    except OSError:
        return False


def check_outside_checkpoints(folder: Path, what: str, cure: str) -> None:
    """ConfigError if a new run or study would be written into a run's checkpoints, at any
    depth (``checkpoint_around``): its resume takes any folder in ``checkpoints/`` for a
    checkpoint, and sets one without a manifest, or a checkpoint with a file more, aside as
    corrupt."""
    if (around := checkpoint_around(folder)) is None:
        return
    if around.name == CHECKPOINTS:
        raise ConfigError(
            f"{what} {folder} is inside the {CHECKPOINTS}/ folder of run {around.parent}, whose "
            f"resume would set it aside as a broken checkpoint: {cure}"
        )
    raise ConfigError(f"{what} {folder} is inside the checkpoint {around}, {BREAKS}: {cure}")


def enclosing_output(folder: Path) -> tuple[Path, str] | None:
    """The nearest folder above ``folder`` that the package wrote, where a new run, population
    or study would mix with its files, with what it is: a run (its config.yaml beside its
    metrics.csv or checkpoints/), a population, a saved agent, or a study's runs/ folder
    (whose next rerun counted the folder as one of its runs). None if there is none. Folders
    that merely hold outputs (runs/, a study's folder, a project) are no such folder."""
    for above in Path(folder).absolute().parents:
        kind = folder_kind(above)
        # A run's or an agent's also holds the config.yaml dqn writes first: a project folder
        # with a metrics.csv of its own is not taken for one.
        if kind == "population" or (kind in ("run", "agent") and (above / "config.yaml").is_file()):
            return above, {"agent": "saved agent"}.get(kind, kind)
        if above.name == "runs" and _holds_study_run_entry(above):
            return above, "study's runs"
    return None


def keeper_around(path: Path) -> tuple[Path, str] | None:
    """The saved agent or study folder ``path`` lies inside (its links and ``..`` resolved),
    with its kind, else None: the folders whose next write refuses a file of someone else's.
    A save there replaces the agent's folder whole (and refused one holding more); a study's
    rerun refuses files it does not write. An export, a GIF, an agent save or a run placed
    there was accepted, and stopped that next write."""
    path = Path(os.path.realpath(path))
    found = enclosing_output(path)
    if found is not None and found[1] == "saved agent":
        return found
    study = study_around(path)
    return None if study is None else (study, "study")


def study_around(path: Path) -> Path | None:
    """The nearest folder above ``path`` laid out as a study (its runs/ holds dqn-compare's
    runs/<name>/run/), else None: a project whose runs/ holds plain runs is none."""
    for above in Path(path).absolute().parents:
        if _holds_study_run_entry(above / "runs"):
            return above
    return None


def _holds_study_run_entry(runs: Path) -> bool:
    """Whether ``runs`` is a study's runs/ folder: one entry ``runs/<name>/run/`` at least,
    the layout only dqn-compare writes (a project's runs/ of plain runs is not one)."""
    try:
        return any(folder_kind(sub) == "study run entry" for sub in runs.iterdir() if sub.is_dir())
    except OSError:
        return False


def check_not_nested(folder: Path, what: str, cure: str) -> None:
    """ConfigError if a new run, population or study folder would be inside one of the
    package's own (``enclosing_output``; a run's checkpoints/ named as such), before anything
    is written."""
    check_outside_checkpoints(folder, what, cure)
    if (found := enclosing_output(folder)) is not None:
        above, kind = found
        raise ConfigError(
            f"{what} {folder} is inside the {kind} folder {above}, whose files it would mix "
            f"with: {cure}"
        )
    # Beside a study's runs/ (study/new): accepted, it made the study's own rerun refuse the
    # folder ("holds files a study does not write"). (A saved agent was named just above.)
    if (found := keeper_around(folder)) is not None:
        raise ConfigError(
            f"{what} {folder} is inside the study folder {found[0]}, whose rerun would refuse "
            f"it: {cure}"
        )


def folder_kind(folder: Path) -> str | None:
    """What a folder the package writes is, from the files that mark it: "population",
    "study run entry" (a study's ``runs/<name>``), "run", "agent" or "study"; else None."""
    folder = Path(folder)
    if (folder / POPULATION_FILE).is_file():
        return "population"
    if (folder / STUDY_RUN).is_dir():
        return "study run entry"
    if (folder / CHECKPOINTS).is_dir() or (folder / "metrics.csv").is_file():
        return "run"
    if (folder / "agent.json").is_file():
        return "agent"
    if (folder / "runs").is_dir() and _runs_inside(folder):
        return "study"
    return None


def _holds_a_config(folder: Path) -> bool:
    """Whether ``folder`` holds a run's config.yaml: a config dqn reads."""
    try:
        read_saved_config(folder / "config.yaml")
    except (ConfigError, OSError):
        return False
    return True


def stop_reason(run_dir: Path) -> str | None:
    """The guard's reason in a run's summary.json, if it stopped the run (a divergence, or a
    NaN or inf from the env: both are its ``diverged``)."""
    try:
        reason = json.loads((run_dir / "summary.json").read_text()).get("diverged")
    except (OSError, ValueError, AttributeError):  # no summary, or not one of ours
        return None
    return reason if isinstance(reason, str) else None


def _what_it_is(folder: Path) -> str:
    """What a folder without checkpoints is, where it is one of the package's other folders."""
    if folder.parent.name == CHECKPOINTS and _STEP_DIR.match(folder.name):
        return (
            f": it is one of the checkpoints of the run {folder.parent.parent}; give the run, "
            "which continues from its newest good checkpoint"
        )
    if folder.name == CHECKPOINTS and list_checkpoints(folder.parent):
        return f": it is the checkpoints folder of the run {folder.parent}; give the run"
    kind = folder_kind(folder)
    in_study = folder.parent.name == "populations" and folder_kind(folder.parent.parent) == "study"
    if kind == "population" and in_study:
        return (
            ": it is the folder of one of a study's populations, which the study's own "
            "dqn-compare command resumes"
        )
    if kind == "population":
        return ": it is a population folder, which dqn.population.resume_population(folder) resumes"
    if kind == "study run entry":
        return (
            f": it is a study's entry for one run ({folder / STUDY_RUN}); the study's own "
            "dqn-compare command resumes every run of the study"
        )
    if kind == "study":
        return ": it is a study folder, which its own dqn-compare command resumes"
    if kind == "run" and (reason := stop_reason(folder)):
        return (
            f": the run was stopped before its first checkpoint ({reason}; its summary.json), "
            "and a run stopped so does not continue: train it again"
        )
    if kind == "run" or (kind is None and _holds_a_config(folder)):
        # (Killed before its first metrics row too, a run's folder holds its config.yaml only.)
        return (
            ": the run has written none yet (the first comes after checkpoint_every_env_steps); "
            "one stopped before it cannot continue: train it again, in a new folder or after "
            "deleting this one"
        )
    if runs := _runs_inside(folder):  # runs/, a study's or a population's folder
        return f": it {_holds(runs)}"
    return ""


def resolve_agent_dir(path: Path) -> Path:
    """The agent folder to load for ``path``: a run folder (its newest good checkpoint, with a
    CheckpointWarning per newer one skipped), a study's run entry (the run folder inside it), a
    checkpoint folder (verified) or an agent folder.
    """
    path = Path(path)
    if not folder_exists(path):
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
    if (path / "agent.json").is_file():  # an agent folder (DQNAgent.save)
        return path
    if (path / STUDY_RUN).is_dir():
        return resolve_agent_dir(path / STUDY_RUN)
    if (path / "metrics.csv").is_file():
        raise CheckpointError(
            f"run {path} has no checkpoint yet (no {CHECKPOINTS}/ folder): a run writes its "
            "first one after checkpoint_every_env_steps, at its end, or when it is interrupted"
        )
    if (path / "saved_model.pb").is_file():
        raise CheckpointError(
            f"{path} is an exported policy (a SavedModel, as dqn-export writes), not a run or "
            "agent folder: load it with tf.saved_model.load, or give the run it came from"
        )
    if path.name == CHECKPOINTS and (path.parent / "metrics.csv").is_file():
        raise CheckpointError(  # its step-* folders are checkpoints, not runs
            f"{path} is the checkpoints folder of run {path.parent}: give the run (its newest "
            "good checkpoint is read) or one checkpoint in it"
        )
    if runs := _runs_inside(path):
        raise CheckpointError(f"{path} {_holds(runs)}")
    if not any(path.iterdir()):  # dqn-train makes a run's folder first, its files come later
        raise CheckpointError(
            f"{path} is empty: no run, checkpoint or agent folder (yet, if a run was just started "
            "there: it writes its first checkpoint after checkpoint_every_env_steps)"
        )
    return path  # what is missing is then said by the file checks


def _holds(runs: list[Path]) -> str:
    """What a folder of runs says to the user who gave it where one run belongs."""
    shown = ", ".join(str(r) for r in runs[:3]) + (", ..." if len(runs) > 3 else "")
    if len(runs) == 1:
        return f"is not a run but holds one: give it ({shown})"
    return f"holds {len(runs)} runs, not one: give one of them ({shown})"


def read_newest(path: Path, read, agent_dir: Path | None = None):
    """``read(agent_dir)`` for the agent folder ``path`` resolves to (``resolve_agent_dir``),
    read from one version of that folder.

    A run that is training deletes its older checkpoints as it writes new ones, so the newest
    checkpoint of a run can go while it is read: ``dqn-evaluate`` on a run training with
    ``keep_checkpoints: 1`` failed so in 3 of 9 tries, naming a folder that no longer existed.
    Where ``path`` is a run (not the checkpoint itself) and reading its checkpoint failed while
    the run moved on to a newer one, the newer one is read. And an agent folder that ``save``
    put anew in place while it was read (an ``on_eval`` that keeps the best agent, read by
    another process) is read again: the online network of one save had come with the target
    network, Adam state and step count of the next. ``PRUNED_RETRIES`` tries in all; any other
    error is raised as is. ``agent_dir``: where ``path`` resolved to before (its skipped
    checkpoints were named then), to start from.
    """
    path = Path(path)
    agent_dir = resolve_agent_dir(path) if agent_dir is None else agent_dir
    for tries in range(1, PRUNED_RETRIES + 1):
        before = folder_mark(agent_dir)
        try:
            result = read(agent_dir)
        except Exception as exc:
            last = tries == PRUNED_RETRIES
            if not last and _saved_again(agent_dir, before):
                continue
            newer = None if last else _newer_checkpoint(path, agent_dir)
            if newer is None:
                if (gone := _deleted_while_read(exc, agent_dir)) is not None:
                    raise gone from None
                raise
            agent_dir = newer
            continue
        if not _saved_again(agent_dir, before):
            return result
    raise CheckpointError(  # each try's folder was replaced while it was read
        f"{agent_dir} was saved again each of the {PRUNED_RETRIES} times it was read: read it "
        "once its saves pause"
    )


def _saved_again(agent_dir: Path, before: tuple[int, int] | None) -> bool:
    """Whether another folder was put at ``agent_dir`` since ``before`` (``folder_mark``): not
    one that went (a pruned checkpoint), which a newer checkpoint replaces."""
    now = folder_mark(agent_dir)
    return now is not None and now != before


def _deleted_while_read(exc: Exception, agent_dir: Path) -> CheckpointError | None:
    """The error for a checkpoint found when resolved and gone now, as what happened ("not
    found", a raw FileNotFoundError or, before, "corrupt" were what the reader met); else None."""
    checkpoint = agent_dir.parent
    if not isinstance(exc, OSError | DQNError) or checkpoint.parent.name != CHECKPOINTS:
        return None
    if checkpoint.exists():
        return None
    return CheckpointError(
        f"checkpoint {checkpoint.name} of {checkpoint.parent.parent} was deleted while it was "
        "read: a run that is training deletes its older checkpoints (keep_checkpoints); read "
        "it again"
    )


def _newer_checkpoint(path: Path, agent_dir: Path) -> Path | None:
    """The agent folder of ``path``'s run resolved anew, where it is another checkpoint than
    ``agent_dir``'s (in ``path``, a run or a study's run entry); else None."""
    checkpoint = agent_dir.parent
    if checkpoint.parent.name != CHECKPOINTS or checkpoint.absolute() == path.absolute():
        return None
    try:
        with warnings.catch_warnings():  # its skipped checkpoints were named the first time
            warnings.simplefilter("ignore", CheckpointWarning)
            again = resolve_agent_dir(path)
    except DQNError:
        return None
    return again if again != agent_dir else None


def _runs_inside(folder: Path) -> list[Path]:
    """The runs a population folder, a study folder (its ``runs/``) or an ``output_dir`` of
    runs holds: a population's members, else subfolders that are a run, a study's run entry or
    an agent folder, or the members of subfolders that are populations."""

    if listed := _population_members(folder):
        return listed
    loadable = ("run", "study run entry", "agent")
    found = []  # both levels: a folder with a run of its own beside runs/ holds all of them
    for where in (folder, folder / "runs"):
        if where.is_dir():
            for sub in sorted(d for d in where.iterdir() if d.is_dir()):
                kind = folder_kind(sub)
                if kind in loadable:
                    found.append(sub)
                elif kind == "population":  # a folder of populations: a study's populations/
                    found += _population_members(sub)
    return list(dict.fromkeys(found))  # a study's members: in its populations/ and its runs/


def _population_members(folder: Path) -> list[Path]:
    """The members' run folders that a population.json lists (a study's populations keep theirs
    in the study's runs/, not beside population.json); [] where there is none to read."""
    try:
        entries = json.loads((folder / POPULATION_FILE).read_text())["members"]
        return [Path(os.path.normpath(folder / e["run_dir"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return []

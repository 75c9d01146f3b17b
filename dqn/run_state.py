"""What a training checkpoint holds besides the agent, and how it is written and read back.

A checkpoint folder (see ``dqn.checkpoint``) holds:

- ``agent/``: ``DQNAgent.save`` (config, both networks, Adam state, exploration RNG, counters;
  its files and the checks on them are ``dqn.agent_files``);
- ``replay.npz``: the filled part of the replay ring, its write position and its RNG state;
- ``loop.npz`` / ``loop.json``: the loop's counters, the current observation and episode return,
  all episode returns, the metric window since the last metrics row, the diagnostics probe
  batch, ``first_solve``, and the training env's state (``dqn.envstate``);
- ``metrics.csv``: the rows written so far, restored verbatim on resume.

Everything is JSON, CSV or ``.npz`` read with ``allow_pickle=False``. No TensorFlow here: the
command line checks a checkpoint before it imports TF.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dqn.agent_files import (
    check_agent_fits,
    check_checkpoints_folder,
    checkpoint_step,
    latest_good_checkpoint,
    read_agent_config,
    read_npz,
)
from dqn.config import DQNConfig, changed_keys, read_saved_config, replay_capacity
from dqn.envs import check_env
from dqn.envstate import EnvSnapshot, generator_from_state
from dqn.errors import CheckpointError, ConfigError, brief
from dqn.finite import all_finite
from dqn.io import atomic_write_text, nulls_as_nan
from dqn.replay import Batch, ReplayBuffer, actions_problem, check_replay_fits
from dqn.step_metrics import METRIC_NAMES

# 2: an env's checked tables (envstate's "digest" entries), which dqn 1's loop.json reader would
# take for values. A checkpoint without them is still written as 1, which either reads.
_FORMAT_VERSION = 2
_INT_COLUMNS = ("env_step", "grad_steps", "episodes")


@dataclass
class LoopState:
    """The training loop between two env steps: enough, with agent and replay, to continue."""

    columns: list[str]
    obs: np.ndarray  # [n_envs, obs_dim]: where each env is
    env_step: int = 0
    open_returns: np.ndarray = field(default_factory=lambda: np.zeros(1))  # [n_envs]
    pending_reset: np.ndarray = field(default_factory=lambda: np.zeros(1, bool))  # [n_envs]
    episode_returns: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    window: list[np.ndarray] = field(default_factory=list)  # update metrics since the last row
    probe: Batch | None = None
    first_solve: int | None = None
    eval_mean: float = math.nan
    eval_std: float = math.nan
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    # n-step returns: per env, the steps still waiting for their n-th successor (dqn.nstep).
    pending: list[dict[str, np.ndarray]] = field(default_factory=list)


# ---------------------------------------------------------------------- metrics.csv
def metrics_csv_rows(columns: list[str], rows: list[dict], header: bool = False) -> str:
    """The exact text ``csv.DictWriter`` writes for these rows (floats as repr: round trip)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def parse_metrics_csv(text: str) -> list[dict[str, float]]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return [{k: int(v) if k in _INT_COLUMNS else float(v) for k, v in r.items()} for r in rows]


# ---------------------------------------------------------------------- writing
def save_run_state(
    folder: Path, agent: Any, replay: ReplayBuffer, loop: LoopState, env_snapshot: EnvSnapshot
) -> None:
    """Fill a checkpoint folder (``agent``: a DQNAgent or a population's MemberAgent)."""
    agent.save_into_checkpoint(folder / "agent")
    save_replay(replay, folder / "replay.npz")
    arrays = {
        "obs": np.asarray(loop.obs),
        "open_returns": np.asarray(loop.open_returns, np.float64),
        "pending_reset": np.asarray(loop.pending_reset, bool),
        "episode_returns": np.asarray(loop.episode_returns, np.float64),
        # The window keeps its dtype (float32): a mean over float64 copies would differ.
        "window": np.stack(loop.window) if loop.window else np.zeros((0, 0), np.float32),
        **{f"probe.{k}": v for k, v in (loop.probe._asdict() if loop.probe else {}).items()},
        **{f"env.{k}": v for k, v in env_snapshot.arrays.items()},
        **{
            f"pending{i}.{k}": v for i, arrays in enumerate(loop.pending) for k, v in arrays.items()
        },
    }
    with open(folder / "loop.npz", "wb") as fh:
        np.savez(fh, **arrays)
    meta = {
        "format_version": 2 if _has_tables(env_snapshot) else 1,
        "env_step": loop.env_step,
        "first_solve": loop.first_solve,
        "eval_mean": loop.eval_mean,
        "eval_std": loop.eval_std,
        "train_seconds": loop.train_seconds,
        "eval_seconds": loop.eval_seconds,
        "has_probe": loop.probe is not None,
        "env_layers": env_snapshot.layers,
        "env_uncaptured": env_snapshot.uncaptured,
    }
    atomic_write_text(folder / "loop.json", json.dumps(meta, indent=1))
    text = metrics_csv_rows(loop.columns, loop.history, header=True)
    atomic_write_text(folder / "metrics.csv", text)


def _has_tables(snapshot: EnvSnapshot) -> bool:
    return any("digest" in entry for layer in snapshot.layers for entry in layer.values())


def save_replay(replay: ReplayBuffer, path: Path) -> None:
    n = replay.size
    with open(path, "wb") as fh:
        np.savez(
            fh,
            obs=replay.obs[:n],
            actions=replay.actions[:n],
            rewards=replay.rewards[:n],
            next_obs=replay.next_obs[:n],
            terminated=replay.terminated[:n],
            position=np.int64(replay.position),
            capacity=np.int64(replay.capacity),
            rng_state=np.array(json.dumps(replay.rng.bit_generator.state)),
        )


# ---------------------------------------------------------------------- reading
def load_replay(
    path: Path, capacity: int, obs_dim: int, n_actions: int, buffer_size: int | None = None
) -> ReplayBuffer:
    """Rebuild a replay buffer saved by ``save_replay`` into a ring of ``capacity`` slots;
    CheckpointError if anything is off. A checkpoint written when every ring had its config's
    ``buffer_size`` slots (``dqn.config.replay_capacity`` now gives fewer to a run that cannot
    fill them) is read too: it never wrapped, so its rows fill the smaller ring the same way."""
    try:
        data = read_npz(path)
        state = json.loads(str(data["rng_state"]))
        rng = generator_from_state(state)
        # A run's replay samples with PCG64 (default_rng), whose state JSON holds as it is.
        if state["bit_generator"] != "PCG64":
            raise ValueError(f"its generator is {state['bit_generator']}, not PCG64")
        n = len(data["actions"])
        saved = int(data["capacity"])
        shapes_ok = (
            saved in (capacity, buffer_size)
            and 0 <= int(data["position"]) < saved
            and n <= capacity
            # the ring fills from slot 0: until it is full, it writes next where it ends
            and (n == saved or int(data["position"]) == n)
            and data["obs"].shape == data["next_obs"].shape == (n, obs_dim)
            and data["actions"].shape == data["rewards"].shape == data["terminated"].shape == (n,)
        )
    except Exception as exc:  # zip, JSON, a pickled array (refused), a missing key
        raise CheckpointError(f"{path} is not a readable replay buffer: {exc}") from None
    if not shapes_ok:
        raise CheckpointError(f"{path} does not fit a replay of {capacity} x {obs_dim}")
    # Numbers of the kinds written (under a valid manifest, strings for rewards were a
    # traceback at the copy below).
    fields = ("obs", "actions", "rewards", "next_obs", "terminated")
    if wrong := [k for k in fields if data[k].dtype.kind not in "biuf"]:
        raise CheckpointError(f"{path}: {wrong[0]} holds {data[wrong[0]].dtype}, not numbers")
    # And of the values written: what the loop stores is checked as it comes from the env. An
    # action out of range, under a valid manifest, trained on: XLA's gather clamps an index
    # past the Q-head's end to its last action instead of failing.
    if problem := _transitions_problem(data, n_actions):
        raise CheckpointError(f"{path}: {problem}")
    replay = ReplayBuffer(capacity, obs_dim, rng)
    for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
        getattr(replay, name)[:n] = data[name]
    replay.size, replay.position = n, int(data["position"]) % capacity
    return replay


def _transitions_problem(data: dict, n_actions: int) -> str | None:
    """What in stored steps no run could have stored, or None: a replay file's transitions, a
    checkpoint's probe batch, an env's n-step steps (which hold no next_obs nor terminated)."""
    for name in ("obs", "rewards", "next_obs"):
        if name in data and not all_finite(data[name]):
            return f"{name} holds NaN or infinite values"
    if problem := actions_problem(data["actions"], n_actions):
        return f"actions {problem}"
    if "terminated" in data and not np.isin(data["terminated"], (0, 1)).all():
        return "terminated holds values other than 0 and 1"
    return None


def load_run_state(
    folder: Path, config: DQNConfig, obs_dim: int, n_actions: int
) -> tuple[LoopState, ReplayBuffer, EnvSnapshot]:
    """The loop state, replay buffer and env snapshot of a verified checkpoint folder."""
    folder = Path(folder)
    replay = load_replay(
        folder / "replay.npz", replay_capacity(config), obs_dim, n_actions, config.buffer_size
    )
    try:
        meta = json.loads((folder / "loop.json").read_text())
        arrays = read_npz(folder / "loop.npz")
        text = (folder / "metrics.csv").read_text()
        history = parse_metrics_csv(text)
        columns = text.splitlines()[0].split(",")
        probe = None
        if meta["has_probe"]:
            probe = Batch(*(arrays[f"probe.{k}"] for k in Batch._fields))
        env = EnvSnapshot(
            meta["env_layers"],
            {k[len("env.") :]: v for k, v in arrays.items() if k.startswith("env.")},
            meta["env_uncaptured"],
        )
        n = len(arrays["obs"])
        loop = LoopState(
            columns=columns,
            obs=arrays["obs"],
            env_step=int(meta["env_step"]),
            open_returns=arrays["open_returns"],
            pending_reset=arrays["pending_reset"],
            episode_returns=arrays["episode_returns"].tolist(),
            history=history,
            window=list(arrays["window"]),
            probe=probe,
            first_solve=meta["first_solve"],
            eval_mean=meta["eval_mean"],
            eval_std=meta["eval_std"],
            train_seconds=meta["train_seconds"],
            eval_seconds=meta["eval_seconds"],
            pending=[
                {k: arrays[f"pending{i}.{k}"] for k in ("obs", "actions", "rewards")}
                for i in range(n)
            ],
        )
    except KeyError as exc:  # what save_run_state writes (an older dqn's loop had no open_returns)
        raise CheckpointError(
            f"checkpoint {folder.name} cannot be resumed: loop.json or loop.npz holds no {exc} "
            "(an older dqn's checkpoint, or not one dqn wrote)"
        ) from None
    except Exception as exc:  # JSON, zip, CSV
        raise CheckpointError(f"checkpoint {folder.name} cannot be resumed: {exc!r}") from None
    if loop.obs.shape != (config.num_envs, obs_dim):
        raise CheckpointError(f"checkpoint {folder.name} holds observations of another shape")
    try:
        problem = _loop_problem(meta, arrays, config, obs_dim, n_actions)
    except KeyError as exc:  # an array or key save_run_state writes
        problem = f"loop.npz or loop.json holds no {exc}"
    if problem:
        raise CheckpointError(f"checkpoint {folder.name} cannot be resumed: {problem}")
    # Before anything acts on it: a resume sets aside every checkpoint past its step, so a
    # step of -5 there took the run's good checkpoints with it.
    if loop.env_step != checkpoint_step(folder):
        raise CheckpointError(
            f"checkpoint {folder.name} cannot be resumed: its loop.json says env step "
            f"{loop.env_step}"
        )
    return loop, replay, env


def _loop_problem(
    meta: dict, arrays: dict, config: DQNConfig, obs_dim: int, n_actions: int
) -> str | None:
    """What in loop.json or loop.npz is not of the kind ``save_run_state`` writes, or None.
    Under a valid manifest, a train_seconds of null was a TypeError mid-resume, a first_solve
    of "abc" went into summary.json, and a pending step's action of 7, a window row of another
    width or a probe of text were tracebacks steps or rows later."""
    version = meta.get("format_version")
    if type(version) is not int or not 1 <= version <= _FORMAT_VERSION:
        return (
            f"loop.json's format_version is {brief(version)}; this dqn reads 1 to {_FORMAT_VERSION}"
        )

    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    for key in ("train_seconds", "eval_seconds"):
        if not number(meta[key]):
            return f"loop.json's {key} is {meta[key]!r}, not a number"
    for key in ("eval_mean", "eval_std"):
        if meta[key] is not None and not number(meta[key]):
            return f"loop.json's {key} is {meta[key]!r}, not a number or null"
    if type(meta["env_step"]) is not int:  # int() read "300" and 300.5 as the step
        return f"loop.json's env_step is {brief(meta['env_step'])}, not an env step"
    solve = meta["first_solve"]
    if solve is not None and not (isinstance(solve, int) and not isinstance(solve, bool)):
        return f"loop.json's first_solve is {solve!r}, not an env step or null"
    if not isinstance(meta["has_probe"], bool):
        return f"loop.json's has_probe is {meta['has_probe']!r}, not true or false"
    num_envs = config.num_envs
    held = arrays["pending_reset"]  # ~ of int8 zeros is -1: every env was read as stepped
    if held.shape != (num_envs,) or held.dtype != bool:
        return (
            f"loop.npz's pending_reset is {held.dtype} of shape {held.shape}, not a bool per env "
            f"({num_envs})"
        )
    window = arrays["window"]  # rows of the update metrics logged since the last row
    if window.ndim != 2 or len(window) and window.shape[1] != len(METRIC_NAMES):
        return f"loop.npz's window has shape {window.shape}, not (rows, {len(METRIC_NAMES)})"
    # Each array as the loop keeps it: its shape, numbers, finite where the env's values are.
    shapes = {
        "obs": ((num_envs, obs_dim), True),
        "open_returns": ((num_envs,), True),
        "episode_returns": ((arrays["episode_returns"].size,), True),
        "window": (window.shape, False),  # NaN where diagnostics are off
    }
    # Batches of steps, their values checked as a replay's are: the probe's, and each env's
    # steps waiting for their n-th successor.
    batches = {f"pending{i}": ("obs", "actions", "rewards") for i in range(num_envs)}
    if meta["has_probe"]:
        batches = {"probe": Batch._fields, **batches}
    for batch, fields in batches.items():
        rows = [_rows(arrays[f"{batch}.{k}"]) for k in fields]
        if min(rows) < 0 or len(set(rows)) > 1:  # named as a batch: which one is short is moot
            counts = ", ".join(f"{k} {r if r >= 0 else 'none'}" for k, r in zip(fields, rows))
            return f"loop.npz's {batch} arrays hold rows of steps {counts}: one row per step each"
        if batch == "probe" and rows[0] == 0:
            return "loop.npz's probe batch is empty"
        if batch != "probe" and rows[0] >= config.n_step:
            return f"loop.npz's {batch} holds {rows[0]} steps, more than n_step - 1"
        shapes.update({f"{batch}.{k}": (_steps_shape(k, rows[0], obs_dim), False) for k in fields})
    for key, (shape, finite) in shapes.items():
        value = arrays[key]
        if value.shape != shape or value.dtype.kind not in "biuf":
            return f"loop.npz's {key} is {value.dtype} of shape {value.shape}, not numbers {shape}"
        if finite and not all_finite(value):
            return f"loop.npz's {key} holds NaN or infinite values"
    for batch, fields in batches.items():
        steps = {k: arrays[f"{batch}.{k}"] for k in fields}
        if problem := _transitions_problem(steps, n_actions):
            return f"loop.npz's {batch}.{problem}"
    return None


def _rows(array: np.ndarray) -> int:
    """The rows of an array of steps; -1, which no shape has, for a 0-d one."""
    return array.shape[0] if array.ndim else -1


def _steps_shape(field: str, size: int, obs_dim: int) -> tuple[int, ...]:
    """The shape of one field of a batch of ``size`` steps in loop.npz."""
    return (size, obs_dim) if field in ("obs", "next_obs") else (size,)


class Resumable(NamedTuple):
    """A run's newest good checkpoint, read and checked: all that resuming needs but the agent."""

    checkpoint: Path
    skipped: list[str]  # why each newer checkpoint was skipped, one line each
    config: DQNConfig
    loop: LoopState
    replay: ReplayBuffer
    env_snapshot: EnvSnapshot


def check_run_config(run_dir: Path, config: DQNConfig) -> None:
    """CheckpointError if the run's config.yaml no longer says what its checkpoint was trained
    with: a resumed run continues as it was trained, so an edit there would take no effect and
    leave a config.yaml that describes a run that never happened."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return  # written at the start of every run; an older or hand-made folder may lack it
    try:
        written = read_saved_config(path).to_dict()
    except ConfigError as exc:
        raise CheckpointError(f"cannot resume {run_dir}: {exc}") from None
    if changed := changed_keys(written, config.to_dict()):
        raise CheckpointError(
            f"{path} differs from the config {run_dir} was trained with ({', '.join(changed)}), "
            "or its checkpoint is another run's; "
            "a resumed run continues with its own config: restore config.yaml, or start a new "
            "run with the new settings"
        )


# summary.json's numbers a run may not have (stopped before its first evaluation): null in the
# file, NaN once read, as the run's own TrainResult holds them.
_EVAL_NUMBERS = ("final_eval_mean", "final_eval_std")


def read_summary(run_dir: Path) -> dict:
    """The run's summary.json (OSError or ValueError if it cannot be read)."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    return nulls_as_nan(summary, _EVAL_NUMBERS) if isinstance(summary, dict) else summary


def summary_problem(run_dir: Path) -> str | None:
    """What is wrong with the run's summary.json as one (``is unreadable``, ``is not a run's
    summary``: JSON of another shape, as [] or {}), or None."""
    try:
        summary = read_summary(run_dir)
    except (OSError, ValueError):
        return "is unreadable"
    if isinstance(summary, dict) and {"env_steps", "interrupted", "diverged"} <= summary.keys():
        return None
    return "is not a run's summary"


def ended_summary(run_dir: Path, total_env_steps: int) -> dict | None:
    """The run's summary.json if it says the run has ended (the divergence guard stopped it, or
    it took all ``total_env_steps`` without a signal); None if not, or if there is none.

    A run killed after its final checkpoint but before its summary has no ended summary: its
    resume writes the summary from that checkpoint, without a step of training."""
    try:
        summary = read_summary(run_dir)
        ended = summary["diverged"] or (
            not summary["interrupted"] and summary["env_steps"] >= total_env_steps
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return summary if ended else None


def prepare_resume(run_dir: Path, available_memory: int | None = None) -> Resumable:
    """Find, verify and read the checkpoint to resume; CheckpointError naming what is wrong,
    among it a replay that does not fit ``available_memory`` bytes (None: not checked; the
    callers pass ``dqn.runtime.available_memory_bytes()``, which this TF-free module does not
    import)."""
    check_checkpoints_folder(run_dir)  # a resume sets aside, prunes and writes in it
    found = latest_good_checkpoint(run_dir)
    config = read_agent_config(found.path / "agent")
    obs_dim, n_actions = check_env(config.env_id, config.env_kwargs)
    check_agent_fits(found.path / "agent", config.env_id, obs_dim, n_actions)
    check_run_config(run_dir, config)
    try:  # as a new run is checked, before its replay is read back (on a machine with less)
        check_replay_fits(replay_capacity(config), obs_dim, available_memory)
    except ConfigError as exc:
        raise CheckpointError(f"run {run_dir} cannot be resumed in this memory: {exc}") from None
    loop, replay, snapshot = load_run_state(found.path, config, obs_dim, n_actions)
    complete = loop.env_step >= config.total_env_steps
    if complete and ended_summary(run_dir, config.total_env_steps) is not None:
        raise CheckpointError(
            f"run {run_dir} is already complete ({loop.env_step} of {config.total_env_steps} "
            "env steps); nothing to resume"
        )
    return Resumable(found.path, found.skipped, config, loop, replay, snapshot)

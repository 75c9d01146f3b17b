"""train_population(config, members) / resume_population(folder): many runs in one program.

The one loop of ``dqn.loop`` for M members in lockstep: every loop step acts for all members
with one batched forward pass, steps each member's own env, stores each member's transitions
in its own replay ring, and runs the gradient steps owed as ONE burst of the population
learner (``dqn.learner.PopulationLearner``: parameters stacked on a member axis, batched
matmuls) for every member at once. Members are configs that share ``dqn.members.SHARED_KEYS``
and may differ in everything else (loss, learning rate, gamma, clipping, Double DQN, target
sync, epsilon, seed), so one program can hold all the loss variants of a study.

Each member writes the run folder a single run writes (config.yaml, metrics.csv, tb/,
checkpoints/, summary.json): ``dqn-evaluate``, ``DQNAgent.load`` and the comparison report read
it unchanged. A member stopped by the divergence guard is recorded as stopped (its
summary.json says where and why) and the others go on. The population folder holds
``population.json`` (the members and their run folders) and ``population-step.json`` (the
newest step at which every running member has a checkpoint), from which
``resume_population`` continues exactly, also after SIGKILL.

Nothing couples members: a member's trajectory depends only on its own config and seed
(tests perturb one member and check that the others stay bit-identical).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dqn.config import DQNConfig
from dqn.errors import CheckpointError, ConfigError
from dqn.io import atomic_write_text
from dqn.members import check_population
from dqn.population_loop import (
    POPULATION_FILE,
    STEP_FILE,
    MemberResult,
    PopulationLoop,
)
from dqn.replay import check_population_fits, row_layout

Progress = Callable[[int], None]  # called with the env steps (summed over members) just done


@dataclass(frozen=True)
class Member:
    """One run of a population: the base config's overrides and the seed, and a label that
    names its run folder (``<label>-seed<seed>``; an (overrides, seed) pair is labelled
    ``member<i>`` by its place in the list)."""

    overrides: Mapping[str, Any]
    seed: int
    label: str = "member"

    def config(self, base: DQNConfig) -> DQNConfig:
        return base.replace(**dict(self.overrides), seed=self.seed)


def as_member(item: Member | tuple, index: int = 0) -> Member:
    """A Member from a Member or an (overrides, seed) pair (labelled ``member<index>``)."""
    if isinstance(item, Member):
        return item
    try:
        overrides, seed = item
    except (TypeError, ValueError):
        raise ConfigError(
            f"a member is a Member or an (overrides, seed) pair, got {item!r}"
        ) from None
    return Member(dict(overrides or {}), int(seed), f"member{index}")


def train_population(
    config: DQNConfig,
    members: Sequence[Member | tuple],
    *,
    out_dir: str | Path | None = None,
    run_dirs: Sequence[str | Path] | None = None,
    progress: bool | Progress = True,
    log_tensorboard: bool = True,
) -> list[MemberResult]:
    """Train every member of ``members`` on ``config`` in one program; one run folder each.

    ``out_dir`` holds the population's own files (default: a new folder under
    ``config.output_dir``); ``run_dirs`` the members' folders (default: ``out_dir/<label>-
    seed<k>``). Every member config is validated, the members checked to share what they must,
    and the memory of all replay rings checked, before anything is written.
    """
    members = [as_member(m, i) for i, m in enumerate(members)]
    configs = [m.config(config) for m in members]
    check_population(configs)
    from dqn.envs import check_env

    check_memory(configs, *check_env(config.env_id))
    if out_dir is None:
        out_dir = Path(config.output_dir) / f"population-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(out_dir)
    if run_dirs is None:
        run_dirs = [out / f"{m.label}-seed{m.seed}" for m in members]
    if len(run_dirs) != len(members):
        raise ConfigError(f"{len(members)} members but {len(run_dirs)} run folders")
    folders = [Path(d).resolve() for d in run_dirs]
    if len(set(folders)) != len(folders):
        twice = next(str(d) for d in folders if folders.count(d) > 1)
        raise ConfigError(f"two members would write the same run folder {twice}: give them labels")
    out.mkdir(parents=True, exist_ok=True)
    entries = [
        {
            "label": m.label,
            "seed": m.seed,
            "run_dir": _relative(Path(d), out),
            "config": c.to_dict(),
        }
        for m, d, c in zip(members, run_dirs, configs)
    ]
    atomic_write_text(out / POPULATION_FILE, json.dumps({"members": entries}, indent=1))
    (out / STEP_FILE).unlink(missing_ok=True)
    loop = PopulationLoop.start(configs, [Path(d) for d in run_dirs], out, log_tensorboard)
    return loop.run(progress)


def resume_population(
    out_dir: str | Path, *, progress: bool | Progress = True, log_tensorboard: bool = True
) -> list[MemberResult]:
    """Continue a population from the newest step at which every running member checkpointed,
    exactly as if it had never stopped (members stopped by the guard stay stopped)."""
    out = Path(out_dir)
    configs, run_dirs = read_population(out)
    step_file = out / STEP_FILE
    if not step_file.is_file():
        raise CheckpointError(f"population {out} has no checkpoint yet ({STEP_FILE} is missing)")
    try:
        marker = json.loads(step_file.read_text())
        step, stopped = int(marker["env_step"]), [int(i) for i in marker["stopped"]]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"population {out}: {STEP_FILE} is corrupt") from None
    if step >= configs[0].total_env_steps:
        raise CheckpointError(f"population {out} is already complete ({step} env steps)")
    loop = PopulationLoop.resume(configs, run_dirs, out, step, stopped, log_tensorboard)
    return loop.run(progress)


def read_population(out: Path) -> tuple[list[DQNConfig], list[Path]]:
    """The members' configs and run folders of a population folder; CheckpointError if not."""
    path = out / POPULATION_FILE
    if not path.is_file():
        raise CheckpointError(f"{out} is not a population folder ({POPULATION_FILE} is missing)")
    try:
        entries = json.loads(path.read_text())["members"]
        configs = [DQNConfig.from_dict(e["config"]) for e in entries]
        run_dirs = [out / e["run_dir"] for e in entries]
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"population {out}: {POPULATION_FILE} is corrupt: {exc}") from None
    return configs, run_dirs


def member_bytes(config: DQNConfig, obs_dim: int, n_actions: int) -> int:
    """Memory one member holds besides its replay ring, in bytes (float32): its replay ring is
    (2 obs_dim + 3) x 4 bytes per transition; then 6 copies of its P parameters (online, target,
    Adam's two moments, the gradient, the acting view), a burst of sampled rows, and the
    activations of its diagnostics probe batch (3 arrays per hidden unit per probe state)."""
    from dqn.loop import PROBE_SIZE

    widths = [obs_dim, *config.hidden_sizes, n_actions]
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    rows = config.gradient_steps_per_train * config.batch_size * row_layout(obs_dim).width
    activations = 3 * PROBE_SIZE * sum(widths[1:])
    return 4 * (6 * params + rows + activations)


def check_memory(configs: Sequence[DQNConfig], obs_dim: int, n_actions: int) -> None:
    """A one-line ConfigError, before anything is written, if these members cannot all be held
    in this machine's available memory at once: bytes needed and available."""
    from dqn.runtime import available_memory_bytes

    check_population_fits(
        [c.buffer_size for c in configs],
        obs_dim,
        available_memory_bytes(),
        sum(member_bytes(c, obs_dim, n_actions) for c in configs),
    )


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve())


__all__ = [
    "STEP_FILE",
    "check_memory",
    "member_bytes",
    "Member",
    "MemberResult",
    "as_member",
    "read_population",
    "resume_population",
    "train_population",
]

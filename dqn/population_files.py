"""What a population keeps besides its members' run folders, and how a member saves.

- ``population.json``: the members (config and run folder each), written before training;
- ``population-step.json``: the newest env step at which every running member has a good
  checkpoint, and the members stopped before it (by the divergence guard, a NaN from their env
  or on_eval); written after the last member's checkpoint of a step, so it only ever names a
  step that can be resumed;
- ``Network``: what every member's network shares (shapes, activations, the diagnostics' layer
  names) and one pair of Keras models into which a member's weights are written when it saves,
  in the format of ``DQNAgent.save``: a member's checkpoint is a single run's checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dqn.agent_files import POPULATION_FILE, STEP_FILE, checkpoint_step, list_checkpoints
from dqn.config import DQNConfig, saved_config
from dqn.diagnostics import diagnostic_names
from dqn.errors import CheckpointError, ConfigError
from dqn.io import atomic_write_text, write_dir_atomically
from dqn.learner import LearnerArrays

# POPULATION_FILE: the members, their configs and run folders; STEP_FILE: the newest step
# every running member checkpointed (named in dqn.agent_files, which reads folders without TF).
TIMING_FILE = "timing.json"  # where the loop's wall time went (``write_timing``)


@dataclass
class MemberResult:
    """What one member produced (its run folder holds the rest; ``DQNAgent.load(run_dir)``)."""

    config: DQNConfig
    run_dir: Path
    history: list[dict[str, float]]
    first_solve_env_step: int | None
    final_eval_mean: float
    final_eval_std: float
    diverged: str | None
    train_seconds: float
    summary: dict

    # As TrainResult's: a member stopped by a signal or by on_eval can continue.
    @property
    def interrupted(self) -> bool:
        return bool(self.summary.get("interrupted"))

    @property
    def stop_signal(self) -> int | None:
        return self.summary.get("stop_signal")


def write_step_marker(out: Path, env_step: int, stopped: list[int]) -> None:
    atomic_write_text(out / STEP_FILE, json.dumps({"env_step": env_step, "stopped": stopped}))


def write_timing(out: Path, timing: dict) -> None:
    """The population loop's wall time and its learner's and evaluations' shares, in seconds,
    for the env steps this process ran (a resumed population overwrites it with its own)."""
    atomic_write_text(out / TIMING_FILE, json.dumps(timing, indent=1))


def read_step_marker(out: Path) -> tuple[int, list[int]]:
    """(env step, stopped members) of a population's step marker; CheckpointError if none."""
    path = out / STEP_FILE
    if not path.is_file():
        raise CheckpointError(
            f"population {out} has no checkpoint yet ({STEP_FILE} is missing): it stopped "
            "before its first, and there is nothing to continue; delete the folder and train "
            "it again"
        )
    try:
        marker = json.loads(path.read_text())
        step, stopped = marker["env_step"], marker["stopped"]
        if not all(type(n) is int for n in (step, *stopped)):  # as written: ints, in a list
            raise TypeError
        return step, list(stopped)
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"population {out}: {STEP_FILE} is corrupt") from None


def trained_past(run_dir: Path, marker: int) -> int | None:
    """The newest checkpoint step of a member's run all of whose checkpoints are past the
    population's step ``marker``, as those of a run trained on without the population
    (``dqn-train --resume`` of it); None for a run that still holds one at or before it."""
    steps = [checkpoint_step(p) for p in list_checkpoints(run_dir)]
    return max(steps) if steps and min(steps) > marker else None


def relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start``, both resolved: how population.json names a member's run
    folder, and how messages name it."""
    return os.path.relpath(path.resolve(), start.resolve())


def write_population(
    out: Path,
    members: Sequence[tuple[str, int]],
    run_dirs: Sequence[Path],
    configs: Sequence,
    name: str = POPULATION_FILE,
) -> None:
    """``population.json`` (or a file of that form, ``name``): each member's (label, seed), run
    folder (relative to ``out``) and config, in the order the members train in (a member's
    numbers depend on it)."""
    entries = [
        {
            "label": label,
            "seed": seed,
            "run_dir": relative(Path(d), Path(out)),
            "config": c.to_dict(),
        }
        for (label, seed), d, c in zip(members, run_dirs, configs, strict=True)
    ]
    atomic_write_text(Path(out) / name, json.dumps({"members": entries}, indent=1))


def read_population(out: Path, name: str = POPULATION_FILE) -> tuple[list[DQNConfig], list[Path]]:
    """The members' configs and run folders of a population folder (from its ``name``, which
    ``write_population`` wrote); CheckpointError if not."""
    path = out / name
    if not Path(out).exists():
        raise CheckpointError(f"no population folder at {out}")
    if not path.is_file():
        raise CheckpointError(f"{out} is not a population folder ({name} is missing)")
    try:
        entries = json.loads(path.read_text())["members"]
        configs = [saved_config(e["config"]) for e in entries]
        run_dirs = [out / e["run_dir"] for e in entries]
        if not configs:
            raise ValueError("it lists no members")
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"population {out}: {name} is corrupt: {exc}") from None
    return configs, run_dirs


class Network:
    """What every member's network shares: shapes, activations, layer names, and one pair of
    Keras models to write a member's weights into when it saves (the agent format)."""

    def __init__(self, config: DQNConfig, obs_dim: int, n_actions: int) -> None:
        from dqn.networks import FlatNetwork

        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.flat = FlatNetwork(self.build(config))
        self.target_model = self.build(config)
        self.activations = [config.activation] * len(config.hidden_sizes) + ["linear"]
        self.slices = self.flat.layer_slices()

    def build(self, config: DQNConfig):
        from dqn.networks import build_mlp

        return build_mlp(
            self.obs_dim, self.n_actions, config.hidden_sizes, config.activation, config.seed
        )

    def initial(self, config: DQNConfig) -> np.ndarray:
        """The member's initial parameters: those DQNAgent builds for the same seed."""
        from dqn.networks import FlatNetwork

        return FlatNetwork(self.build(config)).read()

    def diagnostic_names(self) -> list[str]:
        return diagnostic_names(self.slices, self.activations)

    def save_agent(self, folder: Path, config: DQNConfig, state: LearnerArrays, rng) -> None:
        from dqn.agent_io import write_agent_folder

        def fill(tmp: Path) -> None:
            self.flat.write(state.online)
            self.flat.write(state.target, self.target_model)
            write_agent_folder(
                tmp,
                config,
                self.flat.model,
                self.target_model,
                state,
                (self.obs_dim, self.n_actions),
                rng.bit_generator.state,
            )

        write_dir_atomically(folder, fill)


__all__ = [
    "POPULATION_FILE",
    "STEP_FILE",
    "MemberResult",
    "Network",
    "read_population",
    "read_step_marker",
    "relative",
    "trained_past",
    "write_population",
    "write_step_marker",
]

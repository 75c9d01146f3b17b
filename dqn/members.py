"""A population's members: which config keys they must share, and their per-member settings.

A population trains P members in one program (``dqn.population``). A member is a config: the
base config with a variant's overrides and a seed. What shapes the program (spaces, network,
batch, the schedule of bursts, evaluations and checkpoints, the learner) must be the same for
all; what only changes numbers inside the update or the acting (loss, learning rate and its
schedule, gamma and n-step, Huber bound, gradient clipping, Double DQN, target sync, epsilon,
replay size, seed) may differ. The population learners read the per-member numbers as [P]
arrays (``MemberSettings``). No TensorFlow here.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from dqn.config import (
    LOSS_NAMES,
    DQNConfig,
    bootstrap_discount,
    replay_capacity,
    total_grad_steps,
)
from dqn.diagnostics import PROBE_SIZE
from dqn.errors import ConfigError
from dqn.replay import check_population_fits, ring_bytes, row_layout
from dqn.runtime import available_memory_bytes

# A member's or a variant's label names its run folders (``<label>-seed<k>``): no path
# separators, no leading dot, no spaces, so that a label cannot place a run outside its study.
LABEL_CHARS = "ASCII letters, digits and _ . + - (not starting with .)"
_LABEL = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")


# A file name holds at most 255 bytes on Linux's and macOS's filesystems; a label of 260
# characters failed its run in the worker ("File name too long") after the study had started.
MAX_LABEL_CHARS = 100


def check_label(label: object, what: str) -> None:
    """ConfigError unless ``label`` may name run folders; ``what`` names it in the message."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ConfigError(f"{what} {label!r} may hold only {LABEL_CHARS}")
    if len(label) > MAX_LABEL_CHARS:
        raise ConfigError(
            f"{what} {label[:20]!r}... is {len(label)} characters long; at most "
            f"{MAX_LABEL_CHARS}, since it names run folders (<label>-seed<k>)"
        )


def configured(base: DQNConfig, overrides, seed: int, who: str) -> DQNConfig:
    """``base`` with a variant's or member's ``overrides`` and ``seed``; a ConfigError they
    raise starts with ``who`` ("variant 'b'"), since a study or population holds many."""
    try:
        return base.replace(**dict(overrides), seed=seed)
    except ConfigError as exc:
        raise ConfigError(f"{who}: {exc}") from None


# Keys every member of one population shares: they fix the shapes, the loop's schedule or
# the backend of the one compiled program.
SHARED_KEYS = (
    "env_id",
    "env_kwargs",
    "hidden_sizes",
    "activation",
    "batch_size",
    "total_env_steps",
    "train_every_env_steps",
    "gradient_steps_per_train",
    "learning_starts_env_steps",
    "eval_every_env_steps",
    "eval_episodes",
    "final_eval_episodes",
    "eval_seed",
    "checkpoint_every_env_steps",
    "keep_checkpoints",
    "num_envs",
    "learner",
    "jit_compile",
    "diagnostics",
    "num_threads",
    "deterministic",
)


def population_mismatch(configs: Sequence[DQNConfig]) -> str | None:
    """Why these configs cannot share one population, or None if they can."""
    if not configs:
        return "a population needs at least one member"
    first = configs[0]
    for key in SHARED_KEYS:
        values = [repr(getattr(c, key)) for c in configs]
        if len(set(values)) > 1:
            # Which member: among 30, the values alone left the user to hunt for it.
            other = next(i for i, v in enumerate(values) if v != values[0])
            return (
                f"members differ in {key!r} (member 0: {values[0]}, member {other}: "
                f"{values[other]}), which they must share"
            )
    if first.num_envs != 1:
        return f"population members step one env each (num_envs 1), got num_envs={first.num_envs}"
    return None


def first_repeat(configs: Sequence[DQNConfig]) -> tuple[int, int] | None:
    """(i, j): the first config, j, equal to an earlier one, i; None if all differ. Two runs of
    one config and seed write the same bytes on one machine: the second costs a run and counts
    the first twice in any statistic over runs."""
    first: dict[DQNConfig, int] = {}
    for j, config in enumerate(configs):
        if (i := first.setdefault(config, j)) != j:
            return i, j
    return None


def check_population(configs: Sequence[DQNConfig]) -> None:
    """ConfigError naming the first key the members must share but do not."""
    why = population_mismatch(configs)
    if why is not None:
        raise ConfigError(f"cannot train these configs as one population: {why}")


def check_members(
    configs: Sequence[DQNConfig],
    shapes: Sequence[tuple[int, ...]],
    activations: Sequence[str],
    supported: Sequence[str],
    online: np.ndarray,
) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """What both population learners check of their arguments: members that can share a
    program, a chain of Dense layers ([W0, b0, W1, b1, ...]) with ``supported`` activations,
    and [M, P] float32 initial parameters. Returns (shapes as int tuples, online)."""
    check_population(configs)
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if len(shapes) != 2 * len(activations):
        raise ValueError("a Dense chain has a kernel and a bias per layer")
    unknown = [a for a in activations if a not in supported]
    if unknown:
        raise ValueError(f"no activation {unknown[0]!r}; supported: {', '.join(supported)}")
    for i, (w, b) in enumerate(zip(shapes[0::2], shapes[1::2])):
        chained = i == 0 or w[0] == shapes[2 * i - 2][1]
        if len(w) != 2 or b != (w[1],) or not chained:
            raise ValueError(f"layer {i}: shapes {w}, {b} do not continue a Dense chain")
    online = np.array(online, np.float32)
    size = sum(int(np.prod(s)) for s in shapes)
    if online.shape != (len(configs), size):
        raise ValueError(f"online must be [{len(configs)}, {size}], got {online.shape}")
    return shapes, online


class MemberSettings(NamedTuple):
    """The numbers of the update that may differ between members, each a [P] array."""

    loss_id: np.ndarray  # int: index into LOSS_NAMES
    loss_bound: np.ndarray  # float32
    learning_rate: np.ndarray  # float64: start of the schedule
    learning_rate_end: np.ndarray  # float64: end of the schedule (= start when constant)
    total_grad_steps: np.ndarray  # int: length of the schedule (>= 1)
    discount: np.ndarray  # float64: gamma^n, the bootstrap discount
    double_dqn: np.ndarray  # bool
    max_grad_norm: np.ndarray  # float32: inf for no clipping
    target_every: np.ndarray  # int: target sync period in gradient steps
    target_tau: np.ndarray  # float32
    adam_epsilon: np.ndarray  # float32


def member_settings(configs: Sequence[DQNConfig]) -> MemberSettings:
    def col(fn, dtype):
        return np.array([fn(c) for c in configs], dtype)

    return MemberSettings(
        loss_id=col(lambda c: LOSS_NAMES.index(c.loss), np.int64),
        loss_bound=col(lambda c: c.loss_bound, np.float32),
        learning_rate=col(lambda c: c.learning_rate, np.float64),
        learning_rate_end=col(
            lambda c: c.learning_rate if c.learning_rate_end is None else c.learning_rate_end,
            np.float64,
        ),
        total_grad_steps=col(lambda c: max(total_grad_steps(c), 1), np.int64),
        discount=col(bootstrap_discount, np.float64),
        double_dqn=col(lambda c: c.double_dqn, bool),
        max_grad_norm=col(
            lambda c: np.inf if c.max_grad_norm is None else c.max_grad_norm, np.float32
        ),
        target_every=col(lambda c: c.target_update_every_grad_steps, np.int64),
        target_tau=col(lambda c: c.target_tau, np.float32),
        adam_epsilon=col(lambda c: c.adam_epsilon, np.float32),
    )


# How much member state one group of members may hold (4 float32 vectors of P: online, target,
# Adam's two moments). Each group runs its K steps before the next one starts, so only one
# group's state has to stay in the CPU's caches. Measured (``python -m
# benchmarks.population_scaling``): [256, 256] members (1.1 MB each) step at a single member's
# rate in groups of 4 and ~25% slower all 25 together; [64, 64] members (73 KB each) are
# fastest all in one group, where every extra group's ops cost more than the caches save.
GROUP_BYTES = 4_500_000


def group_size(shapes: Sequence[tuple[int, ...]]) -> int:
    """Members per group of ``dqn.tf_population`` for a network of these parameter shapes (at
    least 1)."""
    state_bytes = 4 * 4 * sum(math.prod(s) for s in shapes)
    return max(1, GROUP_BYTES // state_bytes)


def learning_rates(settings: MemberSettings, grad_steps: np.ndarray) -> np.ndarray:
    """Each member's learning rate before its next step (float64 [P]), as the single learners
    compute it: constant, or linear from start to end over the run's gradient steps."""
    frac = np.minimum(1.0, grad_steps / settings.total_grad_steps)
    return settings.learning_rate + frac * (settings.learning_rate_end - settings.learning_rate)


def parameter_shapes(config: DQNConfig, obs_dim: int, n_actions: int) -> list[tuple[int, ...]]:
    """One member's parameter shapes in flat order, [W0, b0, W1, b1, ...], for its MLP."""
    widths = [obs_dim, *config.hidden_sizes, n_actions]
    return [s for a, b in zip(widths[:-1], widths[1:]) for s in ((a, b), (b,))]


# Bytes the TensorFlow learner holds at its peak per byte of a burst's sampled rows: the sampled
# numpy array, the tensor made of it and the compiled program's own copy, and on some CPUs about
# one more. Measured (``python -m benchmarks.population_memory --pad-obs D --members ...``, the
# slope of peak RSS per member, less its ring and the rest of ``member_bytes``): 3.0 copies on
# the seventh machine (D = 1000); on the sixth's CPU, two runs each, 4.06-4.09 (D = 1000),
# 4.07-4.08 (D = 2000) and 2.99-3.07 (D = 3000) (docs/population-memory-sixth-rows.md), where 3
# had counted 16 1000-D members 972 MB short. 4.25 covers each with a margin; the numpy learner
# holds one copy (8 members: 1,448 MB, 1,575 MB estimated).
TF_ROWS_COPIES = 4.25


def member_bytes(config: DQNConfig, obs_dim: int, n_actions: int) -> int:
    """Memory one member holds besides its replay ring, in bytes (float32): its replay ring is
    (2 obs_dim + 3) x 4 bytes per transition; then 6 copies of its P parameters (online, target,
    Adam's two moments, the gradient, the acting view), a burst of sampled rows (TF_ROWS_COPIES
    times its size with the TensorFlow learner), and the activations of its diagnostics probe
    batch (3 arrays per hidden unit per probe state)."""
    params = sum(math.prod(s) for s in parameter_shapes(config, obs_dim, n_actions))
    rows = config.gradient_steps_per_train * config.batch_size * row_layout(obs_dim).width
    if config.learner == "tensorflow":
        rows = math.ceil(rows * TF_ROWS_COPIES)
    activations = 3 * PROBE_SIZE * (sum(config.hidden_sizes) + n_actions)
    return 4 * (6 * params + rows + activations)


# What a training process holds before its first member: Python, numpy, TensorFlow's runtime and
# thread pools. Measured (``python -m benchmarks.population_memory``, TensorFlow 2.21, one thread,
# by the intercept of peak RSS over member counts; docs/population-memory-sixth.md): 789 MB with
# [256, 256] networks, 822 MB with [64, 64]; rounded up.
PROCESS_BYTES = 850_000_000
# What one group of members (``group_size``) adds to a TensorFlow population beyond its members'
# ``member_bytes``: its copy of the step in the compiled program, the compiler's working memory
# and the program's buffers. Measured by the same benchmark: 25 [256, 256] members (7 groups)
# peaked 15 MB a member above ``member_bytes`` and its ring, ~62 MB a group of 4 (18 MB and ~72
# MB on another machine); 32 [64, 64] members (one group) about as much as their estimate.
PROGRAM_BYTES = 75_000_000
# Parameter-sized float32 arrays the numpy population learner holds a second time per active
# member once some members are stopped: the active members' own learner
# (``NumpyPopulationLearner._burst_of``: online, target, two moments, gradient, scratch).
SUBSET_COPIES = 6


def population_bytes(
    configs: Sequence[DQNConfig], obs_dim: int, n_actions: int, runtime: bool
) -> int:
    """Memory one population of these members needs at its peak, in bytes: every replay ring
    full, and ``besides_rings``."""
    rings = sum(ring_bytes(replay_capacity(c), obs_dim) for c in configs)
    return rings + besides_rings(configs, obs_dim, n_actions, runtime)


def besides_rings(configs: Sequence[DQNConfig], obs_dim: int, n_actions: int, runtime: bool) -> int:
    """What a population holds besides its replay rings: ``member_bytes`` per member,
    ``PROGRAM_BYTES`` per compiled group (TensorFlow learner) or ``SUBSET_COPIES`` more
    parameter copies per member (numpy learner), and ``PROCESS_BYTES`` if ``runtime`` (a
    process that has yet to load it)."""
    if not configs:
        return 0
    members = sum(member_bytes(c, obs_dim, n_actions) for c in configs)
    shapes = parameter_shapes(configs[0], obs_dim, n_actions)
    compiled = configs[0].learner == "tensorflow"
    if compiled:
        learner = -(-len(configs) // group_size(shapes)) * PROGRAM_BYTES
    else:
        learner = len(configs) * 4 * SUBSET_COPIES * sum(math.prod(s) for s in shapes)
    return members + learner + (PROCESS_BYTES if runtime else 0)


def env_of(config: DQNConfig) -> tuple:
    """The env a config trains on: its id and its env_kwargs, which may change its spaces
    (FrozenLake's map_name, a wrapper's option)."""
    return config.env_id, config.env_kwargs


def check_memory(
    chunks: Sequence[Sequence[DQNConfig]],
    spaces: Mapping[tuple, tuple[int, int]],
    new_processes: bool = False,
) -> None:
    """A one-line ConfigError, before anything is written, if these populations cannot all be
    held in the available memory at once (``dqn.runtime.available_memory_bytes``): bytes needed
    and available. ``spaces`` gives each env's (``env_of``) (obs_dim, n_actions)
    (``dqn.envs.check_env``): a study's variants may train on other envs. With
    ``new_processes`` each trains in a process of its own (dqn-compare's workers); without, in
    this process, which counts TensorFlow's runtime only if it has not loaded it yet."""
    runtime = new_processes or "tensorflow" not in sys.modules
    check_population_fits(
        [(replay_capacity(c), spaces[env_of(c)][0]) for chunk in chunks for c in chunk],
        available_memory_bytes(),
        sum(besides_rings(chunk, *spaces[env_of(chunk[0])], runtime) for chunk in chunks),
        processes=len(chunks) if runtime else 0,
    )


def heaviest_at_once(
    chunks: Sequence[Sequence[DQNConfig]], at_once: int, spaces: Mapping[tuple, tuple[int, int]]
) -> list[Sequence[DQNConfig]]:
    """The ``at_once`` chunks that need the most memory (``population_bytes``, with each chunk's
    env's (obs_dim, n_actions) from ``spaces``): the most that a pool running ``at_once`` chunks
    at a time holds together.

    Why not every chunk: a study of more chunks than workers never holds them all at once, and
    a check of all of them would refuse a study that fits (a 150-run study on two workers holds
    two chunks of 25, not six).
    """

    def need(chunk: Sequence[DQNConfig]) -> int:
        return population_bytes(chunk, *spaces[env_of(chunk[0])], runtime=True)

    return sorted(chunks, key=need, reverse=True)[: max(1, at_once)]


__all__ = [
    "GROUP_BYTES",
    "PROCESS_BYTES",
    "PROGRAM_BYTES",
    "SHARED_KEYS",
    "besides_rings",
    "group_size",
    "parameter_shapes",
    "population_bytes",
    "heaviest_at_once",
    "MAX_LABEL_CHARS",
    "check_label",
    "configured",
    "check_members",
    "check_memory",
    "member_bytes",
    "MemberSettings",
    "check_population",
    "learning_rates",
    "member_settings",
    "population_mismatch",
]

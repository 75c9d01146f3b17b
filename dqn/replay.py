"""Uniform experience replay in preallocated numpy ring arrays (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from dqn.errors import ConfigError
from dqn.finite import in_float32_range


class Batch(NamedTuple):
    """Transitions (s_tm1, a_tm1, r_t, s_t, terminated_t); leading shape [batch] or [k, batch].

    With n-step returns (``config.n_step`` = n) a transition spans n env steps: ``rewards`` is
    r_{t+1} + ... + gamma^(n-1) r_{t+n} and ``next_obs`` is s_{t+n} (``dqn.nstep``)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray


class RowLayout(NamedTuple):
    """Where each field of a transition sits in a packed replay row (float32).

    The one definition of the layout: the buffer, both learners and ``pack_batch`` read it.
    """

    obs: slice
    next_obs: slice
    action: int  # stored as a float: exact below 2**24
    reward: int
    terminated: int
    width: int


def row_layout(obs_dim: int) -> RowLayout:
    """[obs | next_obs | action, reward, terminated] for observations of ``obs_dim``."""
    d = obs_dim
    return RowLayout(slice(0, d), slice(d, 2 * d), 2 * d, 2 * d + 1, 2 * d + 2, 2 * d + 3)


class ReplayBuffer:
    """A ring of ``capacity`` transitions; the oldest is overwritten once full.

    Stores ``terminated`` (a true terminal state: no bootstrap), never ``done``: a time-limit
    truncation is not terminal and its target must still bootstrap from ``next_obs``.
    """

    def __init__(self, capacity: int, obs_dim: int, rng: np.random.Generator):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.capacity = int(capacity)
        self.obs_dim = int(obs_dim)
        # One float32 row per transition, [obs | next_obs | action, reward, terminated]: a
        # sample is one fancy-index and the compiled update takes one tensor instead of five
        # (each tensor argument of a TF call costs dispatch time). The named fields are views.
        layout = row_layout(obs_dim)
        self.rows = np.zeros((capacity, layout.width), np.float32)
        self.obs, self.next_obs = self.rows[:, layout.obs], self.rows[:, layout.next_obs]
        self.actions, self.rewards, self.terminated = (
            self.rows[:, i] for i in (layout.action, layout.reward, layout.terminated)
        )
        self.rng = rng
        self.position = 0  # next slot to write
        self.size = 0  # filled slots

    def __len__(self) -> int:
        return self.size

    def largest_abs_obs(self) -> float:
        """The largest |value| of the stored observations (0 while empty): asked when an update
        diverges, to name observations too large for a network (``dqn.divergence``)."""
        stored = self.rows[: self.size, : 2 * self.obs_dim]
        return float(np.abs(stored).max()) if stored.size else 0.0

    def add(self, obs, action: int, reward: float, next_obs, terminated: bool) -> None:
        i = self._take_slot()
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated

    def add_row(self, row: np.ndarray) -> None:
        """Add one transition already packed as a row (``pack_batch``)."""
        self.rows[self._take_slot()] = row

    def _take_slot(self) -> int:
        """The slot the next transition goes to; the ring moves on past it."""
        i = self.position
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def sample(
        self,
        batch_size: int,
        num_batches: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> Batch:
        """Uniform sample (with replacement) of filled slots.

        With ``num_batches=k`` the arrays have leading shape [k, batch_size]: k independent
        batches drawn at once for a fused burst of k gradient steps. ``rng`` draws from another
        generator (e.g. a diagnostics probe) without disturbing the buffer's own stream.
        """
        return unpack_rows(self.sample_rows(batch_size, num_batches, rng), self.obs_dim)

    def sample_rows(
        self,
        batch_size: int,
        num_batches: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Like ``sample``, as packed rows [..., row_layout(obs_dim).width] (the training fast
        path)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        idx = (self.rng if rng is None else rng).integers(0, self.size, size=shape)
        return self.rows[idx]


def ring_bytes(capacity: int, obs_dim: int) -> int:
    """Bytes of a full replay ring of ``capacity`` packed float32 rows."""
    return capacity * row_layout(obs_dim).width * np.dtype(np.float32).itemsize


# What besides a replay's rings a run's memory holds that its config sets, named as a remedy.
NETWORK_REMEDY = "hidden_sizes or a burst's rows (gradient_steps_per_train x batch_size)"


def check_replay_fits(
    capacity: int,
    obs_dim: int,
    available: int | None,
    network_bytes: int = 0,
    runtime_bytes: int = 0,
) -> None:
    """ConfigError, before anything is allocated or written, if a replay of ``capacity``
    transitions, ``network_bytes`` for the network's parameters and what goes with them, and
    ``runtime_bytes`` for a TensorFlow runtime this process has yet to load, need more than
    ``available`` bytes (None: not known, no check)."""
    needed = ring_bytes(capacity, obs_dim) + network_bytes + runtime_bytes
    if available is not None and needed > available:
        network = remedy = runtime = ""
        if network_bytes:
            network = " and the network"
            remedy = f", {NETWORK_REMEDY}"
        if runtime_bytes:
            runtime = f", with TensorFlow's runtime ({runtime_bytes:,} bytes),"
        raise ConfigError(
            f"a replay of {capacity:,} transitions (buffer_size, or the run's env steps if "
            f"fewer) of {obs_dim}-D observations"
            f"{network}{runtime} needs {needed:,} bytes, but {available:,} bytes of memory are "
            f"available; lower buffer_size{remedy}"
        )


def check_population_fits(
    rings: Sequence[tuple[int, int]],
    available: int | None,
    other_bytes: int = 0,
    processes: int = 0,
) -> None:
    """``check_replay_fits`` for a population: one ring per member, all allocated up front,
    each given as (capacity, obs_dim), plus ``other_bytes`` the members and their
    ``processes`` hold besides (parameters, Adam, activations, compiled programs, the
    processes' runtimes)."""
    needed = sum(ring_bytes(capacity, obs_dim) for capacity, obs_dim in rings) + other_bytes
    if available is not None and needed > available:
        runtimes = f", in {processes} new processes" if processes > 1 else ""
        runtimes = ", with TensorFlow's runtime" if processes == 1 else runtimes
        transitions = sum(capacity for capacity, _ in rings)
        dims = " and ".join(f"{d}-D" for d in sorted({obs_dim for _, obs_dim in rings}))
        # What besides the rings (networks, Adam, a burst's activations, runtimes) is named
        # with its own remedies: a hidden_sizes of [100000, 100000] was told to lower
        # buffer_size, or to train fewer members at once when it trained one.
        besides = (
            f" ({other_bytes:,} of the bytes needed are for the networks, their optimizer "
            "state, a burst's activations and the runtimes)"
            if other_bytes
            else ""
        )
        fewer = ""
        if len(rings) > 1 and processes == len(rings):  # one run a process already
            fewer = "train fewer runs at once (dqn-compare: fewer --workers), or "
        elif len(rings) > 1:
            fewer = (
                "train fewer members at once (dqn-compare: --runner process, one run per "
                "process, or fewer --workers), or "
            )
        remedy = "buffer_size"
        if other_bytes:
            remedy += f", {NETWORK_REMEDY}"
        raise ConfigError(
            f"{len(rings)} member{'s' * (len(rings) != 1)} (replay rings of {transitions:,} "
            f"transitions of {dims} observations{runtimes}) need {needed:,} bytes, but "
            f"{available:,} bytes of memory are available{besides}; {fewer}lower {remedy}"
        )


def check_batch(batch: Batch, obs_dim: int, n_actions: int) -> None:
    """InputError naming the first field of a hand-made batch that the learner cannot take:
    observations [..., obs_dim], every other field of their leading shape ([batch] or
    [k, batch]), numbers only, nothing infinite or NaN, actions integers in [0, n_actions),
    terminated 0 or 1 (a fraction would weigh the bootstrap, which no transition does)."""
    from dqn.errors import InputError

    if not isinstance(batch, Batch):
        raise InputError(f"expected a dqn.replay.Batch, got {type(batch).__name__}")
    lead = np.shape(batch.obs)[:-1]
    if np.shape(batch.obs)[-1:] != (obs_dim,) or len(lead) not in (1, 2) or 0 in lead:
        raise InputError(
            f"batch.obs must have shape [batch, {obs_dim}] or [k, batch, {obs_dim}], "
            f"got {list(np.shape(batch.obs))}"
        )
    shapes = {"next_obs": (*lead, obs_dim), "actions": lead, "rewards": lead, "terminated": lead}
    for name in Batch._fields:
        value = np.asarray(getattr(batch, name))
        if value.shape != shapes.get(name, value.shape):
            raise InputError(
                f"batch.{name} must have shape {list(shapes[name])}, got {list(value.shape)}"
            )
        if value.dtype.kind not in "biuf":  # complex too: float32 would drop the imaginary part
            raise InputError(f"batch.{name} must hold real numbers, got dtype {value.dtype}")
        if not in_float32_range(value).all():  # pack_batch casts to float32: 1e39 is inf
            why = "NaN or infinite" if not np.isfinite(value).all() else "float32-overflowing"
            raise InputError(f"batch.{name} holds {why} values")
    if problem := actions_problem(batch.actions, n_actions):
        raise InputError(f"batch.actions {problem}")
    terminated = np.asarray(batch.terminated, np.float64)
    odd = terminated[(terminated != 0.0) & (terminated != 1.0)]
    if odd.size:
        raise InputError(f"batch.terminated must hold 0/1 or booleans, got {odd[0]:g}")


def actions_problem(actions, n_actions: int) -> str | None:
    """What makes ``actions`` no indices of an env's ``n_actions`` actions (a hand-made batch, a
    saved replay), or None."""
    actions = np.asarray(actions, np.float64)
    if actions.size and (
        (actions != np.round(actions)).any() or actions.min() < 0 or actions.max() >= n_actions
    ):
        return (
            f"must be integers in [0, {n_actions}), "
            f"got values from {actions.min():g} to {actions.max():g}"
        )
    return None


def pack_batch(batch: Batch) -> np.ndarray:
    """Batch -> packed float32 rows, as ``row_layout`` places them."""
    obs = np.asarray(batch.obs, np.float32)
    layout = row_layout(obs.shape[-1])
    rows = np.empty((*obs.shape[:-1], layout.width), np.float32)
    rows[..., layout.obs] = obs
    rows[..., layout.next_obs] = batch.next_obs
    rows[..., layout.action] = batch.actions
    rows[..., layout.reward] = batch.rewards
    rows[..., layout.terminated] = batch.terminated
    return rows


def unpack_rows(rows: np.ndarray, obs_dim: int) -> Batch:
    layout = row_layout(obs_dim)
    return Batch(
        rows[..., layout.obs],
        rows[..., layout.action].astype(np.int32),
        rows[..., layout.reward],
        rows[..., layout.next_obs],
        rows[..., layout.terminated],
    )

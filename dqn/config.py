"""DQNConfig: every hyperparameter of a run, frozen and validated when built.

No TensorFlow here: a config can be built, checked and written by processes that never train.
Units are in the names (``*_env_steps``, ``*_grad_steps``) because "every 500 steps" is the most
common source of silently different DQN runs: env steps and gradient steps differ by
``train_every_env_steps / gradient_steps_per_train``.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from dqn.errors import ConfigError, InputError, brief, shown, writing
from dqn.finite import F32_MAX, F32_TINY
from dqn.io import atomic_write_text, check_named
from dqn.yaml_files import BadTaggedValue, dump_yaml, is_decimal_number, load_value, load_yaml

# The loss names live here (not only in dqn.losses) so that validating a config needs no
# TensorFlow import; tests/test_losses.py checks that both lists agree.
LOSS_NAMES = ("l2", "clipped_delta", "huber", "clipped_grad")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu")
LEARNERS = ("tensorflow", "numpy")
Overrides = Mapping[str, Any] | Sequence[str]  # {"seed": 3}, or ["seed=3"] with values as YAML

# A field's kind, worded as its type error words it.
INT, NUM, BOOL, STR, INTS, KWARGS = (
    "an integer",
    "a number",
    "a bool",
    "a non-empty string",
    "a list of integers",
    "a mapping of name: number, string, bool, null or a list of them",
)
# A row's rule, checked on a value of its kind (never on None): a bound, worded as its error
# words it (a key of BOUNDS), or the tuple of the allowed values, or None (any value of the kind).
Rule = str | tuple[str, ...] | None
SEED_RANGE = "in [0, 2**32 - 1]"
MAX_HIDDEN_LAYERS = 100
BOUNDS: dict[str, Callable[[Any], bool]] = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    ">= 0 or null": lambda v: v >= 0,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
    # Seeds reach numpy's legacy seeding (Keras' set_random_seed), which takes 32 bits.
    SEED_RANGE: lambda v: 0 <= v < 2**32,
    # An evaluation keeps every episode's return, and a million CartPole episodes already take
    # hours: a larger count is a typo, refused before it runs out of memory mid-run.
    "in [1, 1_000_000]": lambda v: 1 <= v <= 1_000_000,
    # A trillion env steps is years of a CPU's time: a larger count (1e30 from a typo) is
    # refused, where it used to start a run that would never end.
    "in [1, 10**12]": lambda v: 1 <= v <= 10**12,
    # TensorFlow starts that many threads at its first op: 100,000 hung the process there.
    "in [1, 1024]": lambda v: 1 <= v <= 1024,
    # Every loop step acts on all envs in one batch, so the batch's activations grow with the
    # count: 65,536 envs is already past any throughput a CPU gains, and 10**9 from a typo sat
    # in gymnasium's allocation instead of being refused.
    "in [1, 65_536]": lambda v: 1 <= v <= 65_536,
}
MAX_EVAL_EPISODES = 1_000_000


def episode_seeds_fit(seed: int, episodes: int) -> bool:
    """Episode i of an evaluation is reset with seed + i, which gymnasium takes in 32 bits."""
    return 0 <= seed and seed + episodes <= 2**32


class EnvKwargs(Mapping):
    """The keyword arguments of ``gym.make`` a config holds: a read-only mapping of names to
    YAML scalars (number, string, bool, null) or tuples of them, hashable and compared as a
    dict, so that a frozen config stays a value. ``dict(...)`` gives them back."""

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items = dict(items or {})

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __repr__(self) -> str:  # sorted: equal mappings print alike (population_mismatch)
        return repr(dict(sorted(self._items.items())))

    def plain(self) -> dict[str, Any]:
        """As YAML and JSON write it: lists, not tuples."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._items.items()}


class Field(NamedTuple):
    kind: str
    nullable: bool  # None (YAML null) is accepted
    rule: Rule
    meaning: str  # what the field does, in which units


def row(default: Any, kind: str, null: bool, rule: Rule, meaning: str) -> Any:
    """A DQNConfig field: its default, and its Field row kept in the field's metadata."""
    return dataclasses.field(default=default, metadata={"row": Field(kind, null, rule, meaning)})


# Stable-Baselines3's and CleanRL's names for settings this config also has, which spelling
# alone does not lead to (lr is no typo of learning_rate). Units may differ: a hint, not a map.
NAMES_ELSEWHERE = {
    "env": "env_id",
    "env_name": "env_id",
    "lr": "learning_rate",
    "learning_starts": "learning_starts_env_steps",
    "train_freq": "train_every_env_steps",
    "train_frequency": "train_every_env_steps",
    "gradient_steps": "gradient_steps_per_train",
    "target_update_interval": "target_update_every_grad_steps",
    "target_network_frequency": "target_update_every_grad_steps",
    "tau": "target_tau",
    "exploration_fraction": "epsilon_decay_fraction",
    "exploration_initial_eps": "epsilon_start",
    "exploration_final_eps": "epsilon_end",
    "start_e": "epsilon_start",
    "end_e": "epsilon_end",
    "net_arch": "hidden_sizes",
    # (epsilon_decay read "did you mean 'epsilon_end'?": spelt alike, and a trap.)
    "epsilon_decay": "epsilon_decay_fraction",
    "exploration_decay": "epsilon_decay_fraction",
    "eval_freq": "eval_every_env_steps",
    "eval_frequency": "eval_every_env_steps",
    "target_update_freq": "target_update_every_grad_steps",
    "target_update_frequency": "target_update_every_grad_steps",
    "max_episode_steps": "env_kwargs",  # env_kwargs={max_episode_steps: N}
    "n_timesteps": "total_env_steps",  # rl-baselines3-zoo's, whose CartPole config is ours
    "total_timesteps": "total_env_steps",
    "policy_kwargs": "hidden_sizes",  # SB3's, which holds net_arch
    "huber_delta": "loss_bound",
    "delta": "loss_bound",
    "target_update": "target_update_every_grad_steps",
    "gym_kwargs": "env_kwargs",
    "env_args": "env_kwargs",
    "make_kwargs": "env_kwargs",
}


def close_keys(name: str) -> list[str]:
    """Config keys a user who wrote ``name`` may have meant: another library's name for one,
    then the keys spelt alike, whatever their case (``SEED``); a dotted name's first part
    (``env_kwargs.max_episode_steps``: keys do not nest)."""
    name = str(name).lower()
    if "." in name and name.partition(".")[0] in FIELDS:
        return [name.partition(".")[0]]
    known = [NAMES_ELSEWHERE[name]] if name in NAMES_ELSEWHERE else []
    return known + [
        k for k in difflib.get_close_matches(name, FIELDS, n=3, cutoff=0.75) if k not in known
    ]


class _KnownKeys(type):
    """Makes ``DQNConfig(gama=0.9)`` the ConfigError naming the valid keys that ``from_dict``
    gives, instead of the dataclass's bare TypeError."""

    def __call__(cls, *args: Any, **kwargs: Any):
        if unknown := sorted(set(kwargs) - set(FIELDS)):
            close = close_keys(unknown[0])
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise ConfigError(
                f"unknown config key {unknown[0]!r}{hint}; valid keys: {', '.join(FIELDS)}"
            )
        return super().__call__(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class DQNConfig(metaclass=_KnownKeys):
    """Hyperparameters of one DQN run. Build it with keywords, ``from_yaml`` or ``replace``.

    The body is the table of fields: name: type = default, then the row that validates it (kind,
    null allowed, rule: a bound or the allowed values; RULES adds cross-field checks) and what
    the field means, with units. ``dqn.config.FIELDS[name]`` is the row, its ``.meaning`` the
    text."""

    # fmt: off
    # field: type                      = row(default,       kind, null?, rule,          meaning)
    env_id: str                        = row("CartPole-v1", STR,  False, None,
        "Gymnasium id of the environment (1-D Box observations, Discrete actions); "
        "module:EnvId imports the module that registers it first")
    env_kwargs: Mapping[str, Any]      = row(EnvKwargs(),   KWARGS, False, None,
        "Keyword arguments of gym.make(env_id, ...) for every env a run makes (training, "
        "evaluation, --gif): {max_episode_steps: 200}, CartPole's {sutton_barto_reward: true}; "
        "not render_mode, which dqn sets (none to train, rgb_array for --gif); names are "
        "Python keywords (identifiers), numbers finite")
    seed: int                          = row(0,             INT,  False, SEED_RANGE,
        "Seeds the env, the network initialisation, exploration and replay sampling")
    total_env_steps: int               = row(50_000,        INT,  False, "in [1, 10**12]",
        "Length of training, in environment steps")
    buffer_size: int                   = row(100_000,       INT,  False, "> 0",
        "Replay capacity, in transitions (a ring: the oldest are overwritten)")
    batch_size: int                    = row(64,            INT,  False, "> 0",
        "Transitions per gradient step")
    gamma: float                       = row(0.99,          NUM,  False, "in (0, 1]",
        "Discount factor")
    n_step: int                        = row(10,            INT,  False, "> 0",
        "Steps of reward summed before bootstrapping: the target is r_{t+1} + ... + gamma^(n-1) "
        "r_{t+n} + gamma^n max_a Q_target(s_{t+n}, a) (dqn.nstep). 1: plain DQN. At most the "
        "env's time limit: the n - 1 steps before a time-limit cut are not stored")
    learning_rate: float               = row(2.3e-3,        NUM,  False, "> 0",
        "Adam step size")
    learning_rate_end: float | None    = row(0.0,           NUM,  True,  ">= 0 or null",
        "Decay the learning rate linearly to this (<= learning_rate) over the run's gradient "
        "steps; null: constant")
    adam_epsilon: float                = row(1e-7,          NUM,  False, "> 0",
        "Adam's epsilon (Keras default)")
    loss: str                          = row("huber",       STR,  False, LOSS_NAMES,
        "Element-wise loss of the TD error")
    loss_bound: float                  = row(1.0,           NUM,  False, "> 0",
        "Clip bound of clipped_delta and clipped_grad, delta of huber (unused by l2)")
    max_grad_norm: float | None        = row(None,          NUM,  True,  "> 0",
        "Clip the gradient by global norm to this (Pascanu et al. 2013); null: no clipping")
    hidden_sizes: Sequence[int]        = row((256, 256),    INTS, False, None,
        "Widths of the hidden Dense layers of the Q-network")
    activation: str                    = row("relu",        STR,  False, ACTIVATIONS,
        "Hidden activation")
    double_dqn: bool                   = row(False,         BOOL, False, None,
        "The online net selects the next action, the target net evaluates it (van Hasselt 2016)")
    target_update_every_grad_steps: int = row(128,          INT,  False, "> 0",
        "Sync the target network every this many gradient steps")
    target_tau: float                  = row(1.0,           NUM,  False, "in (0, 1]",
        "Sync weight: target <- tau * online + (1 - tau) * target. 1.0 is a hard copy")
    train_every_env_steps: int         = row(256,           INT,  False, "> 0",
        "Run a burst of gradient steps every this many env steps")
    gradient_steps_per_train: int      = row(128,           INT,  False, "> 0",
        "Gradient steps in each burst")
    learning_starts_env_steps: int     = row(1_000,         INT,  False, None,
        "Env steps of pure data collection before the first gradient step: below "
        "total_env_steps, and at least num_envs * n_step - 1 (the first n-step transition)")
    epsilon_start: float               = row(1.0,           NUM,  False, "in [0, 1]",
        "Exploration rate at env step 0, where the linear decay starts (the first action, "
        "at env step 1, takes the next value)")
    epsilon_end: float                 = row(0.04,          NUM,  False, "in [0, 1]",
        "Exploration rate once the linear decay is over (<= epsilon_start)")
    epsilon_decay_fraction: float      = row(0.16,          NUM,  False, "in [0, 1]",
        "Fraction of total_env_steps over which epsilon decays linearly")
    eval_every_env_steps: int          = row(2_500,         INT,  False, "> 0",
        "Greedy evaluation period, in env steps (also the period of metrics.csv rows)")
    eval_episodes: int                 = row(10,            INT,  False, "in [1, 1_000_000]",
        "Episodes per greedy evaluation; episode i is reset with seed eval_seed + i")
    final_eval_episodes: int           = row(100,           INT,  False, "in [1, 1_000_000]",
        "Episodes of the greedy evaluation at the last step (the last metrics.csv row: the run's "
        "final evaluation). 100 is CartPole-v1's criterion: a mean of 475 over 100 episodes")
    eval_seed: int                     = row(10_000,        INT,  False, SEED_RANGE,
        "Seed of the first evaluation episode; episode i's is eval_seed + i, so eval_seed + "
        "max(eval_episodes, final_eval_episodes) must stay <= 2**32")
    solve_return: float | None         = row(None,          NUM,  True,  None,
        "Evaluation mean counted as solved; null: the env's reward_threshold (CartPole-v1: 475)")
    checkpoint_every_env_steps: int    = row(10_000,        INT,  False, "> 0",
        "Checkpoint period, in env steps (a checkpoint is also written at the end and on Ctrl-C)")
    keep_checkpoints: int              = row(3,             INT,  False, "> 0",
        "Checkpoints kept in run_dir/checkpoints: the newest ones; older ones are deleted")
    max_abs_q: float | None            = row(None,          NUM,  True,  "> 0",
        "Divergence guard: stop when any |Q| in an update exceeds this. null: automatic, 10 x "
        "r_max / (1 - gamma) where the env's per-step reward bound r_max is known "
        "(dqn.divergence) and gamma < 1, else only NaN/inf stop training")
    output_dir: str                    = row("runs",        STR,  False, None,
        "Parent folder of run folders (a leading ~ is the home folder)")
    num_threads: int                   = row(1,             INT,  False, "in [1, 1024]",
        "Threads of TensorFlow (intra- and inter-op) and of numpy's BLAS. 1 is fastest for the "
        "small networks of a DQN on few cores; with 1, XLA also runs each compiled update on the "
        "calling thread (dqn.runtime)")
    jit_compile: bool                  = row(True,          BOOL, False, None,
        "Compile the update with XLA (the tensorflow learner's; the numpy learner compiles "
        "nothing, and ignores it)")
    num_envs: int                      = row(1,             INT,  False, "in [1, 65_536]",
        "Environments stepped together (a gymnasium vector env; the env's own vectorized version "
        "where it has one, as CartPole does). Above 1, training trades the strict one-env order "
        "of updates for throughput: every loop step collects num_envs transitions, acts on them "
        "in one batch and runs the gradient steps owed for them in one call (still one burst per "
        "train_every_env_steps transitions). Evaluations, checkpoints and the end fall on the "
        "first loop step at or past their env step, so a run may take up to num_envs - 1 steps "
        "more than total_env_steps (stored, but owing no gradient step: a run takes as many as "
        "a one-env run). Such runs checkpoint and resume like one-env runs")
    learner: str                       = row("tensorflow",  STR,  False, LEARNERS,
        "What runs the gradient steps: tensorflow (dqn.tf_learner, compiled with XLA) or numpy "
        "(dqn.numpy_learner: the same update written out in numpy for a chain of Dense layers, "
        "such as the default MLP). On a CPU, numpy is faster when the network is small and "
        "updates are frequent, because each TensorFlow call costs hundreds of microseconds of "
        "dispatch. Results agree to float32 rounding, not bit for bit")
    diagnostics: bool                  = row(True,          BOOL, False, None,
        "Compute the backprop diagnostics: TD-error quantiles, zero-gradient and over-bound "
        "fractions in every update, per-layer gradient norms and dead units on a probe batch at "
        "every metrics row; false: those columns are NaN (agent.diagnose() still computes them)")
    deterministic: bool                = row(True,          BOOL, False, None,
        "Enable tf.config.experimental.enable_op_determinism(), so that a seed gives the same "
        "metrics.csv on the same machine. Once on, it stays on in the process (TF has no off "
        "switch); a custom network_fn should seed its initializers")
    # fmt: on

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DQNConfig:
        """Build from a mapping; unknown keys are an error naming the valid ones."""
        if not isinstance(data, Mapping):
            got = type(data).__name__
            raise ConfigError(f"a config must be a mapping of key: value, got {got}")
        if bad := [k for k in data if not isinstance(k, str)]:
            raise ConfigError(f"config keys must be strings, got {bad[0]!r}")
        return cls(**dict(data))  # unknown keys: _KnownKeys

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, overrides: Overrides = ()) -> DQNConfig:
        """Load ``configs/*.yaml`` (safe loader), then apply ``overrides``: a mapping or a list
        of ``"key=value"`` strings, values parsed as YAML (``--set hidden_sizes=[64,64]``)."""
        if path is None:
            data = {}
        else:
            check_path_arg(path, "DQNConfig.from_yaml takes the config file's path")
            data = _read_yaml(Path(user_path(path, "the config file")))
        return cls.from_dict({**data, **parse_overrides(overrides)})

    def replace(self, **changes: Any) -> DQNConfig:
        """A validated copy with some fields changed."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        plain = {"hidden_sizes": list(self.hidden_sizes), "env_kwargs": self.env_kwargs.plain()}
        return {**dataclasses.asdict(self), **plain}

    def to_yaml(self, path: str | Path, note: str | None = None) -> None:
        """Write atomically (temporary file, then rename); ``note`` heads it as a comment.
        A path that is not a file's (a folder; not a path) is an InputError, one that cannot be
        written an OutputError, each in one line (a folder raised IsADirectoryError naming the
        temporary file beside it)."""
        check_path_arg(path, "to_yaml takes a file's path")
        check_named(path, "the config file")
        path = Path(user_path(path, "path"))
        if path.is_dir():
            raise InputError(f"to_yaml writes a file, and {path} is a folder: give a file's path")
        head = "".join(f"# {line}\n" for line in textwrap.wrap(note, 94)) if note else ""
        with writing("the config file", path):
            atomic_write_text(path, head + dump_yaml(self.to_dict()))


def _exact(x: float) -> str:
    """A number as the shortest text that reads back as it (":g" printed 1.0000001e-3 as
    0.001, the bound it was refused for passing), without a whole number's ".0"."""
    text = repr(float(x))
    return text.removesuffix(".0")


# The rows, in field order: the class body above is where they are read and written.
FIELDS: dict[str, Field] = {f.name: f.metadata["row"] for f in dataclasses.fields(DQNConfig)}

# fmt: off
# Rules beyond one row's bound, checked after the rows: name -> (holds, error message).
RULES: dict[str, tuple[Callable[[DQNConfig], bool], Callable[[DQNConfig], str]]] = {
    "env_id has no stray spaces": (
        lambda c: c.env_id.strip() == c.env_id,
        lambda c: f"config key 'env_id' has stray spaces: {c.env_id!r}"),
    # A window per env (render_mode "human") needs a display, and crashes the process without
    # one; "rgb_array" would collide with the render mode --gif passes: dqn chooses it.
    "render_mode is dqn's": (
        lambda c: "render_mode" not in c.env_kwargs,
        lambda c: "config key 'env_kwargs' must not set render_mode, got "
                  f"{c.env_kwargs['render_mode']!r}: dqn sets it (none to train and evaluate, "
                  "rgb_array for dqn-evaluate --gif)"),
    # gym.make's own keywords, which it takes before the env's: id is env_id's;
    # max_episode_steps a positive integer (1.5 and "abc" failed in gymnasium's TimeLimit with a
    # traceback, and yes, a bool, ended every episode after one step).
    "env_kwargs leaves id to env_id": (
        lambda c: "id" not in c.env_kwargs,
        lambda c: f"config key 'env_kwargs' must not set id, got {c.env_kwargs['id']!r}: "
                  "env_id names the env"),
    "max_episode_steps is a positive integer": (
        lambda c: c.env_kwargs.get("max_episode_steps") is None or (
            type(c.env_kwargs["max_episode_steps"]) is int
            and c.env_kwargs["max_episode_steps"] > 0),
        lambda c: "config key 'env_kwargs': max_episode_steps must be an integer > 0 or null, "
                  f"got {c.env_kwargs['max_episode_steps']!r}"),
    "disable_env_checker is a bool": (
        lambda c: c.env_kwargs.get("disable_env_checker") is None
        or isinstance(c.env_kwargs["disable_env_checker"], bool),
        lambda c: "config key 'env_kwargs': disable_env_checker must be a bool or null, got "
                  f"{c.env_kwargs['disable_env_checker']!r}"),
    # A NUL cannot be in a path (os.mkdir's ValueError, a traceback) nor in an env id.
    "no NUL in a text": (
        lambda c: "\0" not in c.output_dir + c.env_id,
        lambda c: f"config key {'output_dir' if chr(0) in c.output_dir else 'env_id'!r} holds a "
                  "NUL character (\\0)"),
    "at least one hidden layer": (
        lambda c: len(c.hidden_sizes) >= 1,
        lambda c: "config key 'hidden_sizes' must list at least one layer width"),
    # A typo guard, like total_env_steps' bound: Keras builds a chain of a few thousand layers
    # by recursion past Python's stack (a RecursionError mid-build), and a plain chain of Dense
    # layers hundreds deep rarely trains anyway (its gradients vanish or explode).
    "at most 100 hidden layers": (
        lambda c: len(c.hidden_sizes) <= MAX_HIDDEN_LAYERS,
        lambda c: f"config key 'hidden_sizes' may list at most {MAX_HIDDEN_LAYERS} layers, got "
                  f"{len(c.hidden_sizes)}"),
    "positive layer widths": (
        lambda c: all(h > 0 for h in c.hidden_sizes),
        lambda c: "config key 'hidden_sizes' must hold positive widths, "
                  f"got {list(c.hidden_sizes)}"),
    "the batch fits the buffer": (
        lambda c: c.batch_size <= c.buffer_size,
        lambda c: f"config key 'batch_size' ({c.batch_size}) must be <= buffer_size "
                  f"({c.buffer_size})"),
    # Said first: with its bound at or past the run's end, the next rule's range is empty, and
    # learning_starts_env_steps, which it names, is not what can give way.
    "n-step windows fit in the run": (
        lambda c: c.num_envs * c.n_step - 1 < c.total_env_steps,
        lambda c: f"config: num_envs * n_step - 1 = {c.num_envs * c.n_step - 1} env steps pass "
                  "before the first n-step transition is stored, and the run has only "
                  f"total_env_steps = {c.total_env_steps}: lower num_envs ({c.num_envs}) or "
                  f"n_step ({c.n_step}), or raise total_env_steps"),
    "learning starts before the end": (
        lambda c: 0 <= c.learning_starts_env_steps < c.total_env_steps,
        lambda c: "config key 'learning_starts_env_steps' must be in [num_envs * n_step - 1 "
                  f"= {c.num_envs * c.n_step - 1}, total_env_steps = {c.total_env_steps}), got "
                  f"{c.learning_starts_env_steps}: "
                  + ("the agent would never train" if c.learning_starts_env_steps > 0
                     else "a count of env steps is never negative")),
    # The rule above is the common case of this one, kept for its message naming the key (and
    # a negative value); this one also catches a first burst past the end.
    "a burst comes before the end": (
        lambda c: total_grad_steps(c) > 0,
        lambda c: "config: the agent would never train: its bursts come every "
                  f"train_every_env_steps = {c.train_every_env_steps} env steps once "
                  f"learning_starts_env_steps = {c.learning_starts_env_steps} have passed, the "
                  f"first at env step {first_burst_env_step(c)} > total_env_steps = "
                  f"{c.total_env_steps}"),
    # A schedule named "end" that climbs is a typo (a rate 200x its start, or exploration
    # that grows to random), not a schedule of this package.
    "the learning rate decays": (
        lambda c: c.learning_rate_end is None or c.learning_rate_end <= c.learning_rate,
        lambda c: f"config key 'learning_rate_end' must be <= learning_rate = "
                  f"{_exact(c.learning_rate)} (the rate decays linearly to it), got "
                  f"{_exact(c.learning_rate_end)}; null keeps the rate constant"),
    "exploration decays": (
        lambda c: c.epsilon_end <= c.epsilon_start,
        lambda c: f"config key 'epsilon_end' must be <= epsilon_start = {_exact(c.epsilon_start)} "
                  f"(exploration decays linearly to it), got {_exact(c.epsilon_end)}: lower "
                  "epsilon_end with epsilon_start (equal: a constant epsilon)"),
    "the target network is synced at least once": (
        lambda c: c.target_update_every_grad_steps <= total_grad_steps(c),
        lambda c: "config key 'target_update_every_grad_steps' must be <= the run's gradient "
                  f"steps ({total_grad_steps(c)}), got {c.target_update_every_grad_steps}: the "
                  "target network would never be synced and every TD target would come from "
                  "the initial network"),
    "evaluation seeds stay 32-bit": (
        lambda c: episode_seeds_fit(c.eval_seed, max(c.eval_episodes, c.final_eval_episodes)),
        lambda c: "config key 'eval_seed' must leave room for its episodes' seeds "
                  "(eval_seed + i, each in [0, 2**32 - 1]): eval_seed + "
                  f"{max(c.eval_episodes, c.final_eval_episodes)} episodes > 2**32 (the largest "
                  f"that fits: {2**32 - max(c.eval_episodes, c.final_eval_episodes)})"),
    # The first n-step transition is stored after n_step env steps of each env (or sooner, at a
    # termination), unless a time limit cuts the episode before: dqn.envs.check_n_step refuses
    # an n_step longer than the env's limit. The loop trains at env steps >
    # learning_starts_env_steps and would sample an empty buffer before it.
    "the buffer holds a transition when learning starts": (
        lambda c: c.learning_starts_env_steps >= c.num_envs * c.n_step - 1,
        lambda c: "config key 'learning_starts_env_steps' must be >= num_envs * n_step - 1 = "
                  f"{c.num_envs * c.n_step - 1}, got {c.learning_starts_env_steps}: the first "
                  "n-step transition is stored only after n_step steps of each env"),
}
# fmt: on


# A config dqn saved (the config.yaml of a run, a checkpoint or an agent; population.json) holds
# every key of its day. A key added since then takes the value runs had before it existed, which
# is not always today's default: n_step came with default 1 (one-step targets, as before it), and
# the default is 10 since configs/cartpole.yaml, measured with 10-step returns, became DQNConfig's
# defaults. Read as today's default, a run saved before n_step would resume, or pass for a rerun
# of a study, with other targets than it was trained with.
SAVED_BEFORE_KEY: dict[str, Any] = {"n_step": 1}


def saved_config(data: Mapping[str, Any]) -> DQNConfig:
    """The config of a mapping dqn wrote earlier (see ``SAVED_BEFORE_KEY``)."""
    return DQNConfig.from_dict({**SAVED_BEFORE_KEY, **data})


def read_saved_config(path: str | Path) -> DQNConfig:
    """The config of a config.yaml dqn wrote (a run's, a checkpoint's, an agent's)."""
    return saved_config(_read_yaml(Path(path)))


def changed_keys(
    recorded: Mapping[str, Any], config: Mapping[str, Any], ignore: Sequence[str] = ()
) -> list[str]:
    """The keys of ``config`` (a config dict) whose value differs from ``recorded`` (the dict of
    a config.yaml a run wrote): what a resume or a study's rerun would silently change."""
    return [k for k in config if k not in ignore and recorded.get(k) != config[k]]


def check_is_config(config: object) -> None:
    """ConfigError unless ``config`` is a DQNConfig: a dict or a YAML path would otherwise fail
    later with an AttributeError far from the call that passed it."""
    if isinstance(config, type) and issubclass(config, DQNConfig):
        raise ConfigError("expected a DQNConfig, got the class itself: call it, DQNConfig(...)")
    if not isinstance(config, DQNConfig):
        # An env, an env class or a function making one: the likeliest things in its place.
        maker = callable(config) and not isinstance(config, type)
        env = hasattr(config, "step") and hasattr(config, "reset") or maker
        hint = (
            "; an env goes by its id: register it with gymnasium.register, then "
            "DQNConfig(env_id=...)"
            if env
            else ""
        )
        raise ConfigError(
            f"expected a DQNConfig, got {type(config).__name__}: build one with DQNConfig(...), "
            f"DQNConfig.from_dict(mapping) or DQNConfig.from_yaml(path){hint}"
        )


def parse_overrides(overrides: Overrides) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if isinstance(overrides, str | bytes):  # its characters were read as overrides: 's', 'e'..
        raise ConfigError(
            f"overrides are a mapping or a list of 'key=value' texts, got the text {overrides!r}"
        )
    if not isinstance(overrides, Iterable):  # None: "'NoneType' object is not iterable"
        raise ConfigError(
            "overrides are a mapping or a list of 'key=value' texts, got "
            f"{type(overrides).__name__}"
        )
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if key.strip() in out:  # as in a YAML file: the last value must not win without a word
            raise ConfigError(f"override key {key.strip()!r} is given twice")
        try:
            out[key.strip()] = load_value(raw) if raw.strip() else raw
        except BadTaggedValue as exc:  # a tag written on purpose: not to be read as plain text
            raise ConfigError(f"override {key.strip()!r}: {exc.problem}") from None
        except yaml.YAMLError:
            out[key.strip()] = raw
        except RecursionError:  # brackets thousands deep: PyYAML parses by recursion
            raise ConfigError(f"override {key.strip()!r}: its value is nested too deeply") from None
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if data is None:  # an empty file, or comments only: not a silent "all defaults"
        raise ConfigError(f"config file {path} holds no key: value (it is empty or only comments)")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    # Mappings under labels, none a config key nor a letter or two from one (`env_kwarg: {...}`
    # is a typo of env_kwargs, for the unknown-key error to name; a label `double` is no typo
    # of double_dqn).
    # A mapping is env_kwargs' value only: a key near env_kwargs (close_keys' own cutoff, or
    # another library's name for it) holding one is that typo too, as is another library's
    # keywords (SB3's policy_kwargs): `env_args: {...}` alone in a file was read as a variants
    # file of one label.
    keys_alike = any(
        isinstance(k, str)
        and (
            difflib.get_close_matches(k, FIELDS, n=1, cutoff=0.9)
            or (isinstance(v, dict) and ("env_kwargs" in close_keys(k) or k.endswith("kwargs")))
        )
        for k, v in data.items()
    )
    if data and all(isinstance(v, dict) for v in data.values()) and not keys_alike:
        raise ConfigError(  # labels of mappings: a sweep's variants, not a config
            f"config file {path} maps labels ({', '.join(map(str, list(data)[:3]))}"
            f"{', ...' if len(data) > 3 else ''}) to overrides, as a variants file does: give it "
            "to dqn-compare --variants-file, and a config of key: value to --config"
        )
    return data or {}


class _NotKind(Exception): ...  # args: (kind, the value as read: a YAML 1.1 number as its number)


def _coerce(kind: str, value: Any) -> Any:
    """value as kind, or raise _NotKind. YAML 1.1 reads ``1e-3`` and ``1e5`` as strings: they
    are numbers here. A bool is never a number (``True == 1``); an integral float is an integer."""
    if kind in (INT, NUM) and isinstance(value, str) and is_decimal_number(value):
        value = float(value)
    # numpy's scalars (np.int64(3), np.float32(0.5), np.str_("l2"), np.bool_) are taken as the
    # Python value they hold: YAML writes only those (an np.str_ loss stopped train with a
    # RepresenterError, its run folder made).
    if isinstance(value, np.generic):
        value = value.item()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (kind == BOOL and isinstance(value, bool)) or (kind == STR and isinstance(value, str)):
        if value != "":
            return value
    if kind == KWARGS and isinstance(value, Mapping):
        return _env_kwargs(value)
    if kind == INTS and isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        try:
            return tuple(_coerce(INT, v) for v in value)
        except _NotKind:  # named as the list it is in: "must be an integer" read as the key's
            raise _NotKind(kind, list(value)) from None
    if kind == INT and number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if kind == NUM and number:
        return _float32_setting(value)
    raise _NotKind(kind, value)


# The networks, Adam and the losses compute in float32: beyond its largest value a setting is
# inf there (learning_rate=1e300 made every loss NaN), and below its smallest normal one it
# is 0 or a denormal that CPUs may flush to 0 (learning_rate=1e-50 trained with no step at all).
F32_RANGE = "0, or 1.2e-38 to 3.4e38 in size"


def _float32_setting(value: float) -> float:
    """``value`` as a float if float32 holds it as itself (0, or a normal number), else _NotKind
    naming what it must be: finite (inf, nan, 10**400), or in float32's range (1e300, 1e-50)."""
    try:
        size = abs(float(value))
    except OverflowError:  # an int past float64's range
        size = math.inf
    if size == 0 or F32_TINY <= size <= F32_MAX:  # NaN compares False: refused
        return float(value)
    if not math.isfinite(size):
        raise _NotKind("a finite number", value)
    raise _NotKind(f"a number within float32's range ({F32_RANGE})", value)


def _env_kwargs(value: Mapping) -> EnvKwargs:
    """``value`` as EnvKwargs, or _NotKind: names that are identifiers (gym.make passes them as
    keywords), values that YAML writes back as they were (a config is saved with its run)."""

    def scalar(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        return v is None or isinstance(v, (bool, int, str))

    # Which rule failed, in the message: "must be a mapping of ..." alone left a user to guess
    # that a name must be a Python identifier or a float finite.
    items = {}
    for key, v in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise _NotKind(f"{KWARGS} ({key!r} is no keyword name of Python's)", dict(value))
        key = str(key)  # an np.str_ too
        if isinstance(v, np.generic):  # numpy's scalars, strings and bools
            v = v.item()
        if isinstance(v, (list, tuple)):
            v = tuple(x.item() if isinstance(x, np.generic) else x for x in v)
        if not all(scalar(x) for x in (v if isinstance(v, tuple) else [v])):
            bad = next(x for x in (v if isinstance(v, tuple) else [v]) if not scalar(x))
            why = f"{bad!r}, not finite" if isinstance(bad, float) else f"a {type(bad).__name__}"
            why = f"a list holding {why}" if isinstance(v, tuple) else why
            raise _NotKind(f"{KWARGS} ({key}'s value is {why})", dict(value))
        items[key] = v
    return EnvKwargs(items)


def _validate(cfg: DQNConfig) -> None:
    """Convert every field to its kind, then check the rows' rules, then RULES."""
    for key, field in FIELDS.items():
        raw = getattr(cfg, key)
        if raw is None and field.nullable:
            continue
        if key == "output_dir" and isinstance(raw, os.PathLike):  # a Path, as every path taken
            raw = os.fspath(raw)
        try:
            object.__setattr__(cfg, key, _coerce(field.kind, raw))
        except _NotKind as bad:
            kind, shown = (f"{bad.args[0]} or null", raw) if field.nullable else bad.args
            if isinstance(field.rule, tuple):  # a choice: name the choices (loss: null, true)
                kind = f"one of {', '.join(field.rule)}"
            hint = ""
            read_as = raw is None or isinstance(raw, bool | int | float | datetime.date)
            if field.kind == STR and not isinstance(field.rule, tuple) and read_as:
                # YAML (a file, --set) reads a bare ~ as null, 2024 as a number and 2024-01-01
                # as a date.
                hint = (
                    " (in YAML or --set, quote a text that reads as null, a number, a bool or "
                    "a date)"
                )
            got = f"got {brief(shown)}{hint}"
            raise ConfigError(f"config key {key!r} must be {kind}, {got}") from None
    for key, field in FIELDS.items():
        v, rule = getattr(cfg, key), field.rule
        if v is not None and isinstance(rule, str) and not BOUNDS[rule](v):
            # null is the other value such a key takes (no clipping, automatic): name it
            either = " or null" if field.nullable and "null" not in rule else ""
            raise ConfigError(f"config key {key!r} must be {rule}{either}, got {brief(v)}")
        if v is not None and isinstance(rule, tuple) and v not in rule:
            plural = key + ("es" if key.endswith("s") else "s")  # losses, activations, learners
            raise ConfigError(f"unknown {key} {brief(v)}; valid {plural}: {', '.join(rule)}")
    for holds, message_of in RULES.values():
        if not holds(cfg):
            raise ConfigError(message_of(cfg))


def describe_keys(width: int = 94) -> str:
    """Every config key as ``dqn-train --keys`` prints it: its default (as YAML writes it), what
    values it takes, and what it means: the FIELDS table, for a reader without the source."""
    import textwrap

    defaults = DQNConfig().to_dict()
    lines = []
    for key, field in FIELDS.items():
        default = defaults[key]
        shown = default if isinstance(default, str) else json.dumps(default)
        lines.append(f"{key}: {shown}  ({_allowed(field)})")
        lines += textwrap.wrap(
            field.meaning, width, initial_indent="    ", subsequent_indent="    "
        )
    return "\n".join(lines)


def _allowed(field: Field) -> str:
    """A row's kind and rule in words: "an integer > 0", "one of l2, huber", "... or null"."""
    if isinstance(field.rule, tuple):
        words = f"one of {', '.join(field.rule)}"
    else:
        words = field.kind if field.rule is None else f"{field.kind} {field.rule}"
    return words + (" or null" if field.nullable and "null" not in words else "")


def bootstrap_discount(c: DQNConfig) -> float:
    """gamma^n: the discount of the bootstrapped term of an n-step TD target."""
    return c.gamma**c.n_step


def first_burst_env_step(c: DQNConfig) -> int:
    """The env step of a run's first burst: the first multiple of train_every_env_steps past
    learning_starts_env_steps."""
    return (c.learning_starts_env_steps // c.train_every_env_steps + 1) * c.train_every_env_steps


def output_folder(c: DQNConfig) -> Path:
    """``output_dir`` as a path, a leading ``~`` taken as the home folder: YAML and ``--set
    output_dir=~/runs`` pass it on as typed, and a folder named ``~`` made in the working
    folder is a trap (``rm -rf ~`` to delete it deletes the home folder)."""
    return expand_home(c.output_dir, "config key 'output_dir'")


def expand_home(path: str | Path, what: str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; ConfigError naming ``what`` if
    there is no such home folder (an unknown user, no HOME)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        raise ConfigError(
            f"{what} {str(path)!r} starts with a home folder that cannot be found: give the "
            "whole path"
        ) from None


def user_path(path, what: str):
    """A path a Python caller gave (``run_dir="~/runs/a"``) with a leading ``~`` expanded, as
    the commands expand theirs: a folder named ``~`` made in the working folder is a trap
    (``rm -rf ~`` to delete it deletes the home folder). Anything but a str or PathLike is
    returned as it is, for the caller's own check to name."""
    if isinstance(path, str | os.PathLike) and os.fspath(path).startswith("~"):
        return expand_home(path, what)
    return path  # as given: Path("") would read "" as the current folder, which is refused


def check_path_arg(path, said: str) -> None:
    """InputError ``said (a str or Path), got <type>`` unless ``path`` is a path: None, bytes
    or a number gave pathlib's or os's own TypeError from deep inside a Python call."""
    if not isinstance(path, str | os.PathLike):
        raise InputError(f"{said} (a str or Path), got {type(path).__name__}")


def check_flag(value, name: str) -> None:
    """InputError unless ``value`` is a bool: a flag given as a string (``"no"``) was true, and
    turned on what it was meant to turn off."""
    if not isinstance(value, bool | np.bool_):  # numpy's bool too
        raise InputError(f"{name} is True or False, got {shown(value, 60)}")


def check_reporting(progress, log_tensorboard) -> None:
    """InputError unless ``progress`` is a bool or a callable of the env steps just taken, and
    ``log_tensorboard`` a bool: the arguments every training call takes for what it shows."""
    if not callable(progress):
        check_flag(progress, "progress (or a function of the env steps just taken)")
    check_flag(log_tensorboard, "log_tensorboard")


def replay_capacity(c: DQNConfig) -> int:
    """The slots a run's replay ring is given: buffer_size, or fewer where the run cannot store
    that many. A run stores at most one transition per env step (an n-step window completes one
    per step, and an episode's end only completes those of steps already taken), and a vector
    env's last loop step may pass total_env_steps by num_envs - 1. A ring of buffer_size
    1,000,000 for a run of 50,000 steps was counted, and refused, as 20 times what it holds."""
    return min(c.buffer_size, c.total_env_steps + c.num_envs - 1)


def total_grad_steps(c: DQNConfig) -> int:
    """Gradient steps a full run takes: a burst every train_every_env_steps once learning starts."""
    every = c.train_every_env_steps
    bursts = c.total_env_steps // every - c.learning_starts_env_steps // every
    return max(bursts, 0) * c.gradient_steps_per_train

"""DQNConfig: every hyperparameter of a run, frozen and validated when built.

No TensorFlow here: a config can be built, checked and written by processes that never train.
Units are in the names (``*_env_steps``, ``*_grad_steps``) because "every 500 steps" is the most
common source of silently different DQN runs: env steps and gradient steps differ by
``train_every_env_steps / gradient_steps_per_train``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from dqn.errors import ConfigError

# The loss names live here (not only in dqn.losses) so that validating a config needs no
# TensorFlow import; tests/test_losses.py checks that both lists agree.
LOSS_NAMES = ("l2", "clipped_delta", "huber", "clipped_grad")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu")
LEARNERS = ("tensorflow", "numpy")


@dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters of one DQN run. Build it with keywords, ``from_yaml`` or ``replace``.
    Each field's type, null and bounds are its row of ``FIELDS``, below the class."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of the environment (1-D Box observations, Discrete actions)."""
    seed: int = 0
    """Seeds the env, the network initialisation, exploration and replay sampling."""
    total_env_steps: int = 50_000
    """Length of training, in environment steps."""

    buffer_size: int = 100_000
    """Replay capacity, in transitions (a ring: the oldest are overwritten)."""
    batch_size: int = 64
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    n_step: int = 1
    """Steps of reward summed before bootstrapping: the target is r_{t+1} + ... +
    gamma^(n-1) r_{t+n} + gamma^n max_a Q_target(s_{t+n}, a) (``dqn.nstep``). 1: plain DQN."""
    learning_rate: float = 2.3e-3
    """Adam step size."""
    learning_rate_end: float | None = 0.0
    """Decay the learning rate linearly to this value over the run's gradient steps; None:
    constant."""
    adam_epsilon: float = 1e-7
    """Adam's epsilon (Keras default)."""
    loss: str = "huber"
    """Element-wise loss of the TD error: one of LOSS_NAMES."""
    loss_bound: float = 1.0
    """Clip bound of ``clipped_delta``/``clipped_grad``, delta of ``huber`` (unused by ``l2``)."""
    max_grad_norm: float | None = None
    """Clip the gradient by global norm to this value (Pascanu et al. 2013); None: no clipping."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the hidden Dense layers of the Q-network."""
    activation: str = "relu"
    """Hidden activation: one of ACTIVATIONS."""
    double_dqn: bool = False
    """Select the next action with the online net, evaluate it with the target net (van Hasselt
    2016)."""

    target_update_every_grad_steps: int = 128
    """Sync the target network every this many gradient steps."""
    target_tau: float = 1.0
    """Sync weight: target <- tau * online + (1 - tau) * target. 1.0 is a hard copy."""

    train_every_env_steps: int = 256
    """Run a burst of gradient steps every this many env steps."""
    gradient_steps_per_train: int = 128
    """Gradient steps in each burst."""
    learning_starts_env_steps: int = 1_000
    """Env steps of pure data collection before the first gradient step."""

    epsilon_start: float = 1.0
    """Exploration rate at step 0."""
    epsilon_end: float = 0.04
    """Exploration rate once the linear decay is over."""
    epsilon_decay_fraction: float = 0.16
    """Fraction of total_env_steps over which epsilon decays linearly."""

    eval_every_env_steps: int = 2_500
    """Greedy evaluation period, in env steps (also the period of metrics.csv rows)."""
    eval_episodes: int = 10
    """Episodes per greedy evaluation; episode i is reset with seed eval_seed + i."""
    final_eval_episodes: int = 100
    """Episodes of the greedy evaluation at the last step (the last metrics.csv row: the run's
    final evaluation). 100 is CartPole-v1's criterion: a mean of 475 over 100 episodes."""
    eval_seed: int = 10_000
    """Seed of the first evaluation episode."""
    solve_return: float | None = None
    """Evaluation mean that counts as solved; None: the env's reward_threshold (475 for
    CartPole-v1)."""

    checkpoint_every_env_steps: int = 10_000
    """Checkpoint period, in env steps (a checkpoint is also written at the end and on Ctrl-C)."""
    keep_checkpoints: int = 3
    """Checkpoints kept in ``run_dir/checkpoints``: the newest ones; older ones are deleted."""
    max_abs_q: float | None = None
    """Divergence guard: stop when any |Q| in an update exceeds this. None: automatic, 10 x
    r_max / (1 - gamma) where the env's per-step reward bound r_max is known (see
    ``dqn.divergence``), else only NaN/inf stop training."""
    output_dir: str = "runs"
    """Parent folder of run folders."""
    num_threads: int = 1
    """Threads of TensorFlow (intra- and inter-op) and of numpy's BLAS. 1 is fastest for the
    small networks of a DQN on few cores."""
    jit_compile: bool = True
    """Compile the update with XLA."""
    num_envs: int = 1
    """Environments stepped together (a gymnasium vector env; the env's own vectorized
    implementation where it has one, as CartPole does). Above 1, training trades the strict
    one-env order of updates for throughput: every loop step collects num_envs transitions,
    acts on them in one batch, and runs the gradient steps owed for them in one call
    (still one burst per train_every_env_steps transitions). Such runs write agent-only
    checkpoints and cannot be resumed."""
    learner: str = "tensorflow"
    """What runs the gradient steps: "tensorflow" (``dqn.tf_learner``, compiled with XLA) or
    "numpy" (``dqn.numpy_learner``: the same update written out in numpy for a chain of Dense
    layers, such as the default MLP). On a CPU, numpy is faster when the network is small and
    updates are frequent, because each TensorFlow call costs hundreds of microseconds of
    dispatch. Results agree to float32 rounding, not bit for bit."""
    diagnostics: bool = True
    """Compute the backprop diagnostics: TD-error quantiles and zero-gradient fraction in every
    update, per-layer gradient norms and dead units on a probe batch at every metrics row."""
    deterministic: bool = True
    """Enable ``tf.config.experimental.enable_op_determinism()``, so that a seed gives the same
    metrics.csv on the same machine. Once on, it stays on in the process (TF has no off switch);
    a custom ``network_fn`` should seed its initializers."""

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DQNConfig:
        """Build from a mapping; unknown keys are an error naming the valid ones."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"a config must be a mapping of key: value, got {type(data).__name__}"
            )
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r}; valid keys: {', '.join(field_names())}"
            )
        return cls(**dict(data))

    @classmethod
    def from_yaml(
        cls, path: str | Path | None = None, overrides: Mapping[str, Any] | Sequence[str] = ()
    ) -> DQNConfig:
        """Load ``configs/*.yaml`` (safe loader), then apply overrides.

        ``overrides`` is a mapping or a list of ``"key=value"`` strings, values parsed as YAML
        (``--set hidden_sizes=[64,64] double_dqn=true``).
        """
        data: dict[str, Any] = {}
        if path is not None:
            data = _read_yaml(Path(path))
        data.update(parse_overrides(overrides))
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> DQNConfig:
        """A validated copy with some fields changed."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    def to_yaml(self, path: str | Path) -> None:
        """Write atomically (temporary file, then rename)."""
        from dqn.io import atomic_write_text

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(DQNConfig)]


def parse_overrides(overrides: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return dict(overrides)
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    return data


# ---------------------------------------------------------------------- validation
# A field's kind, worded as its type error words it.
INT, NUM, BOOL, STR, INTS = "an integer", "a number", "a bool", "a string", "a list of integers"
# A row's rule, checked on a value of its kind (never on None): a bound, worded as its error
# words it (a key of BOUNDS), or the tuple of the allowed values, or None (any value of the kind).
Rule = str | tuple[str, ...] | None


class Field(NamedTuple):
    kind: str
    nullable: bool  # None (YAML null) is accepted
    rule: Rule


BOUNDS: dict[str, Callable[[Any], bool]] = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    ">= 0 or null": lambda v: v >= 0,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
}

# One row per DQNConfig field, in field order (tests/test_config.py checks that they match).
# fmt: off
FIELDS: dict[str, Field] = {
    # key                               kind  null?  rule
    "env_id":                         Field(STR,  False, None),  # and RULES
    "seed":                           Field(INT,  False, ">= 0"),
    "total_env_steps":                Field(INT,  False, "> 0"),
    "buffer_size":                    Field(INT,  False, "> 0"),
    "batch_size":                     Field(INT,  False, "> 0"),  # and RULES
    "gamma":                          Field(NUM,  False, "in (0, 1]"),
    "n_step":                         Field(INT,  False, "> 0"),
    "learning_rate":                  Field(NUM,  False, "> 0"),
    "learning_rate_end":              Field(NUM,  True,  ">= 0 or null"),
    "adam_epsilon":                   Field(NUM,  False, "> 0"),
    "loss":                           Field(STR,  False, LOSS_NAMES),
    "loss_bound":                     Field(NUM,  False, "> 0"),
    "max_grad_norm":                  Field(NUM,  True,  "> 0"),
    "hidden_sizes":                   Field(INTS, False, None),  # and RULES
    "activation":                     Field(STR,  False, ACTIVATIONS),
    "double_dqn":                     Field(BOOL, False, None),
    "target_update_every_grad_steps": Field(INT,  False, "> 0"),
    "target_tau":                     Field(NUM,  False, "in (0, 1]"),
    "train_every_env_steps":          Field(INT,  False, "> 0"),
    "gradient_steps_per_train":       Field(INT,  False, "> 0"),
    "learning_starts_env_steps":      Field(INT,  False, None),  # and RULES
    "epsilon_start":                  Field(NUM,  False, "in [0, 1]"),
    "epsilon_end":                    Field(NUM,  False, "in [0, 1]"),
    "epsilon_decay_fraction":         Field(NUM,  False, "in [0, 1]"),
    "eval_every_env_steps":           Field(INT,  False, "> 0"),
    "eval_episodes":                  Field(INT,  False, "> 0"),
    "final_eval_episodes":            Field(INT,  False, "> 0"),
    "eval_seed":                      Field(INT,  False, None),
    "solve_return":                   Field(NUM,  True,  None),
    "checkpoint_every_env_steps":     Field(INT,  False, "> 0"),
    "keep_checkpoints":               Field(INT,  False, "> 0"),
    "max_abs_q":                      Field(NUM,  True,  "> 0"),
    "output_dir":                     Field(STR,  False, None),
    "num_threads":                    Field(INT,  False, "> 0"),
    "jit_compile":                    Field(BOOL, False, None),
    "num_envs":                       Field(INT,  False, "> 0"),
    "learner":                        Field(STR,  False, LEARNERS),
    "diagnostics":                    Field(BOOL, False, None),
    "deterministic":                  Field(BOOL, False, None),
}

# Rules beyond one row's bound, checked after the rows: name -> (holds, error message).
RULES: dict[str, tuple[Callable[[DQNConfig], bool], Callable[[DQNConfig], str]]] = {
    "env_id has no stray spaces": (
        lambda c: c.env_id.strip() == c.env_id,
        lambda c: f"config key 'env_id' has stray spaces: {c.env_id!r}"),
    "at least one hidden layer": (
        lambda c: len(c.hidden_sizes) >= 1,
        lambda c: "config key 'hidden_sizes' must list at least one layer width"),
    "positive layer widths": (
        lambda c: all(h > 0 for h in c.hidden_sizes),
        lambda c: "config key 'hidden_sizes' must hold positive widths, "
                  f"got {list(c.hidden_sizes)}"),
    "the batch fits the buffer": (
        lambda c: c.batch_size <= c.buffer_size,
        lambda c: f"config key 'batch_size' ({c.batch_size}) must be <= buffer_size "
                  f"({c.buffer_size})"),
    "learning starts before the end": (
        lambda c: 0 <= c.learning_starts_env_steps < c.total_env_steps,
        lambda c: "config key 'learning_starts_env_steps' must be in [0, total_env_steps = "
                  f"{c.total_env_steps}), got {c.learning_starts_env_steps}: "
                  "the agent would never train"),
}
# fmt: on


class _NotKind(Exception):  # args: (kind, the value as read: a YAML 1.1 number as its number)
    pass


def _coerce(kind: str, value: Any) -> Any:
    """value as kind, or raise _NotKind. YAML 1.1 reads ``1e-3`` and ``1e5`` as strings: they
    are numbers here. A bool is never a number (``True == 1``); an integral float is an integer."""
    if kind in (INT, NUM) and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (kind == BOOL and isinstance(value, bool)) or (kind == STR and isinstance(value, str)):
        if value != "":
            return value
    if kind == INTS and isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return tuple(_coerce(INT, v) for v in value)
    if kind == INT and number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if kind == NUM and number and abs(value) <= sys.float_info.max:  # finite (and fits a float)
        return float(value)
    raise _NotKind(kind, value)


def _rule_error(key: str, rule: Rule, v: Any) -> str | None:
    if isinstance(rule, str) and not BOUNDS[rule](v):
        return f"config key {key!r} must be {rule}, got {v!r}"
    if isinstance(rule, tuple) and v not in rule:
        plural = key + ("es" if key.endswith("s") else "s")  # losses, activations, learners
        return f"unknown {key} {v!r}; valid {plural}: {', '.join(rule)}"
    return None


def _validate(cfg: DQNConfig) -> None:
    """Convert every field to its kind, then check the rows' rules, then RULES."""
    for key, field in FIELDS.items():
        raw = getattr(cfg, key)
        if raw is None and field.nullable:
            continue
        try:
            object.__setattr__(cfg, key, _coerce(field.kind, raw))
        except _NotKind as bad:
            kind, shown = (f"{field.kind} or null", raw) if field.nullable else bad.args
            raise ConfigError(f"config key {key!r} must be {kind}, got {shown!r}") from None
    for key, field in FIELDS.items():
        value = getattr(cfg, key)
        if value is not None and (message := _rule_error(key, field.rule, value)):
            raise ConfigError(message)
    for holds, message_of in RULES.values():
        if not holds(cfg):
            raise ConfigError(message_of(cfg))


def bootstrap_discount(c: DQNConfig) -> float:
    """gamma^n: the discount of the bootstrapped term of an n-step TD target."""
    return c.gamma**c.n_step


def total_grad_steps(c: DQNConfig) -> int:
    """Gradient steps a full run takes: a burst every train_every_env_steps once learning starts."""
    bursts = c.total_env_steps // c.train_every_env_steps - (
        c.learning_starts_env_steps // c.train_every_env_steps
    )
    return max(bursts, 0) * c.gradient_steps_per_train
